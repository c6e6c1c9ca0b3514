//! The IHK functions libihk adds to the commands' set, through the Rust
//! client they share: freeze and thaw, rusage, NUMA nodes and page sizes,
//! memory dumps that gdb opens, eventfds, and the reservation settings.

mod common;
use common::*;

use std::path::Path;
use std::time::{Duration, Instant};

use ihk::client::Client;
use ihk::paths::RuntimeDir;
use ihk::proto::libihk::{EventType, MemConfKey};

fn wait_status(c: &mut Client, want: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let s = c.os_get_status().unwrap();
        if s == want || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `gdb -batch` on the LWK image and a core; returns its stdout.
fn gdb(core: &Path, cmd: &str) -> String {
    let out = std::process::Command::new("gdb")
        .args(["-nx", "-batch", "-ex", cmd])
        .arg(image())
        .arg(core)
        .output()
        .expect("running gdb (apt-get install gdb)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "$ gdb -batch -ex '{cmd}' mckernel.img {}\n{text}{}",
        core.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn freeze_thaw_rusage_and_dumps() {
    if !can_run("freeze_thaw_rusage_and_dumps") {
        return;
    }
    let node = Node::new();
    node.ok(MCREBOOT, &["-c", "1", "-m", "128M"]);
    let dir = RuntimeDir(node.runtime_dir().to_path_buf());
    let mut c = Client::os(&dir, 0).unwrap();
    assert_eq!(c.os_get_status().unwrap(), "RUNNING");

    // Thawing a running instance is EINVAL; freezing goes to FROZEN.
    assert_eq!(c.os_thaw().unwrap_err().errno, libc::EINVAL);
    c.os_freeze().unwrap();
    assert_eq!(
        wait_status(&mut c, "FROZEN", Duration::from_secs(5)),
        "FROZEN"
    );
    assert_eq!(c.os_freeze().unwrap_err().errno, libc::EBUSY);
    assert!(c.os_kmsg().unwrap().contains("Freeze requested"));
    // Frozen: CPU states say so (not a hang: ihkmond only suspects a CPU
    // that is busy in the kernel).
    let w1 = c.os_watch(None).unwrap();
    assert!(
        w1.cpus
            .iter()
            .all(|x| x.state == ihk_vm::CpuState::Frozen as u32),
        "{w1:?}"
    );
    c.os_thaw().unwrap();
    assert_eq!(c.os_get_status().unwrap(), "RUNNING");
    assert_eq!(c.os_thaw().unwrap_err().errno, libc::EINVAL);
    std::thread::sleep(Duration::from_millis(200));
    let w3 = c.os_watch(None).unwrap();
    assert!(
        w3.cpus
            .iter()
            .all(|x| x.state != ihk_vm::CpuState::Frozen as u32),
        "{w3:?}"
    );

    // Rusage: the kernel holds memory; the CPU's time is sampled.
    let r = c.os_get_rusage().unwrap();
    eprintln!("{r:?}");
    assert_eq!(r.cpu_user_ns.len(), 1);
    assert!(r.memory_kmem_usage > 0, "{r:?}");
    assert_eq!(r.memory_numa.len(), 1);
    assert_eq!(r.memory_numa[0].0, 0);
    let info = c.os_info().unwrap();
    assert_eq!(info.numa_nodes, vec![0]);
    assert!(info.pagesizes.starts_with(&[4096, 2 << 20]), "{info:?}");

    // Dumps: level 24 and 0 open in gdb with the image, registers and all.
    let tmp = tempfile::tempdir().unwrap();
    let core24 = tmp.path().join("mcdump.24");
    let d = c.os_makedumpfile(&core24, 24, false).unwrap();
    assert_eq!(d.cpus_with_registers, 1);
    assert!(
        d.memory_bytes < 128 << 20,
        "level 24 leaves free pages out: {d:?}"
    );
    let regs = gdb(&core24, "info registers rip");
    assert!(
        regs.contains("rip") && regs.contains("0xffffffff8"),
        "rip in the kernel window"
    );
    let core0 = tmp.path().join("mcdump.0");
    let d0 = c.os_makedumpfile(&core0, 0, false).unwrap();
    assert_eq!(d0.memory_bytes, 128 << 20);
    // Kernel data is readable through the image's symbols' addresses:
    // the boot banner lies in the kmsg buffer, identity-mapped at 0x80000.
    let kmsg = gdb(&core0, "x/s 0xffff800000080040");
    assert!(
        kmsg.contains("IHK/McKernel started."),
        "kmsg through the direct map"
    );
    // Interactive: headers and registers only.
    let corei = tmp.path().join("mcdump.i");
    let di = c.os_makedumpfile(&corei, 0, true).unwrap();
    assert!(di.file_size < 1 << 20);

    // The documented errors; a failed dump leaves no file.
    assert_eq!(
        c.os_makedumpfile(&core24, 24, false).unwrap_err().errno,
        libc::EEXIST
    );
    let missing = tmp.path().join("no/such/dir/core");
    assert_eq!(
        c.os_makedumpfile(&missing, 0, false).unwrap_err().errno,
        libc::ENOENT
    );
    assert_eq!(
        c.os_makedumpfile(Path::new(""), 0, false)
            .unwrap_err()
            .errno,
        libc::ENOENT
    );
    let bad = tmp.path().join("bad-level");
    assert_eq!(
        c.os_makedumpfile(&bad, 3, false).unwrap_err().errno,
        libc::EINVAL
    );
    assert!(!bad.exists());

    // The command shares the call (§1.3.2.17), with its error lines.
    let cmd_core = tmp.path().join("cmd.dump");
    node.ihkosctl(0, &["dump", "-d", "24", cmd_core.to_str().unwrap()]);
    assert!(cmd_core.exists());
    let (code, err) = node.fails(IHKOSCTL, &["0", "dump", cmd_core.to_str().unwrap()]);
    assert_eq!(code, libc::EEXIST);
    assert!(err.starts_with("Error: File exists"), "{err}");
    let (code, err) = node.fails(IHKOSCTL, &["0", "dump", missing.to_str().unwrap()]);
    assert_eq!(code, libc::ENOENT);
    assert!(err.starts_with("Error: No such file or directory"), "{err}");
    let (code, err) = node.fails(IHKOSCTL, &["0", "dump", "-d", "7", bad.to_str().unwrap()]);
    assert_eq!(code, libc::EINVAL);
    assert!(err.starts_with("Error: Invalid argument"), "{err}");

    // Eventfds: type 0 and 2 exist, others are EINVAL at the C layer.
    let _ev = c.os_get_eventfd(EventType::Status).unwrap();
    drop(c);

    node.ok(MCSTOP, &[]);
    node.assert_clean();
}

#[test]
fn reserve_mem_conf_applies_to_the_next_reservation_only() {
    if !can_run("reserve_mem_conf_applies_to_the_next_reservation_only") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    let dir = RuntimeDir(node.runtime_dir().to_path_buf());
    let mut dev = Client::device(&dir, 0).unwrap();
    assert_eq!(
        dev.reserve_mem_conf(MemConfKey::MaxSizeRatioAll, 99)
            .unwrap_err()
            .errno,
        libc::EINVAL
    );
    // Balanced, 2 x 64 MiB asked on node 0: 128 MiB there.
    dev.reserve_mem_conf(MemConfKey::BalancedEnable, 1).unwrap();
    dev.reserve_mem(&ihk::list::MemList::parse("64M@0,64M@0").unwrap())
        .unwrap();
    assert_eq!(dev.query_mem().unwrap(), vec![(128 << 20, 0)]);
    // A 1 GiB minimum chunk cannot be met with 64 MiB: ENOMEM, nothing
    // reserved; the setting is gone afterwards.
    dev.reserve_mem_conf(MemConfKey::MinChunkSize, 1 << 30)
        .unwrap();
    let e = dev
        .reserve_mem(&ihk::list::MemList::parse("64M@0").unwrap())
        .unwrap_err();
    assert_eq!(e.errno, libc::ENOMEM, "{e}");
    assert_eq!(dev.query_mem().unwrap(), vec![(128 << 20, 0)]);
    dev.reserve_mem(&ihk::list::MemList::parse("64M@0").unwrap())
        .unwrap();
    assert_eq!(dev.query_mem().unwrap(), vec![(192 << 20, 0)]);
    drop(dev);
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}

#[test]
fn a_cpu_that_cannot_stop_leaves_the_instance_freezing_until_thawed() {
    if !can_run("a_cpu_that_cannot_stop_leaves_the_instance_freezing_until_thawed") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    // Two LWK CPUs; the last one (Linux CPU 1) spins with interrupts off.
    node.ihkconfig(&["reserve", "cpu", "0,1"]);
    node.ihkconfig(&["reserve", "mem", "64M"]);
    node.ihkconfig(&["create"]);
    node.ihkosctl(0, &["assign", "cpu", "0,1"]);
    node.ihkosctl(0, &["assign", "mem", "all"]);
    node.ihkosctl(0, &["load", image().to_str().unwrap()]);
    node.ihkosctl(0, &["kargs", "hidos ihk_test_hang=300"]);
    node.ihkosctl(0, &["boot"]);
    let dir = RuntimeDir(node.runtime_dir().to_path_buf());
    let mut c = Client::os(&dir, 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c.os_kmsg().unwrap().contains("hangs now") {
        assert!(Instant::now() < deadline, "the test hang did not happen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Without ihkmond nobody marks it HUNGUP: it is RUNNING, and a freeze
    // stops CPU 0 only.
    assert_eq!(c.os_get_status().unwrap(), "RUNNING");
    c.os_freeze().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.os_get_status().unwrap(), "FREEZING");
    let w = c.os_watch(None).unwrap();
    assert_eq!(w.cpus[0].state, ihk_vm::CpuState::Frozen as u32, "{w:?}");
    assert_eq!(
        w.cpus[1].state,
        ihk_vm::CpuState::RunningKernel as u32,
        "{w:?}"
    );
    assert_eq!(c.os_freeze().unwrap_err().errno, libc::EBUSY);
    // Thaw cancels the transition.
    c.os_thaw().unwrap();
    assert_eq!(c.os_get_status().unwrap(), "RUNNING");
    drop(c);
    // The hung CPU ignores the shutdown request: ihkd stops it by force.
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}
