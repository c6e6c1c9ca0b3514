//! Hostile programs on the LWK (issue 20, item 3): programs that pass bad
//! pointers, bad lengths and random arguments to system calls (Debian's
//! stress-ng `--sysinval` and `--sysbadaddr`), overflow their stack, fork
//! until RLIMIT_NPROC stops them, write to their own text and map more than
//! the partition holds. Each gets the errno or signal Linux gives, and
//! after each the LWK is still RUNNING, its kmsg holds no panic, and the
//! next program runs. Each test boots its own `mcreboot -c 1` partition
//! (the stress-ng and fork cases owned by `nobody`, who runs them, so that
//! offloaded calls with random arguments act with no privilege on the
//! host) and always releases it.

mod common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Output, Stdio};

use common::{can_run, compile, Partition};

/// The user the stress-ng and fork cases run as.
fn nobody(test: &str) -> Option<nix::unistd::User> {
    let u = nix::unistd::User::from_name("nobody").ok().flatten();
    if u.is_none() {
        mck_tests::cannot_run(test, "no user nobody");
    }
    u
}

/// The hostile program, built static into a directory `nobody` can read.
fn hostile(tmp: &tempfile::TempDir) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    compile("hostile.c", &["-static"], tmp.path(), "hostile")
}

/// Run `args` under mcexec (as `user` when given) and log it.
fn run(p: &Partition, args: &[&str], user: Option<&nix::unistd::User>) -> Output {
    let mut c = p.mcexec_command(args);
    c.current_dir("/tmp").stdin(Stdio::null());
    if let Some(u) = user {
        c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
    }
    let out = c.output().expect("running mcexec");
    common::log(std::path::Path::new("mcexec"), args, &out);
    out
}

/// The LWK survived: RUNNING, no panic line, and the next program runs.
fn survives(p: &Partition, after: &str) {
    let status = p.command(&common::bin("ihkosctl")).args(["0", "get", "status"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "RUNNING", "after {after}");
    let kmsg = p.kmsg();
    assert!(!kmsg.contains("Kernel panic"), "after {after}, kmsg:\n{kmsg}");
    let next = p.mcexec(&["/bin/busybox", "echo", "next"]);
    assert!(next.status.success(), "after {after}: {}", String::from_utf8_lossy(&next.stderr));
    assert_eq!(String::from_utf8_lossy(&next.stdout), "next\n", "after {after}");
}

#[test]
fn a_stack_overflow_dies_of_sigsegv() {
    if !can_run("a_stack_overflow_dies_of_sigsegv") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = hostile(&tmp) else { return };
    let p = Partition::boot("256M", &[]);
    let out = run(&p, &[exe.to_str().unwrap(), "stack"], None);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "recursing\n");
    survives(&p, "a stack overflow");
}

#[test]
fn a_write_to_its_own_text_dies_of_sigsegv() {
    if !can_run("a_write_to_its_own_text_dies_of_sigsegv") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = hostile(&tmp) else { return };
    let p = Partition::boot("256M", &[]);
    let out = run(&p, &[exe.to_str().unwrap(), "text"], None);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "writing to main\n");
    survives(&p, "a write to its own text");
}

#[test]
fn mapping_more_than_the_partition_is_enomem() {
    if !can_run("mapping_more_than_the_partition_is_enomem") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = hostile(&tmp) else { return };
    let p = Partition::boot("256M", &[]);
    let out = run(&p, &[exe.to_str().unwrap(), "mmap", "1024"], None);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mmap: ENOMEM\nsmall: ok\n");
    survives(&p, "an mmap of 1 GiB on 256 MiB");
}

#[test]
fn a_fork_bomb_stops_at_rlimit_nproc() {
    let test = "a_fork_bomb_stops_at_rlimit_nproc";
    if !can_run(test) {
        return;
    }
    let Some(user) = nobody(test) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = hostile(&tmp) else { return };
    let p = Partition::boot("256M", &["-o", "nobody"]);
    let out = run(&p, &[exe.to_str().unwrap(), "forkbomb", "6"], Some(&user));
    assert!(out.status.success(), "{:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let forks: u32 = first
        .strip_prefix("fork: EAGAIN after ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected 'fork: EAGAIN after <n>', got {text:?}"));
    assert!((1..6).contains(&forks), "{text}");
    assert_eq!(lines.next(), Some(format!("reaped {forks}").as_str()), "{text}");
    survives(&p, "a fork bomb");
}

/// stress-ng as `nobody` on the LWK; `--pathological` because Debian's
/// stress-ng refuses sysinval otherwise (on the host it may hang it; here
/// the offloaded calls act as an unprivileged user).
fn stress_ng(test: &str, args: &[&str]) {
    if !can_run(test) {
        return;
    }
    let Some(user) = nobody(test) else { return };
    if !std::path::Path::new("/usr/bin/stress-ng").exists() {
        mck_tests::cannot_run(test, "no /usr/bin/stress-ng (scripts/setup-deps.sh installs it)");
        return;
    }
    let p = Partition::boot("256M", &["-o", "nobody"]);
    let mut full = vec!["/usr/bin/stress-ng", "--pathological", "--metrics-brief"];
    full.extend_from_slice(args);
    let out = run(&p, &full, Some(&user));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some(), "stress-ng died of a signal: {:?}", out.status);
    assert!(err.contains("dispatching hogs"), "stress-ng did not start its stressor:\n{err}");
    assert!(!err.contains("No stress workers"), "{err}");
    // The stressor itself passed: stress-ng's checks of what the calls
    // returned (e.g. that capset of itself works) hold on the LWK too.
    assert!(err.contains("] successful run completed") && out.status.success(), "stress-ng failed:\n{err}");
    survives(&p, &format!("stress-ng {}", args.join(" ")));
}

#[test]
fn random_system_call_arguments_leave_the_lwk_running() {
    stress_ng(
        "random_system_call_arguments_leave_the_lwk_running",
        &["--sysinval", "1", "--sysinval-ops", "1", "--timeout", "10"],
    );
}

#[test]
fn bad_addresses_to_system_calls_leave_the_lwk_running() {
    stress_ng(
        "bad_addresses_to_system_calls_leave_the_lwk_running",
        &["--sysbadaddr", "1", "--sysbadaddr-ops", "8", "--timeout", "20"],
    );
}
