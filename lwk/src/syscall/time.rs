//! Clocks from the TSC (local, as the hot path of timing code must be):
//! CLOCK_REALTIME from the boot-time base the host put in the boot
//! parameters; MONOTONIC and BOOTTIME as the host's offsets from REALTIME
//! that mcexec measured at start; CPU-time clocks as the LWK charged the
//! process's and the thread's user and system time (`process::cputime`).
//! Other clock ids are offloaded.

use super::errno::*;
use super::{args, current, offload};
use crate::arch::x86_64::idt::TrapFrame;

const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
const CLOCK_MONOTONIC_RAW: u64 = 4;
const CLOCK_REALTIME_COARSE: u64 = 5;
const CLOCK_MONOTONIC_COARSE: u64 = 6;
const CLOCK_BOOTTIME: u64 = 7;
const CLOCK_TAI: u64 = 11;

/// Nanoseconds of TSC ticks.
fn ticks_to_ns(ticks: u64) -> u64 {
    let khz = crate::boot_params::get().tsc_khz.max(1);
    (ticks as u128 * 1_000_000 / khz as u128) as u64
}

/// Host CLOCK_REALTIME now, in ns.
pub fn realtime_ns() -> u64 {
    let bp = crate::boot_params::get();
    let now = crate::arch::x86_64::tsc::now();
    bp.boot_realtime_ns + ticks_to_ns(now.saturating_sub(bp.boot_tsc))
}

/// The value of `clock` in ns, or None if the LWK does not keep it.
fn clock_ns(clock: u64) -> Option<u64> {
    let t = current();
    let sp = &t.process.start;
    Some(match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_TAI => realtime_ns(),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE => {
            realtime_ns().wrapping_add(sp.monotonic_offset_ns as u64)
        }
        // mcexec read the two offsets at two instants: BOOTTIME never
        // falls below MONOTONIC because of that.
        CLOCK_BOOTTIME => realtime_ns().wrapping_add(sp.boottime_offset_ns.max(sp.monotonic_offset_ns) as u64),
        CLOCK_PROCESS_CPUTIME_ID => {
            let (u, s) = crate::process::cputime::process_ns(&t.process, t);
            u + s
        }
        CLOCK_THREAD_CPUTIME_ID => {
            let (u, s) = crate::process::cputime::thread_ns(t);
            u + s
        }
        _ => return None,
    })
}

fn timespec(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    b
}

pub fn clock_gettime(f: &mut TrapFrame) -> SysResult {
    let [clock, tp, ..] = args(f);
    let Some(ns) = clock_ns(clock) else { return offload::syscall(f) };
    current().process.aspace.lock().write(tp, &timespec(ns))?;
    Ok(0)
}

pub fn clock_getres(f: &mut TrapFrame) -> SysResult {
    let [clock, res, ..] = args(f);
    if clock_ns(clock).is_none() {
        return offload::syscall(f);
    }
    if res != 0 {
        current().process.aspace.lock().write(res, &timespec(1))?;
    }
    Ok(0)
}

pub fn gettimeofday(f: &mut TrapFrame) -> SysResult {
    let [tv, tz, ..] = args(f);
    let t = current();
    let mut a = t.process.aspace.lock();
    if tv != 0 {
        let ns = realtime_ns();
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
        a.write(tv, &b)?;
    }
    if tz != 0 {
        // struct timezone is obsolete; Linux keeps zeroes unless set.
        a.write(tz, &[0u8; 8])?;
    }
    Ok(0)
}

pub fn time(f: &mut TrapFrame) -> SysResult {
    let secs = realtime_ns() / 1_000_000_000;
    if f.rdi != 0 {
        current().process.aspace.lock().write_u64(f.rdi, secs)?;
    }
    Ok(secs)
}
