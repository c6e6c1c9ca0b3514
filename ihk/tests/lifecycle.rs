//! The administrator's session of issue #2: mcreboot, look at the
//! partition, mcstop+release, and the node is as before.

mod common;
use common::*;

#[test]
fn mcreboot_inspect_mcstop_release() {
    if !can_run("mcreboot_inspect_mcstop_release") {
        return;
    }
    let node = Node::new();

    // Boot: silent and successful.
    let out = node.run(MCREBOOT, &["-c", "1", "-m", "512M"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "mcreboot prints nothing on success");
    let pid = node.ihkd_pid().expect("mcreboot started ihkd");

    assert_eq!(node.ihkosctl(0, &["get", "status"]), "RUNNING");
    let kmsg = node.ihkosctl(0, &["kmsg"]);
    assert!(kmsg.contains("Linux CPU 1"), "kmsg names CPU 1:\n{kmsg}");
    assert!(
        kmsg.contains("536870912 bytes") && kmsg.contains("NUMA: 0"),
        "kmsg names 512 MiB on NUMA 0:\n{kmsg}"
    );
    assert!(kmsg.contains("booted"), "kmsg has the booted line:\n{kmsg}");

    // Queries, in the specification's list formats.
    assert_eq!(node.ihkconfig(&["query", "cpu"]), "1");
    assert_eq!(node.ihkosctl(0, &["query", "cpu"]), "1");
    assert_eq!(node.ihkosctl(0, &["query", "mem"]), "536870912@0");
    assert_eq!(
        node.ihkconfig(&["query", "mem"]),
        "",
        "all reserved memory is assigned"
    );
    assert_eq!(node.ihkconfig(&["get", "os_instances"]), "0");
    assert_eq!(node.ihkosctl(0, &["get", "ikc_map"]), "1:0");
    let free = node.ihkosctl(0, &["query_free_mem"]);
    assert!(free.ends_with("@0"), "free memory per node: {free}");

    // clear_kmsg empties the buffer.
    node.ihkosctl(0, &["clear_kmsg"]);
    assert!(!node.ihkosctl(0, &["kmsg"]).contains("booted"));

    // mcreboot again reboots on the same resources.
    node.ok(MCREBOOT, &["-c", "1", "-m", "512M"]);
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "RUNNING");
    assert_eq!(node.ihkd_pid(), Some(pid), "the running ihkd is reused");

    // Give everything back.
    node.ok(MCSTOP, &[]);
    assert!(!process_alive(pid), "ihkd is gone");
    node.assert_clean();
    let (code, err) = node.fails(IHKCONFIG, &["0", "query", "cpu"]);
    assert_eq!(code, libc::ENOENT, "{err}");
    // Idempotent.
    node.ok(MCSTOP, &[]);
}

#[test]
fn step_by_step_with_the_commands() {
    if !can_run("step_by_step_with_the_commands") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    node.ihkconfig(&["reserve", "mem", "256M@0"]);
    node.ihkconfig(&["reserve", "cpu", "1"]);
    assert_eq!(node.ihkconfig(&["query", "mem"]), "268435456@0");
    // The query output is accepted back by release/reserve.
    let mem = node.ihkconfig(&["query", "mem"]);
    node.ihkconfig(&["release", "mem", &mem]);
    node.ihkconfig(&["reserve", "mem", &mem]);
    assert_eq!(node.ihkconfig(&["create"]), "0");
    node.ihkosctl(0, &["assign", "cpu", "1"]);
    node.ihkosctl(0, &["assign", "mem", "all"]);
    assert_eq!(node.ihkconfig(&["query", "mem"]), "");
    node.ihkosctl(0, &["set", "ikc_map", "1:0"]);
    node.ihkosctl(0, &["load", image().to_str().unwrap()]);
    node.ihkosctl(0, &["kargs", "hidos"]);
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "INACTIVE");
    node.ihkosctl(0, &["boot"]);
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "RUNNING");
    // Booted: the configuration is frozen.
    let (code, _) = node.fails(IHKOSCTL, &["0", "release", "cpu", "1"]);
    assert_eq!(code, libc::EBUSY);
    node.ihkosctl(0, &["shutdown"]);
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "INACTIVE");
    // Shutdown returned CPUs and memory to the reserved state.
    assert_eq!(node.ihkosctl(0, &["query", "cpu"]), "");
    assert_eq!(node.ihkconfig(&["query", "mem"]), "268435456@0");
    assert_eq!(node.ihkconfig(&["query", "cpu"]), "1");
    // Shutting down an instance that is not booted is an error.
    let (code, _) = node.fails(IHKOSCTL, &["0", "shutdown"]);
    assert_eq!(code, libc::EINVAL);
    node.ihkconfig(&["destroy", "0"]);
    let (code, err) = node.fails(IHKOSCTL, &["0", "get", "status"]);
    assert_eq!(code, libc::ENOENT);
    assert!(err.starts_with("Error: OS instance not found"), "{err}");
    let cpus = node.ihkconfig(&["query", "cpu"]);
    node.ihkconfig(&["release", "cpu", &cpus]);
    node.ihkconfig(&["release", "mem", "all"]);
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}

#[test]
fn one_ihkd_per_runtime_dir_and_sigterm_releases_everything() {
    if !can_run("one_ihkd_per_runtime_dir_and_sigterm_releases_everything") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    // A second daemon on the same directory refuses, foreground or not.
    let (code, err) = node.fails(IHKD, &["--foreground", "--isolation=pin"]);
    assert_ne!(code, 0);
    assert!(err.contains("another ihkd"), "{err}");
    let (_, err) = node.fails(IHKD, &[]);
    assert!(err.contains("another ihkd"), "{err}");
    assert!(
        node.ihkconfig(&["query", "cpu"]).is_empty(),
        "the first one still serves"
    );

    // A booted partition, then SIGTERM: ihkd shuts it down, releases
    // everything, restores the node and exits.
    node.ihkconfig(&["reserve", "cpu", "1"]);
    node.ihkconfig(&["reserve", "mem", "64M"]);
    node.ihkconfig(&["create"]);
    node.ihkosctl(0, &["assign", "cpu", "1"]);
    node.ihkosctl(0, &["assign", "mem", "all"]);
    node.ihkosctl(0, &["load", image().to_str().unwrap()]);
    node.ihkosctl(0, &["kargs", "hidos"]);
    node.ihkosctl(0, &["boot"]);
    let pid = node.ihkd_pid().unwrap();
    // Our own child: signalling it is allowed.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    node.reap_ihkd();
    node.assert_clean();
}

/// ihkd is a daemon: it keeps none of its starter's descriptors. A caller
/// that runs `flock <lock> mcreboot ...` (the way partition tests and
/// manual boots share this machine) must not find its lock held by ihkd
/// after it exits.
#[test]
fn ihkd_keeps_no_descriptor_of_the_caller_of_mcreboot() {
    if !can_run("ihkd_keeps_no_descriptor_of_the_caller_of_mcreboot") {
        return;
    }
    let mut node = Node::new();
    let held = node.runtime_dir().with_file_name(format!(
        "{}.held",
        node.runtime_dir().file_name().unwrap().to_string_lossy()
    ));
    node.env.push(("HELD".into(), held.display().to_string()));
    node.env.push(("MCREBOOT".into(), MCREBOOT.into()));
    let out = node.run("/bin/sh", &["-c", "exec 7>>\"$HELD\"; exec \"$MCREBOOT\" -c 1 -m 256M"]);
    node.env.clear();
    assert!(out.status.success());
    let pid = node.ihkd_pid().expect("mcreboot started ihkd");
    let leaked: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| *t == held)
        .map(|t| t.display().to_string())
        .collect();
    let _ = std::fs::remove_file(&held);
    assert!(leaked.is_empty(), "ihkd holds its starter's {leaked:?}");
    node.ok(MCSTOP, &[]);
    node.assert_clean();
}
