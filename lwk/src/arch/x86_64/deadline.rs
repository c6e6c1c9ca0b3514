//! The TSC-deadline timer shared by four users on each CPU: the kernel's
//! own deadline (test deadlines, `timer.rs`), the scheduler's (end of a
//! time slice, earliest timed wait, `process/sched`), the POSIX timers on
//! wall clocks armed from this CPU (`process/ptimer`), and the CPU-time
//! timers (ITIMER_VIRTUAL/PROF, CPU-clock POSIX timers) of the thread
//! running here (`process/cputime`). The timer is programmed for the
//! earliest of them; 0 means none, and a CPU whose users all say 0 takes
//! no timer interrupt.

use core::sync::atomic::{AtomicU64, Ordering};

use ihk_abi::boot_params::MAX_CPUS;

/// Who asks for a deadline.
#[derive(Clone, Copy)]
pub enum User {
    Kernel = 0,
    Sched = 1,
    Timers = 2,
    CpuTime = 3,
}

const USERS: usize = 4;

static AT: [[AtomicU64; USERS]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; USERS] }; MAX_CPUS];

fn me() -> usize {
    super::percpu::cpu_id() as usize
}

fn program(c: usize) {
    let at = AT[c].iter().map(|a| a.load(Ordering::Relaxed)).filter(|&a| a != 0).min().unwrap_or(0);
    super::x2apic::set_deadline(at);
}

/// `u`'s next deadline on this CPU (TSC; 0: none).
pub fn set(u: User, at: u64) {
    let c = me();
    if AT[c][u as usize].swap(at, Ordering::Relaxed) != at {
        program(c);
    }
}

/// `u`'s deadline on this CPU (0: none).
pub fn get(u: User) -> u64 {
    AT[me()][u as usize].load(Ordering::Relaxed)
}

/// The kernel's next deadline on this CPU (TSC).
pub fn set_kernel(at: u64) {
    let c = me();
    AT[c][User::Kernel as usize].store(at, Ordering::Relaxed);
    program(c);
}

/// The scheduler's next deadline on this CPU (TSC; 0: none).
pub fn set_sched(at: u64) {
    set(User::Sched, at);
}

/// At a timer interrupt: did `u`'s deadline pass? (It is cleared then:
/// its owner sets the next one.)
pub fn take_due(u: User, now: u64) -> bool {
    let a = &AT[me()][u as usize];
    let s = a.load(Ordering::Relaxed);
    if s != 0 && now >= s {
        a.store(0, Ordering::Relaxed);
        true
    } else {
        false
    }
}

/// At a timer interrupt: did the scheduler's deadline pass?
pub fn take_sched_due(now: u64) -> bool {
    take_due(User::Sched, now)
}
