//! Monitor page: the OS status word, the panic message, and per-CPU
//! heartbeat + state (what `ihkmond` and `ihk_os_get_status` read).
//!
//! Writers: the host initialises the page (status BOOTING) before entering
//! the vCPUs; afterwards only the LWK writes. The host reads with atomics.

use crate::boot_params::MAX_CPUS;
use crate::status::{CpuState, OsStatus};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// "IHKMON\0\0".
pub const MONITOR_MAGIC: u64 = u64::from_le_bytes(*b"IHKMON\0\0");
/// Bytes of the panic message buffer (NUL-terminated, truncated).
pub const PANIC_MSG_MAX: usize = 256;

/// One CPU's slot.
#[repr(C)]
pub struct CpuMonitorSlot {
    /// Advanced by the CPU at every change of state (kernel entry, return
    /// to user mode, halt, wake) and on every pass of its idle loop: it
    /// stops moving only while the CPU stays in one place. No timer
    /// drives it (a CPU running user code takes no interrupt for it).
    pub heartbeat: AtomicU64,
    /// A [`CpuState`] value.
    pub state: AtomicU32,
    pub _pad: u32,
}

#[repr(C)]
pub struct MonitorPage {
    pub magic: u64,
    pub nr_cpus: u32,
    /// An [`OsStatus`] value.
    pub status: AtomicU32,
    /// Shortest hang-detection window the LWK asks for, in microseconds
    /// (`ihk_heartbeat_ms`; 0 before boot).
    pub heartbeat_period_us: AtomicU64,
    /// LWK id of the CPU that panicked (valid when status is PANIC).
    pub panic_cpu: AtomicU32,
    /// Length of `panic_msg` (written before status becomes PANIC).
    pub panic_msg_len: AtomicU32,
    /// Guest-physical address of CPU 0's noise-trace block (`crate::trace`;
    /// 0: no trace).
    pub trace_phys: AtomicU64,
    pub _reserved: [u64; 3],
    pub panic_msg: [u8; PANIC_MSG_MAX],
    pub cpus: [CpuMonitorSlot; MAX_CPUS],
}

impl MonitorPage {
    pub fn os_status(&self) -> Option<OsStatus> {
        OsStatus::from_u32(self.status.load(Ordering::Acquire))
    }

    pub fn set_os_status(&self, s: OsStatus) {
        self.status.store(s as u32, Ordering::Release);
    }

    #[inline]
    pub fn cpu(&self, lwk_id: usize) -> Option<&CpuMonitorSlot> {
        if lwk_id < (self.nr_cpus as usize).min(MAX_CPUS) {
            Some(&self.cpus[lwk_id])
        } else {
            None
        }
    }
}

impl CpuMonitorSlot {
    #[inline]
    pub fn state(&self) -> CpuState {
        CpuState::from_u32(self.state.load(Ordering::Relaxed))
    }

    #[inline]
    pub fn set_state(&self, s: CpuState) {
        self.state.store(s as u32, Ordering::Relaxed);
    }

    #[inline]
    pub fn beat(&self) {
        self.heartbeat.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::MONITOR_SIZE;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<CpuMonitorSlot>(), 16);
        assert_eq!(offset_of!(MonitorPage, status), 12);
        assert_eq!(offset_of!(MonitorPage, heartbeat_period_us), 16);
        assert_eq!(offset_of!(MonitorPage, panic_cpu), 24);
        assert_eq!(offset_of!(MonitorPage, panic_msg_len), 28);
        assert_eq!(offset_of!(MonitorPage, trace_phys), 32);
        assert_eq!(offset_of!(MonitorPage, panic_msg), 64);
        assert_eq!(offset_of!(MonitorPage, cpus), 64 + PANIC_MSG_MAX);
        assert!(size_of::<MonitorPage>() as u64 <= MONITOR_SIZE);
    }
}
