//! Host side of the monitor page: OS status, panic message, per-CPU
//! heartbeats and states (for `ihk_os_get_status` and `ihkmond`).

use ihk_abi::monitor::{MonitorPage, MONITOR_MAGIC, PANIC_MSG_MAX};
use ihk_abi::{CpuState, OsStatus};
use std::sync::atomic::Ordering;

/// One CPU as `ihkmond` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuMonitor {
    pub lwk_cpu: u32,
    pub linux_cpu: u32,
    pub apic_id: u32,
    /// Advances at every change of the CPU's state and pass of its idle
    /// loop; stops when the CPU stays in one place (hung, or in user mode).
    pub heartbeat: u64,
    pub state: CpuState,
}

pub(crate) struct Monitor {
    page: *const MonitorPage,
}

// SAFETY: the page is shared guest memory read through atomics; its mapping
// outlives the Partition that owns this value.
unsafe impl Send for Monitor {}
unsafe impl Sync for Monitor {}

impl Monitor {
    /// Initialise the page: status BOOTING, every CPU offline.
    ///
    /// # Safety
    /// `base` points at `size_of::<MonitorPage>()` bytes of guest memory
    /// that stay mapped while the value lives; the LWK is not yet running.
    pub unsafe fn init(base: *mut u8, nr_cpus: u32) -> Monitor {
        // SAFETY: contract above.
        unsafe {
            std::ptr::write_bytes(base, 0, std::mem::size_of::<MonitorPage>());
            let p = base as *mut MonitorPage;
            (*p).nr_cpus = nr_cpus;
            (*p).status
                .store(OsStatus::Booting as u32, Ordering::Relaxed);
            (*p).magic = MONITOR_MAGIC;
        }
        Monitor {
            page: base as *const MonitorPage,
        }
    }

    fn page(&self) -> &MonitorPage {
        // SAFETY: initialised in init(), mapped for our lifetime.
        unsafe { &*self.page }
    }

    /// The status word the LWK wrote (BOOTING, RUNNING, PANIC, SHUTDOWN).
    pub fn status(&self) -> OsStatus {
        self.page().os_status().unwrap_or(OsStatus::Hungup)
    }

    /// The LWK's panic message, if it panicked.
    pub fn panic_message(&self) -> Option<String> {
        let p = self.page();
        if p.os_status() != Some(OsStatus::Panic) {
            return None;
        }
        let len = (p.panic_msg_len.load(Ordering::Acquire) as usize).min(PANIC_MSG_MAX);
        let mut bytes = vec![0u8; len];
        for (i, b) in bytes.iter_mut().enumerate() {
            // SAFETY: i < PANIC_MSG_MAX, inside the page.
            *b = unsafe { std::ptr::read_volatile(p.panic_msg.as_ptr().add(i)) };
        }
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The LWK's heartbeat period (0 before it started its tick).
    pub fn heartbeat_period_us(&self) -> u64 {
        self.page().heartbeat_period_us.load(Ordering::Relaxed)
    }

    /// Guest-physical address of CPU 0's noise-trace block (0: none yet).
    pub fn trace_phys(&self) -> u64 {
        self.page().trace_phys.load(Ordering::Acquire)
    }

    pub fn cpus(&self, ids: &[(u32, u32)]) -> Vec<CpuMonitor> {
        let p = self.page();
        ids.iter()
            .enumerate()
            .map(|(i, &(linux_cpu, apic_id))| {
                let slot = &p.cpus[i];
                CpuMonitor {
                    lwk_cpu: i as u32,
                    linux_cpu,
                    apic_id,
                    heartbeat: slot.heartbeat.load(Ordering::Relaxed),
                    state: slot.state(),
                }
            })
            .collect()
    }
}
