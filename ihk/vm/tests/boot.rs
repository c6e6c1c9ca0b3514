//! Real KVM boots of the LWK: a user's session in code (reserve memory,
//! boot on pinned CPUs, read kmsg/status/heartbeats, shut down).
//!
//! Needs /dev/kvm and root (skips with a message otherwise). Tests run one
//! at a time (they share the machine's two CPUs and check thread lists).

use ihk_abi::layout::MONITOR_GPA;
use ihk_abi::MonitorPage;
use ihk_vm::{BootSpec, ChunkSpec, CpuSpec, CpuState, OsStatus, Partition, VmError};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn can_run() -> bool {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("SKIP: /dev/kvm is absent");
        return false;
    }
    // SAFETY: geteuid has no side effects.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: needs root (mlock of guest memory, pinning)");
        return false;
    }
    true
}

fn ncpus() -> u32 {
    // SAFETY: sysconf has no side effects.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) as u32 }
}

/// KVM, root, and CPUs 0 and 1 (the tests pin vCPUs there).
fn can_run_on_two_cpus() -> bool {
    if !can_run() {
        return false;
    }
    if ncpus() < 2 {
        eprintln!("SKIP: needs host CPUs 0 and 1");
        return false;
    }
    true
}

/// Reserved memory as ihk would hand it in: memfd, shared mapping,
/// populated and locked. Unmapped and closed on drop.
struct Reserved {
    fd: OwnedFd,
    addr: *mut u8,
    size: usize,
}

impl Reserved {
    fn new(size: usize) -> Reserved {
        // SAFETY: plain syscalls with checked results; the mapping is owned
        // by the returned value and released in Drop.
        unsafe {
            let fd = libc::memfd_create(c"ihk-vm-test".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), size as i64), 0);
            let addr = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            );
            assert_ne!(
                addr,
                libc::MAP_FAILED,
                "mmap: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(
                libc::mlock(addr, size),
                0,
                "mlock: {}",
                std::io::Error::last_os_error()
            );
            Reserved {
                fd,
                addr: addr as *mut u8,
                size,
            }
        }
    }

    /// The monitor page as the LWK left it (readable after shutdown: the
    /// memory is ours).
    fn monitor_page(&self) -> &MonitorPage {
        // SAFETY: MONITOR_GPA lies in chunk 0, which starts at our mapping;
        // the page is plain atomics and integers.
        unsafe { &*(self.addr.add(MONITOR_GPA as usize) as *const MonitorPage) }
    }

    /// LWK status word and per-CPU states after the partition is gone.
    fn final_states(&self, ncpu: usize) -> (Option<OsStatus>, Vec<CpuState>) {
        let m = self.monitor_page();
        (
            m.os_status(),
            (0..ncpu).map(|i| m.cpus[i].state()).collect(),
        )
    }

    fn chunk(&self) -> ChunkSpec {
        ChunkSpec {
            host_addr: self.addr,
            size: self.size as u64,
            numa_id: 0,
            memfd: self.fd.as_raw_fd(),
            memfd_offset: 0,
        }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in new().
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.size) };
    }
}

fn spec(mem: &Reserved, cpus: &[u32], kargs: &str) -> BootSpec {
    BootSpec {
        image: std::fs::read(ihk_vm::LWK_IMAGE_PATH).expect("mckernel.img"),
        kargs: kargs.into(),
        cpus: cpus
            .iter()
            .map(|&c| CpuSpec {
                linux_cpu: c,
                numa_id: 0,
                ikc_dest_linux_cpu: c,
            })
            .collect(),
        chunks: vec![mem.chunk()],
    }
}

/// Names of this process's threads that belong to a partition.
fn partition_threads() -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(name) = std::fs::read_to_string(e.path().join("comm")) {
            let name = name.trim().to_string();
            if name.starts_with("ihk-vcpu") || name.starts_with("ihk-ikc") {
                v.push(name);
            }
        }
    }
    v
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn apic_id_of(cpu: u32) -> u32 {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let mut cur = None;
    for l in text.lines() {
        let mut kv = l.splitn(2, ':').map(str::trim);
        match (kv.next(), kv.next()) {
            (Some("processor"), Some(v)) => cur = v.parse::<u32>().ok(),
            (Some("apicid"), Some(v)) if cur == Some(cpu) => return v.parse().unwrap(),
            _ => {}
        }
    }
    cpu
}

#[test]
fn one_cpu_boots_runs_and_shuts_down() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run_on_two_cpus() {
        return;
    }
    let mem = Reserved::new(256 << 20);
    let p = Partition::boot(spec(&mem, &[1], "hidos ksyslogd=0")).unwrap();
    p.wait_booted(Duration::from_secs(10)).unwrap();
    println!("boot time (1 CPU, 256 MiB): {:?}", p.boot_time().unwrap());
    assert_eq!(p.status(), OsStatus::Running);

    let k = p.kmsg();
    println!("{k}");
    assert!(k.starts_with("IHK/McKernel started."), "{k}");
    assert!(k.contains("KCommand Line: hidos ksyslogd=0"), "{k}");
    assert!(
        k.contains("Memory chunk 0: 0x0 - 0x10000000 (268435456 bytes) @ NUMA: 0"),
        "{k}"
    );
    assert!(
        k.contains(&format!("CPU 0: Linux CPU 1, APIC ID {}", apic_id_of(1))),
        "{k}"
    );
    assert!(k.contains("BSP: booted 0 AP CPUs"), "{k}");
    assert!(
        k.trim_end().ends_with("IHK/McKernel booted.") || k.contains("IHK/McKernel booted.\n"),
        "{k}"
    );

    // The LWK's clock (host realtime + TSC delta) agrees with the host's.
    let line = k
        .lines()
        .find(|l| l.contains("Clock: realtime "))
        .expect("clock line");
    let lwk_secs: f64 = line
        .rsplit("realtime ")
        .next()
        .unwrap()
        .trim_end_matches(" s")
        .parse()
        .unwrap();
    let host_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (host_secs - lwk_secs).abs() < 2.0,
        "LWK clock {lwk_secs} vs host {host_secs}"
    );

    let free = p.free_mem();
    assert_eq!(free.len(), 1);
    assert_eq!(free[0].0, 0);
    assert!(
        free[0].1 > 200 << 20 && free[0].1 < 256 << 20,
        "free {free:?}"
    );

    let layout = p.guest_layout();
    assert_eq!(layout.len(), 1);
    assert_eq!((layout[0].gpa, layout[0].size), (0, 256 << 20));

    let m0 = p.monitor();
    assert_eq!(m0.len(), 1);
    assert_eq!(m0[0].linux_cpu, 1);
    wait_for("CPU idle", Duration::from_secs(3), || {
        p.monitor()[0].state == CpuState::Idle
    });
    idle_without_tick(&p);

    p.clear_kmsg();
    assert_eq!(p.kmsg(), "");

    assert!(!partition_threads().is_empty());
    let t = Instant::now();
    p.shutdown(Duration::from_secs(5)).unwrap();
    println!("shutdown took {:?}", t.elapsed());
    assert_eq!(partition_threads(), Vec::<String>::new());
    // Orderly: the LWK itself set SHUTDOWN and halted its CPU.
    assert_eq!(
        mem.final_states(1),
        (Some(OsStatus::Shutdown), vec![CpuState::Halted])
    );
}

/// Every CPU of the booted, idle `p` has beaten (its boot and idle loop
/// moved the heartbeat) and then stays halted: no periodic timer wakes an
/// idle CPU, so its heartbeat stands still while it is idle.
fn idle_without_tick(p: &Partition) {
    let a = p.monitor();
    assert!(a.iter().all(|m| m.heartbeat > 0), "{a:?}");
    std::thread::sleep(Duration::from_millis(300));
    let b = p.monitor();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (y.state, y.heartbeat),
            (CpuState::Idle, x.heartbeat),
            "an idle CPU woke up: {a:?} then {b:?}"
        );
    }
}

#[test]
fn two_cpus_512m_boot_time_and_heartbeats() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run_on_two_cpus() {
        return;
    }
    let mem = Reserved::new(512 << 20);
    let t = Instant::now();
    let p = Partition::boot(spec(&mem, &[0, 1], "hidos")).unwrap();
    let setup = t.elapsed();
    p.wait_booted(Duration::from_secs(10)).unwrap();
    let total = t.elapsed();
    println!(
        "boot time (2 CPUs, 512 MiB): {total:?} from Partition::boot to RUNNING (VM setup {setup:?}, target < 300 ms)"
    );
    let k = p.kmsg();
    println!("{k}");
    assert!(
        k.contains(&format!("CPU 0: Linux CPU 0, APIC ID {}", apic_id_of(0))),
        "{k}"
    );
    assert!(
        k.contains(&format!("CPU 1: Linux CPU 1, APIC ID {}", apic_id_of(1))),
        "{k}"
    );
    assert!(k.contains("AP: 1 ("), "{k}");
    assert!(k.contains("BSP: booted 1 AP CPUs"), "{k}");
    assert!(
        k.contains("Memory chunk 0: 0x0 - 0x20000000 (536870912 bytes) @ NUMA: 0"),
        "{k}"
    );
    let m0 = p.monitor();
    assert_eq!(m0.iter().map(|m| m.linux_cpu).collect::<Vec<_>>(), [0, 1]);
    wait_for("both CPUs idle", Duration::from_secs(3), || {
        p.monitor().iter().all(|m| m.state == CpuState::Idle)
    });
    idle_without_tick(&p);
    p.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(partition_threads(), Vec::<String>::new());
    assert_eq!(
        mem.final_states(2),
        (
            Some(OsStatus::Shutdown),
            vec![CpuState::Halted, CpuState::Halted]
        )
    );
}

#[test]
fn test_panic_after_boot_sets_panic_and_logs() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run_on_two_cpus() {
        return;
    }
    let mem = Reserved::new(64 << 20);
    let p = Partition::boot(spec(&mem, &[1], "hidos ihk_test_panic=150")).unwrap();
    p.wait_booted(Duration::from_secs(10)).unwrap();
    wait_for("status PANIC", Duration::from_secs(5), || {
        p.status() == OsStatus::Panic
    });
    let k = p.kmsg();
    assert!(
        k.contains(
            "Kernel panic - not syncing: ihk_test_panic: panic requested by kernel argument"
        ),
        "{k}"
    );
    wait_for("CPU halted", Duration::from_secs(2), || {
        p.monitor()[0].state == CpuState::Halted
    });
    p.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(partition_threads(), Vec::<String>::new());
    assert_eq!(
        mem.final_states(1),
        (Some(OsStatus::Panic), vec![CpuState::Halted])
    );
}

#[test]
fn test_panic_during_boot_fails_wait_booted() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run_on_two_cpus() {
        return;
    }
    let mem = Reserved::new(64 << 20);
    let p = Partition::boot(spec(&mem, &[0, 1], "hidos ihk_test_panic=0")).unwrap();
    match p.wait_booted(Duration::from_secs(10)) {
        Err(VmError::Panic { msg }) => assert!(msg.contains("ihk_test_panic=0"), "{msg}"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(p.status(), OsStatus::Panic);
    drop(p); // Drop tears down like shutdown.
    assert_eq!(partition_threads(), Vec::<String>::new());
}

#[test]
fn fatal_cpu_exception_panics_with_the_fault_in_kmsg() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run_on_two_cpus() {
        return;
    }
    let mem = Reserved::new(64 << 20);
    let p = Partition::boot(spec(&mem, &[0, 1], "hidos ihk_test_fault=20")).unwrap();
    p.wait_booted(Duration::from_secs(10)).unwrap();
    wait_for("status PANIC", Duration::from_secs(5), || {
        p.status() == OsStatus::Panic
    });
    let k = p.kmsg();
    assert!(
        k.contains(
            "Kernel panic - not syncing: Fatal exception 14 (#PF page fault) at rip 0xffffffff8"
        ),
        "{k}"
    );
    assert!(k.contains("address 0x10"), "{k}");
    // The other CPU was stopped by the panic's NMI.
    wait_for("all CPUs halted", Duration::from_secs(2), || {
        p.monitor().iter().all(|m| m.state == CpuState::Halted)
    });
    p.shutdown(Duration::from_secs(2)).unwrap();
    assert_eq!(partition_threads(), Vec::<String>::new());
}

#[test]
fn hung_cpu_freezes_heartbeat_and_shutdown_still_completes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run_on_two_cpus() {
        return;
    }
    let mem = Reserved::new(64 << 20);
    let p = Partition::boot(spec(
        &mem,
        &[0, 1],
        "hidos ihk_test_hang=50 ihk_heartbeat_ms=20",
    ))
    .unwrap();
    p.wait_booted(Duration::from_secs(10)).unwrap();
    wait_for("hang", Duration::from_secs(3), || {
        p.kmsg().contains("ihk_test_hang: CPU 1 hangs now")
    });
    std::thread::sleep(Duration::from_millis(50));
    let a = p.monitor();
    std::thread::sleep(Duration::from_millis(200));
    let b = p.monitor();
    assert_eq!(
        b[1].heartbeat, a[1].heartbeat,
        "hung CPU's heartbeat must be frozen"
    );
    assert_eq!(b[1].state, CpuState::RunningKernel);
    // CPU 0 is not hung: it is halted in its idle loop (no timer wakes
    // it), or busy with its heartbeat moving.
    assert!(
        b[0].state == CpuState::Idle || b[0].heartbeat > a[0].heartbeat,
        "CPU 0 looks hung too: {a:?} then {b:?}"
    );
    assert_eq!(p.status(), OsStatus::Running);
    let t = Instant::now();
    p.shutdown(Duration::from_millis(300)).unwrap();
    println!("shutdown with a hung CPU took {:?}", t.elapsed());
    assert_eq!(partition_threads(), Vec::<String>::new());
    // CPU 0 stopped itself; the hung CPU never did and was kicked out.
    assert_eq!(
        mem.final_states(2),
        (
            Some(OsStatus::Shutdown),
            vec![CpuState::Halted, CpuState::RunningKernel]
        )
    );
}

#[test]
fn bad_input_is_rejected_without_side_effects() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let mem = Reserved::new(64 << 20);
    let e = Partition::boot(spec(&mem, &[0], "nohidos")).err().unwrap();
    assert!(e.to_string().contains("must contain \"hidos\""), "{e}");
    let mut s = spec(&mem, &[0], "hidos");
    s.image = b"not an elf".to_vec();
    assert!(Partition::boot(s)
        .err()
        .unwrap()
        .to_string()
        .contains("LWK image"));
    let e = Partition::boot(spec(&mem, &[9999], "hidos")).err().unwrap();
    assert!(
        e.to_string().contains("Linux CPU 9999 does not exist"),
        "{e}"
    );
    let e = Partition::boot(spec(&mem, &[0, 0], "hidos")).err().unwrap();
    assert!(e.to_string().contains("assigned twice"), "{e}");
    let small = Reserved::new(8 << 20);
    let e = Partition::boot(spec(&small, &[0], "hidos")).err().unwrap();
    assert!(e.to_string().contains("first chunk is 8 MiB"), "{e}");
    assert!(ihk_vm::validate_image(b"\x7fELF").is_err());
    ihk_vm::validate_image(&std::fs::read(ihk_vm::LWK_IMAGE_PATH).unwrap()).unwrap();
    assert_eq!(partition_threads(), Vec::<String>::new());
}
