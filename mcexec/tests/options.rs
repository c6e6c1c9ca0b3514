//! mcexec options that change how the process runs: -n, -t, -h, -s, and a
//! normal user on a partition booted with `mcreboot -o <that user>`.

mod common;

use std::os::unix::process::CommandExt;

use common::{can_run, compile, Partition};

#[test]
fn options_are_accepted_and_the_program_runs() {
    if !can_run("options_are_accepted_and_the_program_runs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(probe) = compile("probe.c", &["-static"], tmp.path(), "probe") else { return };
    let p = Partition::boot("512M", &[]);
    for opts in [
        &["-n", "1"][..],
        &["-t", "4"],
        &["-h", "4M"],
        &["--extend-heap-by=64K"],
        &["-s", "8M,32M"],
        &["--stack-premap=4M"],
        &["0", "-n", "1", "-t", "8", "-h", "2M", "-s", "2M,16M"],
    ] {
        let mut args: Vec<&str> = opts.to_vec();
        args.push(probe.to_str().unwrap());
        args.push("x");
        let mut c = p.mcexec_command(&args);
        c.env("PROBE_ALLOC_MB", "64");
        let o = c.output().unwrap();
        common::log(&probe, &args, &o);
        assert!(o.status.success(), "{opts:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("argv[1]=x") && out.contains("touched 64 MiB"), "{opts:?}: {out}");
    }
}

#[test]
fn a_normal_user_runs_mcexec_on_a_partition_it_owns() {
    if !can_run("a_normal_user_runs_mcexec_on_a_partition_it_owns") {
        return;
    }
    let Some(nobody) = nix::unistd::User::from_name("nobody").ok().flatten() else {
        mck_tests::cannot_run("a_normal_user_runs_mcexec_on_a_partition_it_owns", "no user nobody");
        return;
    };
    let p = Partition::boot("512M", &["-o", "nobody"]);
    let mut c = p.mcexec_command(&["/bin/busybox", "id", "-u"]);
    c.current_dir("/").uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    let o = c.output().unwrap();
    common::log(std::path::Path::new("mcexec (as nobody)"), &["/bin/busybox", "id", "-u"], &o);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), nobody.uid.as_raw().to_string());
}
