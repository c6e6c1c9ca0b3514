//! The TSC-deadline timer shared by two users on each CPU: the kernel's
//! own deadline (test deadlines, `timer.rs`) and the
//! scheduler's (end of a time slice, earliest timed wait, `process/sched`).
//! The timer is programmed for the earlier of the two; 0 means none.

use core::sync::atomic::{AtomicU64, Ordering};

use ihk_abi::boot_params::MAX_CPUS;

static KERNEL_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SCHED_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn me() -> usize {
    super::percpu::cpu_id() as usize
}

fn program(c: usize) {
    let (k, s) = (KERNEL_AT[c].load(Ordering::Relaxed), SCHED_AT[c].load(Ordering::Relaxed));
    let at = match (k, s) {
        (0, x) | (x, 0) => x,
        (k, s) => k.min(s),
    };
    super::x2apic::set_deadline(at);
}

/// The kernel's next deadline on this CPU (TSC).
pub fn set_kernel(at: u64) {
    let c = me();
    KERNEL_AT[c].store(at, Ordering::Relaxed);
    program(c);
}

/// The scheduler's next deadline on this CPU (TSC; 0: none).
pub fn set_sched(at: u64) {
    let c = me();
    if SCHED_AT[c].swap(at, Ordering::Relaxed) != at {
        program(c);
    }
}

/// At a timer interrupt: did the scheduler's deadline pass? (It is
/// cleared then: the scheduler sets its next one.)
pub fn take_sched_due(now: u64) -> bool {
    let c = me();
    let s = SCHED_AT[c].load(Ordering::Relaxed);
    if s != 0 && now >= s {
        SCHED_AT[c].store(0, Ordering::Relaxed);
        true
    } else {
        false
    }
}
