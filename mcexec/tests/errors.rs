//! mcexec's errors, with a shell's exit codes: usage (1), no OS instance
//! (1, says how to boot one), program not found (127), not executable or not
//! an x86-64 ELF (126), not enough LWK memory (1), bad -n.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{can_run, Partition, MCEXEC};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_errors_exit_1_with_usage() {
    for args in [&["--bogus", "/bin/true"][..], &["-n", "0", "/bin/true"], &["-s", "8M,1M", "/bin/true"], &[]] {
        let o = Command::new(MCEXEC).args(args).env("IHK_RUNTIME_DIR", "/nonexistent").output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains("Usage: mcexec"), "{args:?}: {}", stderr(&o));
    }
    let o = Command::new(MCEXEC).arg("--help").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--extend-heap-by"));
}

#[test]
fn no_os_instance_says_how_to_boot_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(MCEXEC).arg("/bin/busybox").arg("true").env("IHK_RUNTIME_DIR", dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("no OS instance 0 is running") && e.contains("mcreboot"), "{e}");
}

#[test]
fn program_errors_use_shell_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just text\n").unwrap();
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, "x").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec!["no-such-program-xyz".into()], 127, "command not found"),
        (vec![dir.path().join("missing").display().to_string()], 127, "No such file"),
        (vec![text.display().to_string()], 126, "Exec format error"),
        (vec![dir.path().display().to_string()], 126, "Is a directory"),
    ];
    for (args, code, msg) in cases {
        let o = Command::new(MCEXEC).args(&args).env("IHK_RUNTIME_DIR", dir.path()).output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
    }
    if !nix::unistd::geteuid().is_root() {
        // (root may read any file, but still needs an x bit to execute)
    }
    let o = Command::new(MCEXEC).arg(&data).env("IHK_RUNTIME_DIR", dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
}

#[test]
fn errors_that_need_a_partition() {
    if !can_run("errors_that_need_a_partition") {
        return;
    }
    let p = Partition::boot("512M", &[]);
    // More stack than the partition has memory.
    let o = p.mcexec(&["-s", "1G", "/bin/busybox", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not enough memory in the LWK"), "{}", stderr(&o));
    // More processes per node than LWK CPUs.
    let o = p.mcexec(&["-n", "2", "/bin/busybox", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("-n 2") && stderr(&o).contains("1 LWK CPU"), "{}", stderr(&o));
    // The same count from a launcher's environment is not an error: the
    // ranks share the CPUs (an allow_oversubscribe partition under mpirun).
    let o = p
        .mcexec_command(&["/bin/busybox", "nproc"])
        .env("OMPI_COMM_WORLD_LOCAL_RANK", "1")
        .env("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
    // A running OS index that does not exist.
    let o = p.mcexec(&["3", "/bin/busybox", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no OS instance 3"), "{}", stderr(&o));
    // The partition is still usable after all that.
    assert!(p.mcexec(&["/bin/busybox", "true"]).status.success());
}
