//! Every error case of issue #2's acceptance: each fails with a clear
//! message, a non-zero status and the specification's code, and leaves the
//! node exactly as it was.

mod common;
use common::*;
use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
fn mcreboot_refuses_bad_requests_and_leaves_nothing_behind() {
    if !can_run("mcreboot_refuses_bad_requests_and_leaves_nothing_behind") {
        return;
    }
    let node = Node::new();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["-c", "7"], libc::EINVAL, "CPU 7 does not exist"),
        (
            &["-c", "1", "-m", "5M"],
            libc::EINVAL,
            "5M is not a multiple of 4 MiB",
        ),
        (
            &["-c", "1", "-m", "1G@9"],
            libc::EINVAL,
            "NUMA node 9 does not exist",
        ),
        (
            &["-c", "1", "-m", "100T"],
            libc::ENOMEM,
            "not enough memory on NUMA node 0",
        ),
        (
            &["-c", "1", "-d", "7"],
            libc::EINVAL,
            "dump level must be 0 or 24",
        ),
        (&["-c", "1", "-r", "1:1"], libc::EINVAL, "not a Linux CPU"),
    ];
    for (args, code, msg) in cases {
        let (got, err) = node.fails(MCREBOOT, args);
        assert_eq!(got, *code, "mcreboot {args:?}: {err}");
        assert!(
            err.contains(msg),
            "mcreboot {args:?} should say '{msg}':\n{err}"
        );
        assert!(err.lines().next().unwrap().starts_with("Error: "), "{err}");
        assert!(
            node.ihkd_pid().is_none(),
            "mcreboot {args:?} left ihkd running"
        );
        node.assert_clean();
    }
    // A later step fails (no such image): every earlier step is undone.
    let mut cmd = Command::new(MCREBOOT);
    cmd.env("IHK_RUNTIME_DIR", node.runtime_dir())
        .env("IHK_ISOLATION", "pin")
        .env("IHKD", IHKD)
        .env("MCKERNEL_IMAGE", "/etc/passwd")
        .args(["-c", "1", "-m", "64M"]);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(libc::EINVAL), "{err}");
    assert!(
        err.contains("loading the kernel image failed"),
        "names the step: {err}"
    );
    assert!(
        node.ihkd_pid().is_none(),
        "the ihkd mcreboot started is stopped"
    );
    node.assert_clean();
}

#[test]
fn commands_refuse_bad_requests_and_change_nothing() {
    if !can_run("commands_refuse_bad_requests_and_change_nothing") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    node.ihkconfig(&["reserve", "cpu", "1"]);
    node.ihkconfig(&["reserve", "mem", "64M"]);

    // Reserving a CPU twice.
    let (code, err) = node.fails(IHKCONFIG, &["0", "reserve", "cpu", "1"]);
    assert_eq!(code, libc::EINVAL);
    assert!(
        err.contains("Error: Invalid argument") && err.contains("CPU 1 is already reserved"),
        "{err}"
    );
    assert_eq!(node.ihkconfig(&["query", "cpu"]), "1");
    // A CPU that does not exist, a bad list.
    let (code, err) = node.fails(IHKCONFIG, &["0", "reserve", "cpu", "0,7"]);
    assert_eq!(code, libc::EINVAL);
    assert!(err.contains("CPU 7 does not exist"), "{err}");
    let (_, err) = node.fails(IHKCONFIG, &["0", "reserve", "cpu", "3-1"]);
    assert!(err.contains("'3-1'") && err.contains("ascending"), "{err}");
    assert_eq!(node.ihkconfig(&["query", "cpu"]), "1");
    // Memory: bad size, bad node, too much; nothing changes.
    let (_, err) = node.fails(IHKCONFIG, &["0", "reserve", "mem", "5M"]);
    assert!(err.contains("5M is not a multiple of 4 MiB"), "{err}");
    let (code, err) = node.fails(IHKCONFIG, &["0", "reserve", "mem", "4M@0,1G@9"]);
    assert_eq!(code, libc::EINVAL);
    assert!(err.contains("NUMA node 9 does not exist"), "{err}");
    let (code, _) = node.fails(IHKCONFIG, &["0", "reserve", "mem", "100T"]);
    assert_eq!(code, libc::ENOMEM);
    assert_eq!(node.ihkconfig(&["query", "mem"]), "67108864@0");
    // Releasing what is not reserved.
    let (code, _) = node.fails(IHKCONFIG, &["0", "release", "cpu", "0"]);
    assert_eq!(code, libc::EINVAL);
    let (code, _) = node.fails(IHKCONFIG, &["0", "release", "mem", "128M@0"]);
    assert_eq!(code, libc::EINVAL);
    assert_eq!(node.ihkconfig(&["query", "mem"]), "67108864@0");

    assert_eq!(node.ihkconfig(&["create"]), "0");
    // Assigning an unreserved CPU.
    let (code, err) = node.fails(IHKOSCTL, &["0", "assign", "cpu", "0"]);
    assert_eq!(code, libc::EINVAL);
    assert!(err.contains("CPU 0 is not reserved"), "{err}");
    assert_eq!(node.ihkosctl(0, &["query", "cpu"]), "");
    // Assigning more memory than reserved.
    let (code, _) = node.fails(IHKOSCTL, &["0", "assign", "mem", "128M"]);
    assert_eq!(code, libc::EINVAL);
    assert_eq!(node.ihkosctl(0, &["query", "mem"]), "");
    // An IKC map naming a CPU the instance does not have.
    node.ihkosctl(0, &["assign", "cpu", "1"]);
    let (code, _) = node.fails(IHKOSCTL, &["0", "set", "ikc_map", "1:0+0:1"]);
    assert_eq!(code, libc::EINVAL);
    // load of a non-ELF file, and of no file at all.
    let (code, err) = node.fails(IHKOSCTL, &["0", "load", "/etc/passwd"]);
    assert_eq!(code, libc::EINVAL);
    assert!(err.contains("not a loadable LWK image"), "{err}");
    let (code, _) = node.fails(IHKOSCTL, &["0", "load", "/nonexistent/mckernel.img"]);
    assert_eq!(code, libc::ENOENT);
    // kargs without hidos.
    let (code, err) = node.fails(IHKOSCTL, &["0", "kargs", "foo=bar"]);
    assert_eq!(code, libc::EINVAL);
    assert!(err.contains("hidos"), "{err}");
    // boot with no memory assigned.
    node.ihkosctl(0, &["load", image().to_str().unwrap()]);
    node.ihkosctl(0, &["kargs", "hidos"]);
    let (code, err) = node.fails(IHKOSCTL, &["0", "boot"]);
    assert_eq!(code, libc::EINVAL);
    assert!(err.contains("no memory assigned"), "{err}");
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "INACTIVE");
    // An instance that does not exist.
    let (code, err) = node.fails(IHKOSCTL, &["5", "get", "status"]);
    assert_eq!(code, libc::ENOENT);
    assert!(err.starts_with("Error: OS instance not found"), "{err}");
    let (code, _) = node.fails(IHKCONFIG, &["0", "destroy", "5"]);
    assert_eq!(code, libc::ENOENT);

    // Nothing above changed the reservation.
    assert_eq!(node.ihkconfig(&["query", "cpu"]), "1");
    assert_eq!(node.ihkconfig(&["query", "mem"]), "67108864@0");
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}

/// Run a command as user `nobody` (uid/gid 65534).
fn as_nobody(node: &Node, exe: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(exe)
        .env("IHK_RUNTIME_DIR", node.runtime_dir())
        .args(args)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    eprintln!("(nobody) {exe} {args:?} -> {:?}\n{o}{e}", out.status.code());
    (out.status.code().unwrap_or(-1), o, e)
}

#[test]
fn other_users_get_eperm_and_owners_may_look() {
    if !can_run("other_users_get_eperm_and_owners_may_look") {
        return;
    }
    let node = Node::new();
    node.ok(MCREBOOT, &["-c", "1", "-m", "64M"]);
    // Without ownership, nobody cannot even open the device.
    let (code, _, err) = as_nobody(&node, IHKCONFIG, &["0", "reserve", "cpu", "0"]);
    assert_eq!(code, libc::EPERM);
    assert!(err.starts_with("Error: Operation not permitted"), "{err}");
    let (code, _, _) = as_nobody(&node, IHKOSCTL, &["0", "get", "status"]);
    assert_eq!(code, libc::EPERM);

    // mcreboot -o nobody: nobody may look, but not change anything.
    node.ok(MCREBOOT, &["-c", "1", "-m", "64M", "-o", "nobody"]);
    let (code, out, _) = as_nobody(&node, IHKOSCTL, &["0", "get", "status"]);
    assert_eq!((code, out.trim()), (0, "RUNNING"));
    let (code, _, _) = as_nobody(&node, IHKOSCTL, &["0", "kmsg"]);
    assert_eq!(code, 0);
    let (code, out, _) = as_nobody(&node, IHKCONFIG, &["0", "query", "cpu"]);
    assert_eq!((code, out.trim()), (0, "1"));
    for args in [
        &["0", "shutdown"][..],
        &["0", "kargs", "hidos"],
        &["0", "boot"],
    ] {
        let (code, _, err) = as_nobody(&node, IHKOSCTL, args);
        assert_eq!(code, libc::EPERM, "{args:?}");
        assert!(err.starts_with("Error: Operation not permitted"), "{err}");
    }
    let (code, _, err) = as_nobody(&node, IHKCONFIG, &["0", "release", "cpu", "1"]);
    assert_eq!(code, libc::EPERM, "{err}");
    let (code, _, _) = as_nobody(&node, MCSTOP, &[]);
    assert_ne!(code, 0);
    // Still running, still reserved.
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "RUNNING");
    assert_eq!(node.ihkconfig(&["query", "cpu"]), "1");
    node.ok(MCSTOP, &[]);
    node.assert_clean();
}
