//! Fault injection (issue 20, item 1): `kill -9` of the acting process at
//! every step of `mcreboot`, of ihkd, of a program run through `mcexec`
//! and of `mcstop+release`, then `mcstop+release` (run again when it was
//! the one killed); the node must be exactly as before: huge page pools,
//! the test's own CPU affinity and descriptors, no journal record, no ihkd,
//! nothing in the runtime directory but ihkd's log.
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
use ihk::fault::{ENV, POINTS};

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

/// Kill at `point`, clean up, check the node. Err: what is wrong.
fn inject(point: &str) -> Result<(), String> {
    let mcexec = mcexec();
    let mut node = Node::new();
    let before = own_state();
    let fault = (ENV.to_string(), point.to_string());
    let (process, _) = point.split_once(':').unwrap();
    let boot = ["-c", "1", "-m", "256M"];
    let mut second_stop = false;
    match process {
        "mcreboot" => {
            node.env = vec![fault];
            let out = node.run(MCREBOOT, &boot);
            node.env.clear();
            if !killed(&out) {
                return Err(format!("mcreboot was not killed: {:?}", out.status));
            }
        }
        "ihkd" => {
            // Boots (the quit and attach points come later) or fails
            // because the ihkd it started died.
            node.env = vec![fault];
            let out = node.run(MCREBOOT, &boot);
            node.env.clear();
            let pid = node.ihkd_pid();
            match point {
                "ihkd:attached" => {
                    let out = node.run(mcexec.to_str().unwrap(), &["/bin/busybox", "true"]);
                    if out.status.success() {
                        return Err("mcexec ran although ihkd died at attach".into());
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
        "mcexec" => {
            node.ok(MCREBOOT, &boot);
            node.env = vec![fault];
            let out = node.run(mcexec.to_str().unwrap(), &["/bin/busybox", "echo", "fault"]);
            node.env.clear();
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
            node.env = vec![fault];
            let out = node.run(MCSTOP, &[]);
            node.env.clear();
            if !killed(&out) {
                return Err(format!("mcstop+release was not killed: {:?}", out.status));
            }
            second_stop = true;
        }
        _ => unreachable!("{point}"),
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
    let left: Vec<String> = std::fs::read_dir(node.runtime_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "ihkd.log")
        .collect();
    if !left.is_empty() {
        return Err(format!("left in the runtime directory: {left:?}"));
    }
    if hugepage_counts() != node.hugepages_before {
        return Err(format!("huge page pools changed: {:?} -> {:?}", node.hugepages_before, hugepage_counts()));
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
