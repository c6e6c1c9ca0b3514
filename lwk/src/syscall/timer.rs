//! Timer calls kept in the LWK (state and expiry in `process::ptimer`):
//! the POSIX timers (timer_create, timer_settime, timer_gettime,
//! timer_getoverrun, timer_delete) and setitimer/getitimer's
//! ITIMER_VIRTUAL and ITIMER_PROF. ITIMER_REAL is offloaded: its SIGALRM
//! reaches the program through mcexec's forwarding. Errors as Linux:
//! EINVAL for a bad clock, sigevent, id or time, EFAULT for bad memory.

use super::errno::*;
use super::{args, current, offload};
use crate::arch::x86_64::idt::TrapFrame;
use crate::process::ptimer::{self, Clock, Notify};

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD: i32 = 2;
const SIGEV_THREAD_ID: i32 = 4;
const TIMER_ABSTIME: u64 = 1;

/// The clock of a timer: the wall clocks and the caller's own CPU clocks
/// (also as `clock_getcpuclockid`/`pthread_getcpuclockid` of the caller
/// encode them: pid or tid 0 or its own).
fn clock_of(t: &crate::process::Thread, id: u64) -> Result<Clock, Errno> {
    let id = id as i32;
    match id {
        0 | 11 => Ok(Clock::Realtime), // REALTIME, TAI
        1 => Ok(Clock::Monotonic),
        7 => Ok(Clock::Boottime),
        2 => Ok(Clock::ProcessCpu),
        3 => Ok(Clock::ThreadCpu(t.tid())),
        // MONOTONIC_RAW and the COARSE clocks have no timers (Linux).
        4..=6 => Err(EOPNOTSUPP),
        i if i < 0 => {
            // CPUCLOCK: ~pid << 3 | per-thread 4 | PROF 0, VIRT 1, SCHED 2.
            let who = !(i >> 3) as u32;
            if i & 3 == 3 {
                return Err(EINVAL);
            }
            if i & 4 != 0 {
                let tid = if who == 0 { t.tid() } else { who };
                t.process.thread(tid).map(|_| Clock::ThreadCpu(tid)).ok_or(EINVAL)
            } else if who == 0 || who == t.process.pid {
                Ok(Clock::ProcessCpu)
            } else {
                Err(EINVAL)
            }
        }
        _ => Err(EINVAL),
    }
}

/// timer_create(clockid, sevp, timerid).
pub fn timer_create(f: &mut TrapFrame) -> SysResult {
    let [clock, sevp, idp, ..] = args(f);
    let t = current();
    let clock = clock_of(t, clock)?;
    let (notify, value) = if sevp == 0 {
        (ptimer::default_notify(), None)
    } else {
        // struct sigevent: sigval, signo, notify, then the thread id.
        let mut b = [0u8; 20];
        t.process.aspace.lock().read(sevp, &mut b)?;
        let value = u64::from_le_bytes(b[0..8].try_into().unwrap());
        let signo = i32::from_le_bytes(b[8..12].try_into().unwrap());
        let how = i32::from_le_bytes(b[12..16].try_into().unwrap());
        let tid = i32::from_le_bytes(b[16..20].try_into().unwrap());
        let sig_ok = (1..=64).contains(&signo);
        let notify = match how {
            SIGEV_NONE => Notify::None,
            SIGEV_SIGNAL | SIGEV_THREAD if sig_ok => Notify::Signal { sig: signo as u32, tid: None },
            SIGEV_THREAD_ID if sig_ok && tid > 0 => Notify::Signal { sig: signo as u32, tid: Some(tid as u32) },
            _ => return Err(EINVAL),
        };
        (notify, Some(value))
    };
    let id = ptimer::create(t, clock, notify, value)?;
    if let Err(e) = t.process.aspace.lock().write_u32(idp, id as u32) {
        let _ = ptimer::delete(t, id);
        return Err(e);
    }
    Ok(0)
}

fn timer_id(v: u64) -> Result<usize, Errno> {
    let v = v as i32;
    if v < 0 {
        Err(EINVAL)
    } else {
        Ok(v as usize)
    }
}

/// A `struct timespec` pair (`itimerspec`): (interval ns, value ns).
fn read_itimerspec(t: &crate::process::Thread, va: u64) -> Result<(u64, u64), Errno> {
    let mut b = [0u8; 32];
    t.process.aspace.lock().read(va, &mut b)?;
    let w = |i: usize| i64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    let ns = |sec: i64, nsec: i64| {
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            Err(EINVAL)
        } else {
            Ok((sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec as u64))
        }
    };
    Ok((ns(w(0), w(1))?, ns(w(2), w(3))?))
}

fn write_itimerspec(t: &crate::process::Thread, va: u64, (value, interval): (u64, u64)) -> Result<(), Errno> {
    let mut b = [0u8; 32];
    for (i, ns) in [interval, value].into_iter().enumerate() {
        b[i * 16..i * 16 + 8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[i * 16 + 8..i * 16 + 16].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    }
    t.process.aspace.lock().write(va, &b)
}

/// timer_settime(timerid, flags, new, old).
pub fn timer_settime(f: &mut TrapFrame) -> SysResult {
    let [id, flags, new, old, ..] = args(f);
    let t = current();
    let id = timer_id(id)?;
    if new == 0 {
        return Err(EINVAL);
    }
    ptimer::exists(t, id)?;
    let (interval, value) = read_itimerspec(t, new)?;
    let was = ptimer::settime(t, id, value, interval, flags & TIMER_ABSTIME != 0)?;
    if old != 0 {
        write_itimerspec(t, old, was)?;
    }
    Ok(0)
}

/// timer_gettime(timerid, cur).
pub fn timer_gettime(f: &mut TrapFrame) -> SysResult {
    let [id, cur, ..] = args(f);
    let t = current();
    let setting = ptimer::gettime(t, timer_id(id)?)?;
    write_itimerspec(t, cur, setting)?;
    Ok(0)
}

pub fn timer_getoverrun(f: &mut TrapFrame) -> SysResult {
    ptimer::getoverrun(current(), timer_id(f.rdi)?)
}

pub fn timer_delete(f: &mut TrapFrame) -> SysResult {
    ptimer::delete(current(), timer_id(f.rdi)?)?;
    Ok(0)
}

/// ITIMER_VIRTUAL or ITIMER_PROF from setitimer's `which`; None for
/// ITIMER_REAL (Linux's).
fn itimer_which(which: u64) -> Result<Option<usize>, Errno> {
    match which as i32 {
        0 => Ok(None),
        1 => Ok(Some(ptimer::ITIMER_VIRTUAL)),
        2 => Ok(Some(ptimer::ITIMER_PROF)),
        _ => Err(EINVAL),
    }
}

/// A `struct itimerval` (two timevals) as (interval ns, value ns).
fn read_itimerval(t: &crate::process::Thread, va: u64) -> Result<(u64, u64), Errno> {
    let mut b = [0u8; 32];
    t.process.aspace.lock().read(va, &mut b)?;
    let w = |i: usize| i64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    let ns = |sec: i64, usec: i64| {
        if sec < 0 || !(0..1_000_000).contains(&usec) {
            Err(EINVAL)
        } else {
            Ok((sec as u64).saturating_mul(1_000_000_000).saturating_add(usec as u64 * 1000))
        }
    };
    Ok((ns(w(0), w(1))?, ns(w(2), w(3))?))
}

fn write_itimerval(t: &crate::process::Thread, va: u64, (value, interval): (u64, u64)) -> Result<(), Errno> {
    let mut b = [0u8; 32];
    for (i, ns) in [interval, value].into_iter().enumerate() {
        // Round up to whole microseconds: a running timer never reads 0.
        let us = ns.div_ceil(1000);
        b[i * 16..i * 16 + 8].copy_from_slice(&(us / 1_000_000).to_le_bytes());
        b[i * 16 + 8..i * 16 + 16].copy_from_slice(&(us % 1_000_000).to_le_bytes());
    }
    t.process.aspace.lock().write(va, &b)
}

/// setitimer(which, new, old): VIRTUAL and PROF count the process's CPU
/// time here; REAL is offloaded.
pub fn setitimer(f: &mut TrapFrame) -> SysResult {
    let [which, new, old, ..] = args(f);
    let Some(w) = itimer_which(which)? else { return offload::syscall(f) };
    let t = current();
    // A NULL new value disarms (Linux's tolerated misfeature).
    let (interval, value) = if new == 0 { (0, 0) } else { read_itimerval(t, new)? };
    // Linux: a value below the clock's resolution still arms the timer.
    let was = ptimer::set_itimer(t, w, value, interval);
    if old != 0 {
        write_itimerval(t, old, was)?;
    }
    Ok(0)
}

pub fn getitimer(f: &mut TrapFrame) -> SysResult {
    let [which, cur, ..] = args(f);
    let Some(w) = itimer_which(which)? else { return offload::syscall(f) };
    let t = current();
    write_itimerval(t, cur, ptimer::get_itimer(t, w))?;
    Ok(0)
}
