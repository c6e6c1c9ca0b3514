//! Fault injection (issue 20, item 1): `kill -9` of the acting process at
//! every step of `mcreboot`, of ihkd, of a program run through `mcexec`
//! and of `mcstop+release`, then `mcstop+release` (run again when it was
//! the one killed); the node must be exactly as before: huge page pools,
//! the test's own CPU affinity and descriptors, no journal record, no ihkd,
//! nothing in the runtime directory but ihkd's log.
//!
//! Also: the host child of an mcexec that forks (the proxy of the LWK
//! child) killed before it attaches, once attached and once its LWK child
//! runs; `ihkosctl 0 shutdown` killed once its request is sent, and ihkd
//! killed once it shut the LWK down; ihkmond killed once it runs and once
//! it watches the instance. After the release, no process of the test's
//! runtime directory is left (so none holds a memfd of guest memory or a
//! `/dev/kvm` descriptor).
//!
//! The kill is deterministic: `IHK_FAULT_STOP=<point>` (`ihk::fault`)
//! makes the process SIGKILL itself right after the named step. ihkd gets
//! the variable from the `mcreboot` that starts it. Each point is its own
//! partition (`mcreboot -c 1 -m 256M`, pin isolation) under the partition
//! lock, taken and given back per point.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Output;

use common::*;
use ihk::fault::{ENV, LOG_ENV, POINTS};

/// mcexec, built next to the ihk binaries (`cargo test -p ihk` alone does
/// not build it; the workspace build of scripts/test.sh does).
fn mcexec() -> PathBuf {
    let exe = std::path::Path::new(IHKD).with_file_name("mcexec");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut c = std::process::Command::new(cargo);
    c.args(["build", "-p", "mcexec", "--bin", "mcexec", "--manifest-path"]).arg(&manifest);
    if exe.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    if let Some(target) = exe.parent().and_then(|d| d.parent()) {
        c.env("CARGO_TARGET_DIR", target);
    }
    assert!(c.status().expect("running cargo").success(), "building mcexec failed");
    exe
}

/// What the test process itself must keep: its CPU affinity and its
/// number of open descriptors.
fn own_state() -> (Vec<usize>, usize) {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let cpus = (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect();
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    (cpus, fds)
}

/// Whether process `pid` is gone or goes: a SIGKILLed ihkd can take a
/// moment to give back a partition's memory before it is a zombie.
fn exits(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while process_alive(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

fn killed(out: &Output) -> bool {
    out.status.signal() == Some(libc::SIGKILL)
}

/// Run `exe args` with `env` under the node's environment; None when it
/// did not end within `secs` (then it has been killed).
fn run_bounded(node: &Node, exe: &str, args: &[&str], secs: u64) -> Option<Output> {
    let mut c = std::process::Command::new(exe);
    c.args(args)
        .env("IHK_RUNTIME_DIR", node.runtime_dir())
        .env("IHK_ISOLATION", "pin")
        .env("IHKD", IHKD)
        .env("MCKERNEL_IMAGE", image())
        .envs(node.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawning");
    if !mck_tests::wait_or_kill(&mut child, std::time::Duration::from_secs(secs)) {
        return None;
    }
    let out = child.wait_with_output().expect("collecting output");
    eprintln!(
        "$ {} {}\n  -> {:?}\n  stdout: {}\n  stderr: {}",
        exe,
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    Some(out)
}

/// Pids of live processes whose environment names `dir` as their runtime
/// directory: what a fault could leave behind (an mcexec, a proxy of a
/// fork child, an ihkd, an ihkmond), holding guest memory or `/dev/kvm`.
fn processes_of(dir: &std::path::Path) -> Vec<u32> {
    let needle = format!("IHK_RUNTIME_DIR={}", dir.display()).into_bytes();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || !process_alive(pid) {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else { continue };
        if env.split(|&b| b == 0).any(|v| v == needle.as_slice()) {
            out.push(pid);
        }
    }
    out
}

/// ihkd's and ihkmond's logs stay, as after a clean stop.
fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "ihkd.log" && n != "ihkmond.log")
        .collect()
}

/// Kill at `point`, clean up, check the node. Err: what is wrong.
fn inject(point: &str) -> Result<(), String> {
    let mcexec = mcexec();
    let mut node = Node::new();
    let before = own_state();
    // A path, no descriptor (the test's descriptors are compared).
    let fault_file = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let fault_log = fault_file.to_path_buf();
    let fault = (ENV.to_string(), point.to_string());
    node.env.push((LOG_ENV.to_string(), fault_log.display().to_string()));
    let (process, _) = point.split_once(':').unwrap();
    let boot = ["-c", "1", "-m", "256M"];
    let mut second_stop = false;
    match process {
        "mcreboot" => {
            node.env.push(fault.clone());
            let out = node.run(MCREBOOT, &boot);
            node.env.retain(|(k, _)| k != ENV);
            if !killed(&out) {
                return Err(format!("mcreboot was not killed: {:?}", out.status));
            }
        }
        "ihkd" => {
            // Boots (the quit and attach points come later) or fails
            // because the ihkd it started died.
            node.env.push(fault.clone());
            let out = node.run(MCREBOOT, &boot);
            node.env.retain(|(k, _)| k != ENV);
            let pid = node.ihkd_pid();
            match point {
                "ihkd:attached" => {
                    let out = node.run(mcexec.to_str().unwrap(), &["/bin/busybox", "true"]);
                    if out.status.success() {
                        return Err("mcexec ran although ihkd died at attach".into());
                    }
                }
                "ihkd:shut-down" => {
                    let out = node.run(IHKOSCTL, &["0", "shutdown"]);
                    if out.status.success() {
                        return Err("ihkosctl 0 shutdown succeeded although ihkd died".into());
                    }
                }
                // Both come with mcstop+release (destroy, then quit).
                "ihkd:destroyed" | "ihkd:quit" => {
                    let out = node.run(MCSTOP, &[]);
                    if out.status.success() {
                        return Err(format!("mcstop+release succeeded although ihkd died at {point}"));
                    }
                }
                _ => {
                    if out.status.success() {
                        return Err("mcreboot succeeded although ihkd died".into());
                    }
                }
            }
            if let Some(p) = pid.filter(|&p| !exits(p)) {
                return Err(format!("ihkd {p} was not killed at {point}"));
            }
        }
        "mcexec" if point.starts_with("mcexec:fork") => {
            // The host child of the fork (the LWK child's proxy) dies; the
            // program (a shell whose subshell forks) must end, whatever
            // it makes of the failed or killed child.
            node.ok(MCREBOOT, &boot);
            node.env.push(fault.clone());
            let script = "(/bin/busybox echo child); /bin/busybox echo parent $?";
            let out = run_bounded(&node, mcexec.to_str().unwrap(), &["/bin/busybox", "sh", "-c", script], 60);
            node.env.retain(|(k, _)| k != ENV);
            let Some(out) = out else {
                return Err("mcexec did not end after its fork child was killed".into());
            };
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            // As on Linux: before the LWK created the child, fork fails
            // (EAGAIN, the shell gives up: status 2); after, the child
            // exists and was killed (the subshell's status 128 + 9). At
            // `fork-started` either may be (the LWK may see the proxy gone
            // before or after it starts the child); never EINTR.
            let failed = out.status.code() == Some(2) && stderr.contains("can't fork: Resource temporarily unavailable");
            let killed_child = out.status.code() == Some(0) && stdout == "parent 137\n";
            let as_linux = failed || (point == "mcexec:fork-started" && killed_child);
            if !as_linux {
                return Err(format!("the program saw the fault unlike on Linux: {:?} {stdout:?} {stderr:?}", out.status));
            }
            let next = node.ok(mcexec.to_str().unwrap(), &["/bin/busybox", "echo", "next"]);
            if next != "next" {
                return Err(format!("the next program printed {next:?}"));
            }
        }
        "mcexec" => {
            node.ok(MCREBOOT, &boot);
            node.env.push(fault.clone());
            let out = node.run(mcexec.to_str().unwrap(), &["/bin/busybox", "echo", "fault"]);
            node.env.retain(|(k, _)| k != ENV);
            if !killed(&out) {
                return Err(format!("mcexec was not killed: {:?}", out.status));
            }
            // The partition survives its proxy's death: the next runs.
            let next = node.ok(mcexec.to_str().unwrap(), &["/bin/busybox", "echo", "next"]);
            if next != "next" {
                return Err(format!("the next program printed {next:?}"));
            }
        }
        "mcstop+release" => {
            node.ok(MCREBOOT, &boot);
            node.env.push(fault.clone());
            let out = node.run(MCSTOP, &[]);
            node.env.retain(|(k, _)| k != ENV);
            if !killed(&out) {
                return Err(format!("mcstop+release was not killed: {:?}", out.status));
            }
            second_stop = true;
        }
        "ihkosctl" => {
            node.ok(MCREBOOT, &boot);
            node.env.push(fault.clone());
            let out = node.run(IHKOSCTL, &["0", "shutdown"]);
            node.env.retain(|(k, _)| k != ENV);
            if !killed(&out) {
                return Err(format!("ihkosctl was not killed: {:?}", out.status));
            }
        }
        "ihkmond" => {
            // mcreboot starts ihkmond for -k/-i; it may see it die (at
            // started) and fail, or boot.
            node.env.push(fault.clone());
            node.run(MCREBOOT, &["-c", "1", "-m", "256M", "-k", "1", "-i", "1"]);
            node.env.retain(|(k, _)| k != ENV);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !std::fs::read_to_string(&fault_log).unwrap_or_default().contains(point) {
                if std::time::Instant::now() > deadline {
                    return Err(format!("ihkmond did not reach {point}"));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        _ => unreachable!("{point}"),
    }
    // Deterministic: the process named by the point died there.
    if !std::fs::read_to_string(&fault_log).unwrap_or_default().lines().any(|l| l.split(' ').next() == Some(point)) {
        return Err(format!("no process reached {point}"));
    }
    let pid = node.ihkd_pid();
    let out = node.run(MCSTOP, &[]);
    if !out.status.success() {
        return Err(format!(
            "mcstop+release{} failed: {}",
            if second_stop { " (again)" } else { "" },
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if let Some(p) = pid.filter(|&p| !exits(p)) {
        return Err(format!("ihkd {p} still runs"));
    }
    if node.journal_pending() {
        return Err("journal records left".into());
    }
    let left = leftovers(node.runtime_dir());
    if !left.is_empty() {
        return Err(format!("left in the runtime directory: {left:?}"));
    }
    if hugepage_counts() != node.hugepages_before {
        return Err(format!("huge page pools changed: {:?} -> {:?}", node.hugepages_before, hugepage_counts()));
    }
    let procs = processes_of(node.runtime_dir());
    if !procs.is_empty() {
        return Err(format!("processes of the runtime directory left: {procs:?}"));
    }
    if own_state() != before {
        return Err(format!("the test's affinity or descriptors changed: {before:?} -> {:?}", own_state()));
    }
    node.reap_ihkd();
    Ok(())
}

fn inject_all(test: &str, prefix: &str) {
    if !can_run(test) {
        return;
    }
    let points: Vec<&str> = POINTS.iter().copied().filter(|p| p.starts_with(prefix)).collect();
    assert!(!points.is_empty());
    let mut failures = Vec::new();
    for p in &points {
        match inject(p) {
            Ok(()) => eprintln!("fault {p}: node restored"),
            Err(e) => {
                eprintln!("fault {p}: FAILED: {e}");
                failures.push(format!("{p}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} points failed:\n{}", failures.len(), points.len(), failures.join("\n"));
}

#[test]
fn killing_mcreboot_at_every_step_leaves_a_node_mcstop_release_restores() {
    inject_all("killing_mcreboot_at_every_step_leaves_a_node_mcstop_release_restores", "mcreboot:");
}

#[test]
fn killing_ihkd_at_every_step_leaves_a_node_mcstop_release_restores() {
    inject_all("killing_ihkd_at_every_step_leaves_a_node_mcstop_release_restores", "ihkd:");
}

#[test]
fn killing_mcexec_at_every_step_leaves_a_node_mcstop_release_restores() {
    inject_all("killing_mcexec_at_every_step_leaves_a_node_mcstop_release_restores", "mcexec:");
}

#[test]
fn killing_mcstop_release_at_every_step_leaves_a_node_it_restores_when_run_again() {
    inject_all(
        "killing_mcstop_release_at_every_step_leaves_a_node_it_restores_when_run_again",
        "mcstop+release:",
    );
}

#[test]
fn killing_ihkosctl_shutdown_and_ihkmond_leaves_a_node_mcstop_release_restores() {
    let test = "killing_ihkosctl_shutdown_and_ihkmond_leaves_a_node_mcstop_release_restores";
    inject_all(test, "ihkosctl:");
    inject_all(test, "ihkmond:");
}
