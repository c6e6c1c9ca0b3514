//! The monitor page: OS status word, per-CPU state and heartbeat, panic
//! message (read by the host for `ihk_os_get_status` and `ihkmond`).

use core::sync::atomic::{AtomicU64, Ordering};
use ihk_abi::monitor::{MonitorPage, MONITOR_MAGIC, PANIC_MSG_MAX};
use ihk_abi::{BootParams, CpuState, OsStatus};

static MONITOR: AtomicU64 = AtomicU64::new(0);

pub fn init(bp: &BootParams) {
    // SAFETY: the host initialised the page at this identity-mapped address.
    // Through the direct map (mm/phys.rs): valid under any page table.
    let virt = crate::arch::x86_64::direct_map::to_virt(bp.monitor.phys) as u64;
    let m = unsafe { &*(virt as *const MonitorPage) };
    if m.magic == MONITOR_MAGIC {
        MONITOR.store(virt, Ordering::Release);
    }
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

pub fn set_cpu_state(s: CpuState) {
    if let Some(slot) = page().and_then(|m| m.cpu(crate::smp::cpu_id() as usize)) {
        slot.set_state(s);
    }
}

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
