//! Timers of a process kept in the LWK: POSIX timers (`timer_create` and
//! friends) on the wall clocks (REALTIME, MONOTONIC, BOOTTIME) and on the
//! CPU-time clocks (PROCESS_CPUTIME_ID, THREAD_CPUTIME_ID), and
//! setitimer's ITIMER_VIRTUAL and ITIMER_PROF (ITIMER_REAL and `alarm` are
//! Linux's: mcexec forwards their SIGALRM).
//!
//! No tick: a wall-clock timer arms the TSC deadline of the CPU that set
//! it (`deadline::User::Timers`; the interrupt marks the CPU, and the
//! expiry runs at its next return to user mode or scheduler pass,
//! [`run_due`]); the CPU-time timers are checked where CPU time is charged
//! (`cputime::leaving_for_user`), which arms a one-shot deadline on the
//! CPU running a thread of the process only while one of them runs.
//!
//! As Linux: one signal per timer is queued at a time. A periodic timer
//! whose signal is queued is re-armed when the signal is taken
//! ([`delivered`], Linux's `posixtimer_rearm`), and the periods that
//! passed meanwhile are its overrun (`si_overrun`, `timer_getoverrun`);
//! so a 1 MHz timer costs one interrupt per signal taken, not a storm.
//! The itimers reload at expiry (`it_interval`), one signal at a time.
//!
//! Not done: timers on other processes' CPU clocks, two timers queueing
//! the same signal number at once (one pending instance per signal: the
//! later one's siginfo replaces the earlier one's).

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ihk_abi::boot_params::MAX_CPUS;
use spin::Mutex;

use super::signal::{self, SigInfo, SI_KERNEL, SI_TIMER};
use super::{Process, Thread};
use crate::arch::x86_64::{deadline, tsc};
use crate::errno::*;

/// The clock a timer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Realtime,
    Monotonic,
    Boottime,
    ProcessCpu,
    /// The CPU time of this thread.
    ThreadCpu(u32),
}

impl Clock {
    fn is_cpu(self) -> bool {
        matches!(self, Clock::ProcessCpu | Clock::ThreadCpu(_))
    }
}

/// What a timer's expiry does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    None,
    /// Signal the process (SIGEV_SIGNAL, SIGEV_THREAD) or one thread
    /// (SIGEV_THREAD_ID).
    Signal { sig: u32, tid: Option<u32> },
}

/// One POSIX timer.
struct PosixTimer {
    clock: Clock,
    notify: Notify,
    value: u64,
    /// Next expiry (0: disarmed): TSC for wall clocks, ns of the CPU-time
    /// clock for the others.
    expires: u64,
    /// Period in the same unit (0: one-shot), and as set, in ns.
    interval: u64,
    interval_ns: u64,
    /// Its signal is queued and not taken yet; `queued_gen` is `gen` then.
    queued: bool,
    queued_gen: u64,
    /// Periods passed while its signal was queued, and the count reported
    /// with the last signal taken (timer_getoverrun).
    overrun_acc: i32,
    overrun: i32,
    /// Changes at every timer_settime: armed expiries of an older setting
    /// are stale.
    gen: u64,
}

/// ITIMER_VIRTUAL or ITIMER_PROF: ns of process CPU time.
#[derive(Clone, Copy, Default)]
struct Itimer {
    /// 0: disarmed.
    expires: u64,
    interval: u64,
}

/// A process's timers.
#[derive(Default)]
pub struct Timers {
    posix: Vec<Option<PosixTimer>>,
    /// ITIMER_VIRTUAL (user time), ITIMER_PROF (user and system time).
    itimers: [Itimer; 2],
}

/// Most POSIX timers a process may have (Linux: RLIMIT_SIGPENDING).
const MAX_TIMERS: usize = 4096;
const SIGALRM: u32 = 14;
const SIGVTALRM: u32 = 26;
const SIGPROF: u32 = 27;
pub const ITIMER_VIRTUAL: usize = 1;
pub const ITIMER_PROF: usize = 2;

/// A wall-clock expiry armed on a CPU's deadline.
struct Armed {
    at: u64,
    cpu: u32,
    process: Weak<Process>,
    id: usize,
    gen: u64,
}

static ARMED: Mutex<Vec<Armed>> = Mutex::new(Vec::new());
/// Set by the timer interrupt: this CPU's armed expiries need a look.
static DUE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static GEN: AtomicU64 = AtomicU64::new(1);

fn me() -> u32 {
    crate::smp::cpu_id()
}

/// The timer interrupt found this CPU's timer deadline passed.
pub fn note_due() {
    DUE[me() as usize].store(true, Ordering::Release);
}

/// Program this CPU's deadline for its earliest armed expiry.
fn reprogram(list: &[Armed]) {
    let c = me();
    let next = list.iter().filter(|a| a.cpu == c).map(|a| a.at).min().unwrap_or(0);
    deadline::set(deadline::User::Timers, next);
}

fn arm_wall(p: &Arc<Process>, id: usize, gen: u64, at: u64) {
    let mut l = ARMED.lock();
    l.push(Armed { at, cpu: me(), process: Arc::downgrade(p), id, gen });
    reprogram(&l);
}

/// Expire the wall-clock timers due on this CPU (thread context on the way
/// to user mode, or the scheduler's; no lock held).
pub fn run_due() {
    if !DUE[me() as usize].swap(false, Ordering::AcqRel) {
        return;
    }
    let now = tsc::now();
    let due: Vec<Armed> = {
        let mut l = ARMED.lock();
        let c = me();
        let mut due = Vec::new();
        let mut i = 0;
        while i < l.len() {
            if l[i].cpu == c && l[i].at <= now {
                due.push(l.swap_remove(i));
            } else {
                i += 1;
            }
        }
        reprogram(&l);
        due
    };
    for a in due {
        let Some(p) = a.process.upgrade() else { continue };
        if p.is_dying() {
            continue;
        }
        let send = {
            let mut ts = p.timers.lock();
            match ts.posix.get_mut(a.id).and_then(|x| x.as_mut()) {
                Some(tm) if tm.gen == a.gen && tm.expires != 0 => expire(tm, a.id),
                _ => None,
            }
        };
        if let Some(s) = send {
            send_expiry(&p, s);
        }
    }
}

/// What an expiry sends: signal, thread (None: the process), siginfo.
type Send = (u32, Option<u32>, SigInfo);

/// `tm` expired: queue its signal unless it is queued already (then one
/// more overrun). A one-shot timer is disarmed; a periodic one is re-armed
/// when its signal is taken.
fn expire(tm: &mut PosixTimer, id: usize) -> Option<Send> {
    if tm.interval == 0 {
        tm.expires = 0;
    }
    let Notify::Signal { sig, tid } = tm.notify else { return None };
    if tm.queued {
        tm.overrun_acc = tm.overrun_acc.saturating_add(1);
        return None;
    }
    tm.queued = true;
    tm.queued_gen = tm.gen;
    tm.overrun_acc = 0;
    let info = SigInfo { code: SI_TIMER, timerid: id as i32, value: tm.value, ..SigInfo::default() };
    Some((sig, tid, info))
}

fn send_expiry(p: &Arc<Process>, (sig, tid, info): Send) {
    let to_thread = tid.and_then(|tid| p.thread(tid));
    let queued = match &to_thread {
        Some(t) => {
            signal::send_to_thread(t, sig, info);
            signal::is_pending(t, sig)
        }
        None => {
            signal::send_to_process(p, sig, info);
            p.sig_pending.load(Ordering::Acquire) & (1 << (sig - 1)) != 0
        }
    };
    if !queued {
        // Ignored (or the process ends): nothing will be taken, so the
        // next expiry must be able to send again.
        if let Some(tm) = p.timers.lock().posix.get_mut(info.timerid as usize).and_then(|x| x.as_mut()) {
            tm.queued = false;
        }
    }
}

/// Value of a timer's clock now, in its `expires` unit.
fn clock_now(t: &Thread, clock: Clock) -> u64 {
    match clock {
        Clock::ProcessCpu => {
            let (u, s) = super::cputime::process_ns(&t.process, t);
            u + s
        }
        Clock::ThreadCpu(tid) => match t.process.thread(tid) {
            Some(x) => {
                let (u, s) = super::cputime::thread_ns(&x);
                u + s
            }
            None => 0,
        },
        _ => tsc::now(),
    }
}

/// A signal with SI_TIMER is taken by `t`: report the timer's overruns
/// and re-arm it if periodic.
pub fn delivered(t: &Thread, info: &mut SigInfo) {
    let p = &t.process;
    let id = info.timerid as usize;
    let mut ts = p.timers.lock();
    let Some(tm) = ts.posix.get_mut(id).and_then(|x| x.as_mut()) else { return };
    if !tm.queued {
        return;
    }
    tm.queued = false;
    if tm.queued_gen == tm.gen && tm.interval != 0 && tm.expires != 0 {
        let now = clock_now(t, tm.clock);
        if now >= tm.expires {
            let k = (now - tm.expires) / tm.interval + 1;
            tm.expires = tm.expires.saturating_add(k.saturating_mul(tm.interval));
            tm.overrun_acc = tm.overrun_acc.saturating_add((k - 1).min(i32::MAX as u64) as i32);
        }
        if !tm.clock.is_cpu() {
            let (gen, at) = (tm.gen, tm.expires);
            drop(ts);
            arm_wall(p, id, gen, at);
            ts = p.timers.lock();
        }
    }
    if let Some(tm) = ts.posix.get_mut(id).and_then(|x| x.as_mut()) {
        tm.overrun = tm.overrun_acc;
        tm.overrun_acc = 0;
        info.overrun = tm.overrun;
    }
}

/// The CPU-time timers of `t`'s process, on its way to user mode: send
/// what expired; returns the CPU time (ns) until the next expiry this
/// thread can bring (0: none).
pub fn check_cpu(t: &Thread) -> u64 {
    let p = &t.process;
    let (pu, ps) = super::cputime::process_ns(p, t);
    let (tu, ts_) = super::cputime::thread_ns(t);
    let mut sends: Vec<Send> = Vec::new();
    let mut next = u64::MAX;
    {
        let mut ts = p.timers.lock();
        for (i, it) in ts.itimers.iter_mut().enumerate() {
            if it.expires == 0 {
                continue;
            }
            let (now, sig) = if i == 0 { (pu, SIGVTALRM) } else { (pu + ps, SIGPROF) };
            if now >= it.expires {
                it.expires = if it.interval != 0 { it.expires.saturating_add(it.interval).max(now + 1) } else { 0 };
                sends.push((sig, None, SigInfo { code: SI_KERNEL, ..SigInfo::default() }));
            }
            if it.expires != 0 {
                next = next.min(it.expires - now);
            }
        }
        for (id, slot) in ts.posix.iter_mut().enumerate() {
            let Some(tm) = slot.as_mut() else { continue };
            if tm.expires == 0 || tm.queued {
                continue;
            }
            let now = match tm.clock {
                Clock::ProcessCpu => pu + ps,
                Clock::ThreadCpu(tid) if tid == t.tid() => tu + ts_,
                _ => continue,
            };
            if now >= tm.expires {
                if let Some(s) = expire(tm, id) {
                    sends.push(s);
                }
                if tm.notify == Notify::None && tm.interval != 0 {
                    // Nothing is taken to re-arm it: advance it here.
                    let k = (now - tm.expires) / tm.interval + 1;
                    tm.expires += k * tm.interval;
                }
            }
            if tm.expires != 0 && !tm.queued && now < tm.expires {
                next = next.min(tm.expires - now);
            }
        }
        recount(p, &ts);
    }
    for s in sends {
        send_expiry(p, s);
    }
    if next == u64::MAX {
        0
    } else {
        next
    }
}

/// Keep `Process::cpu_timers` equal to the CPU-time timers that run.
fn recount(p: &Process, ts: &Timers) {
    let n = ts.itimers.iter().filter(|i| i.expires != 0).count()
        + ts.posix.iter().flatten().filter(|x| x.clock.is_cpu() && x.expires != 0).count();
    p.cpu_timers.store(n as u32, Ordering::Relaxed);
}

// ---- the calls (arguments already parsed by `syscall::timer`) ---------------

/// timer_create: a new timer, its id.
pub fn create(t: &Thread, clock: Clock, notify: Notify, value: Option<u64>) -> Result<usize, Errno> {
    if let Notify::Signal { tid: Some(tid), .. } = notify {
        if t.process.thread(tid).is_none() {
            return Err(EINVAL);
        }
    }
    let mut ts = t.process.timers.lock();
    let id = match ts.posix.iter().position(|x| x.is_none()) {
        Some(i) => i,
        None if ts.posix.len() < MAX_TIMERS => {
            ts.posix.push(None);
            ts.posix.len() - 1
        }
        None => return Err(EAGAIN),
    };
    ts.posix[id] = Some(PosixTimer {
        clock,
        notify,
        // Without a sigevent: SIGALRM with the id as its value.
        value: value.unwrap_or(id as u64),
        expires: 0,
        interval: 0,
        interval_ns: 0,
        queued: false,
        queued_gen: 0,
        overrun_acc: 0,
        overrun: 0,
        gen: 0,
    });
    Ok(id)
}

/// The default sigevent of timer_create(clock, NULL, ...).
pub fn default_notify() -> Notify {
    Notify::Signal { sig: SIGALRM, tid: None }
}

/// (remaining ns, interval ns) of a timer as timer_gettime reports them.
fn current_setting(t: &Thread, tm: &PosixTimer) -> (u64, u64) {
    if tm.expires == 0 {
        return (0, tm.interval_ns);
    }
    let now = clock_now(t, tm.clock);
    let mut next = tm.expires;
    if now >= next && tm.interval != 0 {
        next += ((now - next) / tm.interval + 1) * tm.interval;
    }
    let left = next.saturating_sub(now);
    let left_ns = if tm.clock.is_cpu() { left } else { ticks_to_ns(left) };
    // An expiry due but not yet run reads as just about to happen (as
    // Linux: 0 would say "disarmed"), except an expired one-shot
    // SIGEV_NONE timer, which is.
    if left_ns == 0 && tm.notify == Notify::None {
        return (0, tm.interval_ns);
    }
    (left_ns.max(1), tm.interval_ns)
}

fn ticks_to_ns(ticks: u64) -> u64 {
    let khz = crate::boot_params::get().tsc_khz.max(1);
    (ticks as u128 * 1_000_000 / khz as u128) as u64
}

/// timer_gettime.
pub fn gettime(t: &Thread, id: usize) -> Result<(u64, u64), Errno> {
    let ts = t.process.timers.lock();
    let tm = ts.posix.get(id).and_then(|x| x.as_ref()).ok_or(EINVAL)?;
    Ok(current_setting(t, tm))
}

/// timer_getoverrun.
pub fn getoverrun(t: &Thread, id: usize) -> Result<u64, Errno> {
    let ts = t.process.timers.lock();
    let tm = ts.posix.get(id).and_then(|x| x.as_ref()).ok_or(EINVAL)?;
    Ok(tm.overrun as u64)
}

/// Check that timer `id` exists (before its new setting is read).
pub fn exists(t: &Thread, id: usize) -> Result<(), Errno> {
    let ts = t.process.timers.lock();
    ts.posix.get(id).and_then(|x| x.as_ref()).map(|_| ()).ok_or(EINVAL)
}

/// timer_settime: `value` ns (0: disarm), absolute on the timer's clock
/// (`abs_ns` converts to TSC for the wall clocks) or relative; returns
/// the old setting.
pub fn settime(t: &Thread, id: usize, value: u64, interval: u64, absolute: bool) -> Result<(u64, u64), Errno> {
    let p = &t.process;
    let mut ts = p.timers.lock();
    let tm = ts.posix.get_mut(id).and_then(|x| x.as_mut()).ok_or(EINVAL)?;
    let old = current_setting(t, tm);
    tm.gen = GEN.fetch_add(1, Ordering::Relaxed);
    tm.overrun_acc = 0;
    tm.interval_ns = if value == 0 { 0 } else { interval };
    if value == 0 {
        tm.expires = 0;
        tm.interval = 0;
        recount(p, &ts);
        return Ok(old);
    }
    let clock = tm.clock;
    if clock.is_cpu() {
        tm.interval = interval;
        let now = clock_now(t, clock);
        tm.expires = if absolute { value.max(1) } else { now.saturating_add(value) };
    } else {
        tm.interval = if interval == 0 { 0 } else { tsc::ns_to_ticks(interval).max(1) };
        tm.expires = if absolute { wall_tsc(t, clock, value) } else { tsc::now().saturating_add(tsc::ns_to_ticks(value)) }.max(1);
    }
    let arm = (!clock.is_cpu() && tm.notify != Notify::None).then_some((tm.gen, tm.expires));
    recount(p, &ts);
    drop(ts);
    if let Some((gen, at)) = arm {
        arm_wall(p, id, gen, at);
    }
    Ok(old)
}

/// The TSC when wall clock `clock` reads `ns`.
fn wall_tsc(t: &Thread, clock: Clock, ns: u64) -> u64 {
    let sp = &t.process.start;
    let off = match clock {
        Clock::Monotonic => sp.monotonic_offset_ns,
        Clock::Boottime => sp.boottime_offset_ns.max(sp.monotonic_offset_ns),
        _ => 0,
    };
    tsc::tsc_at_realtime((ns as i64).saturating_sub(off).max(0) as u64)
}

/// timer_delete: the timer goes, and its queued signal with it.
pub fn delete(t: &Thread, id: usize) -> Result<(), Errno> {
    let p = &t.process;
    let mut ts = p.timers.lock();
    let tm = ts.posix.get_mut(id).and_then(|x| x.take()).ok_or(EINVAL)?;
    recount(p, &ts);
    drop(ts);
    if let (true, Notify::Signal { sig, .. }) = (tm.queued, tm.notify) {
        let bit = 1u64 << (sig - 1);
        let ours = |i: &SigInfo| i.code == SI_TIMER && i.timerid == id as i32;
        if ours(&p.sig_info.lock()[(sig - 1) as usize]) {
            p.sig_pending.fetch_and(!bit, Ordering::AcqRel);
        }
        for th in p.threads.lock().iter() {
            if ours(&th.sig_info.lock()[(sig - 1) as usize]) {
                th.sig_pending.fetch_and(!bit, Ordering::AcqRel);
            }
        }
    }
    Ok(())
}

/// execve: POSIX timers do not survive it (the itimers do).
pub fn exec(p: &Process) {
    let mut ts = p.timers.lock();
    ts.posix.clear();
    recount(p, &ts);
}

/// getitimer(ITIMER_VIRTUAL or ITIMER_PROF): (remaining ns, interval ns).
pub fn get_itimer(t: &Thread, which: usize) -> (u64, u64) {
    let (u, s) = super::cputime::process_ns(&t.process, t);
    let now = if which == ITIMER_VIRTUAL { u } else { u + s };
    let it = t.process.timers.lock().itimers[which - 1];
    let left = if it.expires == 0 { 0 } else { it.expires.saturating_sub(now).max(1) };
    (left, it.interval)
}

/// setitimer(ITIMER_VIRTUAL or ITIMER_PROF): returns the old setting.
pub fn set_itimer(t: &Thread, which: usize, value: u64, interval: u64) -> (u64, u64) {
    let old = get_itimer(t, which);
    let (u, s) = super::cputime::process_ns(&t.process, t);
    let now = if which == ITIMER_VIRTUAL { u } else { u + s };
    let p = &t.process;
    let mut ts = p.timers.lock();
    ts.itimers[which - 1] = if value == 0 { Itimer::default() } else { Itimer { expires: now + value, interval } };
    recount(p, &ts);
    old
}
