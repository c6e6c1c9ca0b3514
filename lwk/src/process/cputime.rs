//! CPU time of threads and processes, charged as the monitor charges the
//! CPUs' (`crate::monitor`): at the thread's changes of state (entry into
//! the kernel, return to user mode, switch in and out), never sampled by a
//! tick. What it owns: each thread's and process's user and system time
//! (TSC ticks), and the one-shot deadline of the CPU-time timers
//! (`ptimer`: ITIMER_VIRTUAL, ITIMER_PROF, POSIX timers on the CPU-time
//! clocks) on the CPU running the thread: armed only while such a timer
//! runs, so a CPU running one thread without them takes no interrupt.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Process, Thread};
use crate::arch::x86_64::{deadline, tsc};

/// User and system time (TSC ticks).
#[derive(Default)]
pub struct Times {
    pub user: AtomicU64,
    pub system: AtomicU64,
}

/// A thread's accounting: its times, and where the running one is.
#[derive(Default)]
pub struct Acct {
    pub times: Times,
    /// TSC of its last change of state (0: not running).
    mark: AtomicU64,
    /// Running in user mode since `mark`.
    in_user: AtomicBool,
}

/// Charge `t`'s time since its last change of state (to user or system
/// time as it was), and start the next period at `now`.
fn charge(t: &Thread, now: u64) {
    let m = t.acct.mark.swap(now, Ordering::Relaxed);
    if m == 0 || now <= m {
        return;
    }
    let d = now - m;
    let (mine, procs) = if t.acct.in_user.load(Ordering::Relaxed) {
        (&t.acct.times.user, &t.process.times.user)
    } else {
        (&t.acct.times.system, &t.process.times.system)
    };
    mine.fetch_add(d, Ordering::Relaxed);
    procs.fetch_add(d, Ordering::Relaxed);
}

/// Entry into the kernel from user mode (any CPU, interrupts off).
pub fn entered_kernel() {
    if let Some(t) = super::sched::current() {
        charge(t, tsc::now());
        t.acct.in_user.store(false, Ordering::Relaxed);
    }
}

/// Last step before `t` returns to user mode: charge its kernel time,
/// expire its process's CPU-time timers, and arm this CPU's deadline for
/// the next one (or disarm it).
pub fn leaving_for_user(t: &Thread) {
    let now = tsc::now();
    charge(t, now);
    t.acct.in_user.store(true, Ordering::Relaxed);
    let at = if t.process.cpu_timers.load(Ordering::Relaxed) != 0 {
        match super::ptimer::check_cpu(t) {
            0 => 0,
            ns => now.saturating_add(tsc::ns_to_ticks(ns).max(1)),
        }
    } else {
        0
    };
    if at != 0 || deadline::get(deadline::User::CpuTime) != 0 {
        deadline::set(deadline::User::CpuTime, at);
    }
}

/// The scheduler runs `t` on this CPU (in the kernel).
pub fn switched_in(t: &Thread) {
    t.acct.in_user.store(false, Ordering::Relaxed);
    t.acct.mark.store(tsc::now(), Ordering::Relaxed);
}

/// `t` gave this CPU back to the scheduler: its kernel time is charged,
/// and its CPU-time deadline goes.
pub fn switched_out(t: &Thread) {
    charge(t, tsc::now());
    t.acct.mark.store(0, Ordering::Relaxed);
    if deadline::get(deadline::User::CpuTime) != 0 {
        deadline::set(deadline::User::CpuTime, 0);
    }
}

fn ticks_to_ns(ticks: u64) -> u64 {
    let khz = crate::boot_params::get().tsc_khz.max(1);
    (ticks as u128 * 1_000_000 / khz as u128) as u64
}

/// The time `t` runs now and has not been charged yet (user, system).
fn running(t: &Thread) -> (u64, u64) {
    let m = t.acct.mark.load(Ordering::Relaxed);
    let now = tsc::now();
    if m == 0 || now <= m || !super::sched::current().is_some_and(|c| core::ptr::eq(c, t)) {
        return (0, 0);
    }
    if t.acct.in_user.load(Ordering::Relaxed) {
        (now - m, 0)
    } else {
        (0, now - m)
    }
}

/// (user, system) ns of thread `t`, up to now.
pub fn thread_ns(t: &Thread) -> (u64, u64) {
    let (u, s) = running(t);
    (
        ticks_to_ns(t.acct.times.user.load(Ordering::Relaxed) + u),
        ticks_to_ns(t.acct.times.system.load(Ordering::Relaxed) + s),
    )
}

/// (user, system) ns of process `p` (its threads, dead ones included), up
/// to now for the calling thread `cur` and to their last change of state
/// for the others.
pub fn process_ns(p: &Process, cur: &Thread) -> (u64, u64) {
    let (u, s) = if core::ptr::eq(&*cur.process, p) { running(cur) } else { (0, 0) };
    (ticks_to_ns(p.times.user.load(Ordering::Relaxed) + u), ticks_to_ns(p.times.system.load(Ordering::Relaxed) + s))
}
