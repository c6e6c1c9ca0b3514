//! Signals and the death of mcexec: SIGINT reaches the LWK process and the
//! shell sees status 130 within a second; kill -9 of mcexec ends the LWK
//! process (with a kmsg line saying why) and frees its slot.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{can_run, compile, Partition};

fn wait_timeout(c: &mut std::process::Child, t: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + t;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Start `args` under mcexec and wait until it printed its first line.
fn start_and_wait_line(p: &Partition, args: &[&str]) -> std::process::Child {
    let mut c = p.mcexec_command(args).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = c.stdout.take().unwrap();
    let mut b = [0u8; 1];
    out.read_exact(&mut b).expect("the program printed nothing");
    c
}

/// SIGINT and SIGTERM at their defaults in `c` (and so in the LWK program,
/// which inherits ignored signals as across execve), whatever the test
/// runner was started with (a background job of a script ignores SIGINT).
fn default_signals(c: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal() is async-signal-safe between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        })
    }
}

/// Start `args` under mcexec and wait until its proxy thread serves the
/// LWK process (mcexec has two threads once the process runs), plus a
/// moment for the program to reach its main loop.
fn start_and_wait_running(p: &Partition, args: &[&str]) -> std::process::Child {
    let c = default_signals(&mut p.mcexec_command(args)).stdin(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let tasks = format!("/proc/{}/task", c.id());
    while std::fs::read_dir(&tasks).map_or(0, |d| d.count()) < 2 {
        assert!(Instant::now() < deadline, "mcexec did not start the LWK process");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    c
}

#[test]
fn sigint_ends_sleep_within_a_second_with_status_130() {
    if !can_run("sigint_ends_sleep_within_a_second_with_status_130") {
        return;
    }
    let p = Partition::boot("512M", &[]);
    let mut c = start_and_wait_running(&p, &["/bin/busybox", "sleep", "100"]);
    let t0 = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let st = wait_timeout(&mut c, Duration::from_secs(1)).expect("still running 1 s after SIGINT");
    eprintln!("ended {:?} after SIGINT", t0.elapsed());
    assert_eq!(st.signal(), Some(libc::SIGINT), "mcexec must die of the same signal: {st:?}");
    // What a shell reports for its foreground command ended by SIGINT. (A
    // background job of `sh -c` starts with SIGINT ignored, on Linux as
    // under mcexec, which passes ignored signals on to the program.)
    let mut sh = default_signals(&mut std::process::Command::new("sh"))
        .arg("-c")
        .arg(format!("{} /bin/busybox sleep 100; echo $?", common::MCEXEC))
        .env("IHK_RUNTIME_DIR", p.runtime_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let children = format!("/proc/{0}/task/{0}/children", sh.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mcexec = loop {
        let pid = std::fs::read_to_string(&children).ok().and_then(|s| s.split_whitespace().next()?.parse::<i32>().ok());
        if let Some(pid) = pid.filter(|p| std::fs::read_dir(format!("/proc/{p}/task")).map_or(0, |d| d.count()) >= 2) {
            break pid;
        }
        assert!(Instant::now() < deadline, "the shell's mcexec did not start the LWK process");
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling the mcexec our own shell started.
    unsafe { libc::kill(mcexec, libc::SIGINT) };
    let mut out = String::new();
    std::io::Read::read_to_string(sh.stdout.as_mut().unwrap(), &mut out).unwrap();
    sh.wait().unwrap();
    assert_eq!(out.trim(), "130");
}

#[test]
fn sigterm_reaches_a_busy_program() {
    if !can_run("sigterm_reaches_a_busy_program") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(spin) = compile("spin.c", &["-static"], tmp.path(), "spin") else { return };
    let p = Partition::boot("512M", &[]);
    let mut c = start_and_wait_line(&p, &[spin.to_str().unwrap()]);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let st = wait_timeout(&mut c, Duration::from_secs(1)).expect("still running 1 s after SIGTERM");
    assert_eq!(st.signal(), Some(libc::SIGTERM));
}

#[test]
fn kill_9_of_mcexec_ends_the_lwk_process() {
    if !can_run("kill_9_of_mcexec_ends_the_lwk_process") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(spin) = compile("spin.c", &["-static"], tmp.path(), "spin") else { return };
    let p = Partition::boot("512M", &[]);
    for busy in [true, false] {
        let mut c = if busy {
            start_and_wait_line(&p, &[spin.to_str().unwrap()])
        } else {
            start_and_wait_running(&p, &["/bin/busybox", "sleep", "100"])
        };
        let pid = c.id();
        c.kill().unwrap(); // SIGKILL to our child
        c.wait().unwrap();
        let t0 = Instant::now();
        let line = format!("mcexec (pid {pid}) is gone: ending process {pid}");
        assert!(p.wait_kmsg(&line, Duration::from_secs(1)), "no kmsg line {line:?} within 1 s:\n{}", p.kmsg());
        eprintln!("LWK ended the process {:?} after mcexec died", t0.elapsed());
    }
    // Nothing is left behind: every slot can be used again.
    for _ in 0..3 {
        assert!(p.mcexec(&["/bin/busybox", "true"]).status.success());
    }
}

#[test]
fn a_bad_access_ends_the_program_with_sigsegv_and_a_kmsg_line() {
    if !can_run("a_bad_access_ends_the_program_with_sigsegv_and_a_kmsg_line") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(exe) = compile("segv.c", &["-static"], tmp.path(), "segv") else { return };
    let p = Partition::boot("512M", &[]);
    let c = p.mcexec_command(&[exe.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
    let pid = c.id();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "about to fault\n");
    let line = format!("segv[{pid}]: segfault at 10 ip ");
    assert!(p.wait_kmsg(&line, Duration::from_secs(1)), "no {line:?} in kmsg:\n{}", p.kmsg());
    assert!(p.kmsg().contains(" error 6 in segv["), "{}", p.kmsg());
}
