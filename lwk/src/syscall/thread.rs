//! Thread-state calls answered locally: arch_prctl (FS base),
//! set_tid_address, set/get_robust_list, futex (the queues are in
//! `process::futex`), CPU placement (sched_{get,set}affinity, getcpu,
//! sched_yield) and prctl's name calls (per thread,
//! `process::thread::name_of`).

use core::sync::atomic::Ordering;

use super::errno::*;
use super::{args, current, offload};
use crate::arch::x86_64::idt::TrapFrame;
use crate::arch::x86_64::tsc;
use crate::process::cpuset::CpuSet;
use crate::process::{futex, sched};

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const ARCH_GET_CPUID: u64 = 0x1011;
const IA32_FS_BASE: u32 = 0xc000_0100;

pub fn arch_prctl(f: &mut TrapFrame) -> SysResult {
    let [code, addr, ..] = args(f);
    let t = current();
    match code {
        ARCH_SET_FS => {
            if addr >= 1 << 47 {
                return Err(EPERM);
            }
            t.fs_base.store(addr, Ordering::Relaxed);
            crate::arch::x86_64::wrmsr(IA32_FS_BASE, addr);
            Ok(0)
        }
        ARCH_GET_FS => {
            let v = crate::arch::x86_64::rdmsr(IA32_FS_BASE);
            t.process.aspace.lock().write_u64(addr, v)?;
            Ok(0)
        }
        // GS holds the kernel's per-CPU base (arch::x86_64::entry); as McKernel.
        ARCH_SET_GS => Err(EOPNOTSUPP),
        ARCH_GET_GS => {
            t.process.aspace.lock().write_u64(addr, 0)?;
            Ok(0)
        }
        ARCH_GET_CPUID => Ok(1),
        _ => Err(EINVAL),
    }
}

pub fn set_tid_address(f: &mut TrapFrame) -> SysResult {
    let t = current();
    t.clear_child_tid.store(f.rdi, Ordering::Relaxed);
    Ok(t.tid() as u64)
}

/// `struct robust_list_head` is three words.
const ROBUST_HEAD_SIZE: u64 = 24;

pub fn set_robust_list(f: &mut TrapFrame) -> SysResult {
    let [head, len, ..] = args(f);
    if len != ROBUST_HEAD_SIZE {
        return Err(EINVAL);
    }
    let t = current();
    t.robust_list.store(head, Ordering::Relaxed);
    t.robust_len.store(len, Ordering::Relaxed);
    Ok(0)
}

pub fn get_robust_list(f: &mut TrapFrame) -> SysResult {
    let [pid, head_ptr, len_ptr, ..] = args(f);
    let t = current();
    let target = match pid {
        0 => t.process.thread(t.tid()),
        tid => t.process.thread(tid as u32),
    }
    .ok_or(ESRCH)?;
    let mut a = t.process.aspace.lock();
    a.write_u64(head_ptr, target.robust_list.load(Ordering::Relaxed))?;
    a.write_u64(len_ptr, ROBUST_HEAD_SIZE)?;
    Ok(0)
}

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_CMD_MASK: u64 = 0x7f;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// futex(uaddr, op, val, timeout/val2, uaddr2, val3). Private and shared
/// futexes are the same here (the key is the physical address). PI futexes
/// (LOCK_PI, UNLOCK_PI, TRYLOCK_PI, the REQUEUE_PI pair) answer ENOSYS, so
/// `PTHREAD_PRIO_INHERIT` mutexes fail at lock time: the LWK has no
/// priorities to inherit.
pub fn futex(f: &mut TrapFrame) -> SysResult {
    let [uaddr, op, val, timeout, uaddr2, val3] = args(f);
    let t = current();
    let cmd = op & FUTEX_CMD_MASK;
    if op & !(FUTEX_CMD_MASK | FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) != 0 {
        return Err(ENOSYS);
    }
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    if realtime && cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET {
        return Err(ENOSYS);
    }
    let count = |v: u64| (v as i32).max(0) as u32;
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { futex::FUTEX_BITSET_MATCH_ANY } else { val3 as u32 };
            let deadline = if timeout == 0 {
                0
            } else {
                let ns = read_timespec(t, timeout)?;
                if cmd == FUTEX_WAIT {
                    // Relative.
                    tsc::now().saturating_add(tsc::ns_to_ticks(ns)).max(1)
                } else if realtime {
                    tsc::tsc_at_realtime(ns)
                } else {
                    // Absolute CLOCK_MONOTONIC: the host's offset from REALTIME.
                    let off = t.process.start.monotonic_offset_ns;
                    tsc::tsc_at_realtime((ns as i64).saturating_sub(off).max(0) as u64)
                }
            };
            futex::wait(t, uaddr, val as u32, bitset, deadline)
        }
        FUTEX_WAKE => futex::wake(t, uaddr, count(val), futex::FUTEX_BITSET_MATCH_ANY),
        FUTEX_WAKE_BITSET => futex::wake(t, uaddr, count(val), val3 as u32),
        FUTEX_REQUEUE => futex::requeue(t, uaddr, uaddr2, val as u32, timeout as u32, None),
        FUTEX_CMP_REQUEUE => futex::requeue(t, uaddr, uaddr2, val as u32, timeout as u32, Some(val3 as u32)),
        FUTEX_WAKE_OP => futex::wake_op(t, uaddr, uaddr2, count(val), count(timeout), val3 as u32),
        _ => Err(ENOSYS),
    }
}

/// A `struct timespec` at `va`, in ns (EINVAL if malformed).
fn read_timespec(t: &crate::process::Thread, va: u64) -> Result<u64, Errno> {
    let mut a = t.process.aspace.lock();
    let sec = a.read_u64(va)? as i64;
    let nsec = a.read_u64(va + 8)? as i64;
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(EINVAL);
    }
    Ok((sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec as u64))
}

pub fn sched_yield(_: &mut TrapFrame) -> SysResult {
    let t = current();
    sched::yield_if_others(t);
    Ok(0)
}

/// The thread `pid` names for the affinity calls: 0 is the caller, else a
/// thread of the caller's process (the process's pid is its main thread).
/// None: not one of ours (offloaded to Linux), or a utility thread, which
/// runs on Linux in its proxy thread whose host tid is its tid.
fn affinity_target(pid: u64) -> Option<alloc::sync::Arc<crate::process::Thread>> {
    let t = current();
    let target = if pid == 0 { t.process.thread(t.tid()) } else { t.process.thread(pid as u32) };
    target.filter(|x| !x.uti.load(Ordering::Relaxed))
}

pub fn sched_getaffinity(f: &mut TrapFrame) -> SysResult {
    let [pid, len, mask, ..] = args(f);
    let Some(target) = affinity_target(pid) else { return offload::syscall(f) };
    let ncpus = crate::boot_params::get().cores().len() as u64;
    // Linux: the size must cover nr_cpu_ids bits, in whole longs.
    let bytes = ncpus.div_ceil(64) * 8;
    if len < bytes || len % 8 != 0 {
        return Err(EINVAL);
    }
    let m = target.affinity.lock().to_bytes(bytes as usize);
    current().process.aspace.lock().write(mask, &m)?;
    Ok(bytes)
}

/// Threads may run on any CPU of their process's set; moving happens at
/// the thread's next return to user mode.
pub fn sched_setaffinity(f: &mut TrapFrame) -> SysResult {
    let [pid, len, mask, ..] = args(f);
    let Some(target) = affinity_target(pid) else { return offload::syscall(f) };
    let t = current();
    // Bits past the LWK's CPU count are ignored, as Linux ignores bits past
    // nr_cpu_ids.
    let len = len.min((ihk_abi::boot_params::MAX_CPUS / 8) as u64);
    let mut b = alloc::vec![0u8; len as usize];
    t.process.aspace.lock().read(mask, &mut b)?;
    let want = CpuSet::from_bytes(&b).intersect(&target.process.cpu_set);
    if want.is_empty() {
        return Err(EINVAL);
    }
    *target.affinity.lock() = want;
    if !want.contains(target.cpu()) {
        let to = sched::least_loaded(&want).unwrap_or(target.cpu());
        target.migrate_to.store(to, Ordering::Relaxed);
        sched::kick_thread(&target);
    }
    Ok(0)
}

pub fn getcpu(f: &mut TrapFrame) -> SysResult {
    let [cpu, node, ..] = args(f);
    let t = current();
    let mut a = t.process.aspace.lock();
    if cpu != 0 {
        a.write_u32(cpu, t.cpu())?;
    }
    if node != 0 {
        a.write_u32(node, crate::mm::phys::local_numa())?;
    }
    Ok(0)
}

pub fn prctl(f: &mut TrapFrame) -> SysResult {
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    const PR_GET_TID_ADDRESS: u64 = 40;
    let [option, arg, ..] = args(f);
    let t = current();
    match option {
        PR_SET_NAME => {
            let mut b = [0u8; 16];
            // Read up to 16 bytes; a shorter string may end near a page end.
            let mut a = t.process.aspace.lock();
            for (i, byte) in b.iter_mut().enumerate().take(15) {
                let mut c = [0u8; 1];
                a.read(arg + i as u64, &mut c)?;
                if c[0] == 0 {
                    break;
                }
                *byte = c[0];
            }
            drop(a);
            crate::process::thread::set_name(t, &b);
            Ok(0)
        }
        PR_GET_NAME => {
            let mut b = [0u8; 16];
            let c = crate::process::thread::name_of(t);
            let n = c.len().min(15);
            b[..n].copy_from_slice(&c.as_bytes()[..n]);
            t.process.aspace.lock().write(arg, &b)?;
            Ok(0)
        }
        // The thread's CLONE_CHILD_CLEARTID word is the LWK's, not its proxy's.
        PR_GET_TID_ADDRESS => {
            t.process.aspace.lock().write_u64(arg, t.clear_child_tid.load(Ordering::Relaxed))?;
            Ok(0)
        }
        _ => offload::syscall(f),
    }
}
