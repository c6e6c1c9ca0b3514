//! Debian's static busybox on the LWK, compared with Linux
//! (issue #3 acceptance: hostname, cat, ls -l, md5sum, exit statuses).

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{can_run, linux, Partition};

const BUSYBOX: &str = "/bin/busybox";

fn have_busybox() -> bool {
    if !std::path::Path::new(BUSYBOX).exists() {
        return mck_tests::cannot_run("busybox tests", &format!("{BUSYBOX} missing (apt-get install busybox-static)"));
    }
    true
}

#[test]
fn busybox_applets_print_what_linux_prints() {
    if !can_run("busybox_applets_print_what_linux_prints") || !have_busybox() {
        return;
    }
    let p = Partition::boot("512M", &[]);
    for args in [
        &[BUSYBOX, "hostname"][..],
        &[BUSYBOX, "cat", "/etc/os-release"],
        &[BUSYBOX, "ls", "-l", "/usr"],
        &[BUSYBOX, "uname", "-s", "-n", "-m"],
    ] {
        let lwk = p.mcexec(args);
        let lin = linux(args);
        assert!(lwk.status.success(), "{args:?} failed on the LWK");
        assert_eq!(
            String::from_utf8_lossy(&lwk.stdout),
            String::from_utf8_lossy(&lin.stdout),
            "{args:?}: LWK and Linux differ"
        );
        assert!(!lwk.stdout.is_empty());
    }
    // uname names the LWK in its release.
    let r = p.mcexec(&[BUSYBOX, "uname", "-r"]);
    assert!(String::from_utf8_lossy(&r.stdout).trim_end().ends_with("+mckernel"));
}

#[test]
fn md5sum_of_a_pipe_matches_linux() {
    if !can_run("md5sum_of_a_pipe_matches_linux") || !have_busybox() {
        return;
    }
    let p = Partition::boot("512M", &[]);
    let input: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    let mut child = p
        .mcexec_command(&[BUSYBOX, "md5sum"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap())
    };
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let mut lin = std::process::Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    lin.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let lin = lin.wait_with_output().unwrap();
    let digest = |o: &[u8]| String::from_utf8_lossy(o).split_whitespace().next().unwrap_or("").to_string();
    assert_eq!(digest(&out.stdout), digest(&lin.stdout));
    assert_eq!(digest(&out.stdout).len(), 32);
}

#[test]
fn exit_statuses_are_the_programs() {
    if !can_run("exit_statuses_are_the_programs") || !have_busybox() {
        return;
    }
    let p = Partition::boot("512M", &[]);
    assert_eq!(p.mcexec(&[BUSYBOX, "false"]).status.code(), Some(1));
    assert_eq!(p.mcexec(&[BUSYBOX, "true"]).status.code(), Some(0));
    assert_eq!(p.mcexec(&[BUSYBOX, "sh", "-c", "exit 42"]).status.code(), Some(42));
    // A program found on PATH like a shell would.
    let out = p.mcexec_command(&["busybox", "echo", "via PATH"]).env("PATH", "/usr/bin:/bin").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via PATH\n");
}

#[test]
fn shell_pipelines_fork_and_exec_like_on_linux() {
    if !can_run("shell_pipelines_fork_and_exec_like_on_linux") || !have_busybox() {
        return;
    }
    let p = Partition::boot("512M", &[]);
    // Applets in forked children, programs by path (fork + execve, static
    // and dynamic), a subshell's status, a background job and `wait`
    // (SIGCHLD), and `exec`.
    let script = "echo hello from the LWK; ls -l /usr | head -3; \
                  seq 1 5 | /bin/busybox sort -r | /bin/busybox head -2; \
                  (exit 3); echo sub=$?; /bin/busybox false; echo false=$?; \
                  echo bg & wait; echo waited; /bin/echo dynamic; exec /bin/busybox echo exec-done";
    let lwk = p.mcexec(&[BUSYBOX, "sh", "-c", script]);
    let lin = linux(&[BUSYBOX, "sh", "-c", script]);
    assert!(lwk.status.success());
    assert_eq!(String::from_utf8_lossy(&lwk.stdout), String::from_utf8_lossy(&lin.stdout));
    assert!(String::from_utf8_lossy(&lwk.stdout).contains("sub=3\nfalse=1\n"));
    // A missing program is the shell's 127, as on Linux.
    assert_eq!(p.mcexec(&[BUSYBOX, "sh", "-c", "/nonexistent/prog"]).status.code(), Some(127));
}
