//! Isolation between users on one LWK (issue 20, item 4): a process of
//! root and a process of `nobody` run at the same time on one partition
//! (owned by `nobody`, `mcreboot -o nobody`). The second maps the address
//! where the first keeps a secret and reads zeroes, then, with that mapping
//! gone, dies of SIGSEGV reading the address: nothing of the other
//! process's memory is mapped in its address space. Then `nobody` may not
//! reserve or boot (EPERM), and the sockets have the documented modes.

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
