//! Isolation between users on one LWK (issue 20, item 4): a process of
//! root and a process of `nobody` run at the same time on one partition
//! (owned by `nobody`, `mcreboot -o nobody`). The second maps the address
//! where the first keeps a secret and reads zeroes, then, with that mapping
//! gone, dies of SIGSEGV reading the address: nothing of the other
//! process's memory is mapped in its address space. Then `nobody` may not
//! reserve or boot (EPERM), and the sockets have the documented modes.
//!
//! The other way round, on a partition root booted for itself: `nobody`
//! can neither attach (mcexec), nor observe (status, kmsg), nor shut down,
//! destroy or signal root's running process, through any socket or
//! `kill(2)`; a user of the sockets' group (who may open them, mode 0660)
//! is refused the attach by ihkd itself. Root's process runs on unchanged.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;

use common::{can_run, compile, Partition};

#[test]
fn processes_of_two_users_do_not_see_each_others_memory() {
    let test = "processes_of_two_users_do_not_see_each_others_memory";
    if !can_run(test) {
        return;
    }
    let Some(nobody) = nix::unistd::User::from_name("nobody").ok().flatten() else {
        mck_tests::cannot_run(test, "no user nobody");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(exe) = compile("isolation.c", &["-static"], tmp.path(), "isolation") else { return };
    let p = Partition::boot("256M", &["-o", "nobody"]);

    // The holder (root) keeps its secret mapped until its stdin ends.
    let mut holder = p
        .mcexec_command(&[exe.to_str().unwrap(), "hold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("held "), "holder printed {line:?}");

    let mut c = p.mcexec_command(&[exe.to_str().unwrap(), "peek"]);
    c.current_dir("/").uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    let peek = c.output().unwrap();
    common::log(std::path::Path::new("mcexec (as nobody)"), &["isolation", "peek"], &peek);
    assert_eq!(String::from_utf8_lossy(&peek.stdout), "fresh\nreading\n");
    assert_eq!(peek.status.signal(), Some(libc::SIGSEGV), "{:?}", peek.status);

    holder.stdin.as_mut().unwrap().write_all(b"done\n").unwrap();
    drop(holder.stdin.take());
    let st = holder.wait().unwrap();
    assert!(st.success(), "the holder's secret changed or it failed: {st:?}");

    // nobody owns the sockets of this partition (mode 0660) but may not
    // reserve.
    let dir = p.runtime_dir();
    for name in ["mcd0", "mcos0"] {
        let md = std::fs::metadata(dir.join(name)).unwrap();
        assert_eq!(md.uid(), nobody.uid.as_raw(), "{name} owner");
        // ihk/README.md: "Sockets are mode 0660".
        assert_eq!(md.mode() & 0o777, 0o660, "{name} mode {:o}", md.mode());
    }
    let mut c = p.command(&common::bin("ihkconfig"));
    c.args(["0", "reserve", "cpu", "0"]).uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Operation not permitted") && err.contains("needs root"), "{err}");
}

/// Run `exe args` as `uid`:`gid` (from `/`); returns the output.
fn run_as(c: &mut std::process::Command, uid: u32, gid: u32) -> std::process::Output {
    c.current_dir("/").uid(uid).gid(gid).stdin(Stdio::null());
    let out = c.output().unwrap();
    common::log(std::path::Path::new(&format!("(as {uid}:{gid})")), &[], &out);
    out
}

#[test]
fn another_user_cannot_attach_to_observe_or_kill_a_root_process() {
    let test = "another_user_cannot_attach_to_observe_or_kill_a_root_process";
    if !can_run(test) {
        return;
    }
    let Some(nobody) = nix::unistd::User::from_name("nobody").ok().flatten() else {
        mck_tests::cannot_run(test, "no user nobody");
        return;
    };
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(exe) = compile("isolation.c", &["-static"], tmp.path(), "isolation") else { return };
    let p = Partition::boot("256M", &[]);
    let dir = p.runtime_dir();
    for name in ["mcd0", "mcos0"] {
        let md = std::fs::metadata(dir.join(name)).unwrap();
        assert_eq!((md.uid(), md.gid(), md.mode() & 0o777), (0, 0, 0o660), "{name}: owner, group, mode");
    }

    // Root's process, with its secret, runs throughout.
    let mut holder = p
        .mcexec_command(&[exe.to_str().unwrap(), "hold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("held "), "holder printed {line:?}");
    let kmsg_before = p.kmsg();

    // Attach: mcexec as nobody cannot open mcos0.
    let out = run_as(&mut p.mcexec_command(&["/bin/busybox", "echo", "in"]), uid, gid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("permission denied on") && err.contains("mcos0"), "{err}");

    // Observe, shut down, destroy: every socket is closed to nobody.
    let ihkosctl = common::bin("ihkosctl");
    let ihkconfig = common::bin("ihkconfig");
    for (exe, args) in [
        (&ihkosctl, &["0", "get", "status"][..]),
        (&ihkosctl, &["0", "kmsg"][..]),
        (&ihkosctl, &["0", "clear_kmsg"][..]),
        (&ihkosctl, &["0", "shutdown"][..]),
        (&ihkconfig, &["0", "destroy", "0"][..]),
        (&ihkconfig, &["0", "get", "os_instances"][..]),
    ] {
        let mut c = p.command(exe);
        c.args(args);
        let out = run_as(&mut c, uid, gid);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded as nobody");
        assert!(err.contains("Operation not permitted") || err.contains("ermission denied"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    }

    // Kill root's proxy (and so its LWK process) from the host.
    let mut c = std::process::Command::new("/bin/busybox");
    c.args(["kill", "-9", &holder.id().to_string()]);
    let out = run_as(&mut c, uid, gid);
    assert!(!out.status.success(), "kill of root's mcexec succeeded as nobody");

    // A user of the sockets' group (root's group here) may open mcos0, but
    // ihkd refuses it the attach: it would get every guest memory region.
    let out = run_as(&mut p.mcexec_command(&["/bin/busybox", "echo", "in"]), 65533, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("Permission denied") && err.contains("belongs to uid 0, the caller is uid 65533"), "{err}");
    // Reading the status is what the group may do.
    let mut c = p.command(&ihkosctl);
    c.args(["0", "get", "status"]);
    let out = run_as(&mut c, 65533, 0);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("RUNNING"), "{out:?}");

    // Nothing changed: root's process kept its secret and ends well, the
    // kmsg was not cleared, the LWK runs the next program.
    assert!(p.kmsg().starts_with(kmsg_before.trim_end()), "kmsg changed");
    holder.stdin.as_mut().unwrap().write_all(b"done\n").unwrap();
    drop(holder.stdin.take());
    let st = holder.wait().unwrap();
    assert!(st.success(), "the holder's secret changed or it failed: {st:?}");
    let out = p.mcexec(&["/bin/busybox", "echo", "next"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "next\n");
}
