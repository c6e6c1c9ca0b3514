//! The monitor page: OS status word, per-CPU state and heartbeat, panic
//! message (read by the host for `ihk_os_get_status` and `ihkmond`), and
//! each CPU's user and system time in the rusage page.
//!
//! No timer drives the heartbeat: every change of a CPU's state (entry
//! into the kernel, return to user mode, halt, wake-up, freeze) advances
//! it, and so does every pass of the idle loop ([`beat`]). A CPU running
//! user code shows RUNNING_USER and takes no interrupt for the monitor; a
//! hung CPU is one that shows RUNNING_KERNEL and whose heartbeat stopped
//! (ihkmond). CPU time is charged at the same changes of state, exactly:
//! the time since the previous change goes to user time when the CPU was
//! in user mode, to system time when it was in the kernel.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ihk_abi::boot_params::MAX_CPUS;
use ihk_abi::monitor::{MonitorPage, MONITOR_MAGIC, PANIC_MSG_MAX};
use ihk_abi::rusage::{RusagePage, RUSAGE_MAGIC};
use ihk_abi::{BootParams, CpuState, OsStatus};

use crate::arch::x86_64::{direct_map, tsc};

static MONITOR: AtomicU64 = AtomicU64::new(0);
static RUSAGE: AtomicU64 = AtomicU64::new(0);
/// ns = ticks * NS_MULT >> 32 (a multiplication: a 128-bit division is a
/// call of ~20 instructions, and this runs twice per kernel entry).
static NS_MULT: AtomicU64 = AtomicU64::new(0);
/// Per CPU: TSC of its last change of state (0: none yet).
static SINCE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the state it last published (`CpuState as u32`), kept here so
/// that charging time needs no read back and decoding of the shared page.
static STATE: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(u32::MAX) }; MAX_CPUS];

pub fn init(bp: &BootParams) {
    // SAFETY: the host initialised the page at this identity-mapped address.
    // Through the direct map (mm/phys.rs): valid under any page table.
    let virt = crate::arch::x86_64::direct_map::to_virt(bp.monitor.phys) as u64;
    let m = unsafe { &*(virt as *const MonitorPage) };
    if m.magic == MONITOR_MAGIC {
        MONITOR.store(virt, Ordering::Release);
    }
    let r = direct_map::to_virt(bp.rusage.phys) as u64;
    // SAFETY: as above; the host initialised the rusage page.
    if unsafe { &*(r as *const RusagePage) }.magic == RUSAGE_MAGIC {
        RUSAGE.store(r, Ordering::Release);
    }
    NS_MULT.store(((1_000_000u128 << 32) / bp.tsc_khz.max(1) as u128) as u64, Ordering::Relaxed);
}

fn rusage() -> Option<&'static RusagePage> {
    let p = RUSAGE.load(Ordering::Acquire);
    // SAFETY: validated in init; lives as long as the kernel.
    (p != 0).then(|| unsafe { &*(p as *const RusagePage) })
}

fn page() -> Option<&'static MonitorPage> {
    let p = MONITOR.load(Ordering::Acquire);
    // SAFETY: validated in init; lives as long as the kernel.
    (p != 0).then(|| unsafe { &*(p as *const MonitorPage) })
}

pub fn set_os_status(s: OsStatus) {
    if let Some(m) = page() {
        m.set_os_status(s);
    }
}

/// This CPU changes state: charge the time since its previous change to
/// the state it leaves, publish the new one and beat.
pub fn set_cpu_state(s: CpuState) {
    // Every kernel entry from user mode comes here twice: kept short (each
    // instruction costs ~0.5 us where kernel code is emulated, docs/pvm.md).
    let me = crate::smp::cpu_id() as usize;
    let Some(slot) = page().and_then(|m| m.cpu(me)) else { return };
    let now = tsc::now();
    let last = SINCE[me].swap(now, Ordering::Relaxed);
    let was = STATE[me].swap(s as u32, Ordering::Relaxed);
    if let (Some(r), true) = (rusage(), last != 0 && now > last) {
        let ns = (((now - last) as u128 * NS_MULT.load(Ordering::Relaxed) as u128) >> 32) as u64;
        if was == CpuState::RunningUser as u32 {
            r.cpu_user_ns[me].fetch_add(ns, Ordering::Relaxed);
        } else if was == CpuState::RunningKernel as u32 {
            r.cpu_system_ns[me].fetch_add(ns, Ordering::Relaxed);
        }
    }
    slot.set_state(s);
    slot.beat();
}

/// This CPU makes progress without changing state (a pass of its idle
/// loop).
pub fn beat() {
    if let Some(slot) = page().and_then(|m| m.cpu(crate::smp::cpu_id() as usize)) {
        slot.beat();
    }
}

pub fn set_heartbeat_period_us(us: u64) {
    if let Some(m) = page() {
        m.heartbeat_period_us.store(us, Ordering::Relaxed);
    }
}

/// Record the panic message and CPU, then set PANIC (in that order, so the
/// host sees the message once it sees the status).
pub fn record_panic(cpu: u32, msg: &[u8]) {
    let Some(m) = page() else { return };
    let n = msg.len().min(PANIC_MSG_MAX);
    let dst = m.panic_msg.as_ptr() as *mut u8;
    for (i, &b) in msg[..n].iter().enumerate() {
        // SAFETY: i < PANIC_MSG_MAX, inside the page; the host only reads.
        unsafe { core::ptr::write_volatile(dst.add(i), b) };
    }
    m.panic_cpu.store(cpu, Ordering::Relaxed);
    m.panic_msg_len.store(n as u32, Ordering::Release);
    m.set_os_status(OsStatus::Panic);
}

/// Publish where the noise-trace blocks are (`ihk_abi::trace`).
pub fn set_trace_phys(phys: u64) {
    if let Some(m) = page() {
        m.trace_phys.store(phys, Ordering::Release);
    }
}

/// (user, system) nanoseconds of LWK CPU `cpu` charged so far.
pub fn cpu_times_ns(cpu: usize) -> (u64, u64) {
    match rusage() {
        Some(r) if cpu < MAX_CPUS => (r.cpu_user_ns[cpu].load(Ordering::Relaxed), r.cpu_system_ns[cpu].load(Ordering::Relaxed)),
        _ => (0, 0),
    }
}
