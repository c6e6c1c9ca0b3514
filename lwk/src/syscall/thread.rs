//! Thread-state calls answered locally: arch_prctl (FS base), set_tid_address,
//! futex (single-threaded processes only for now), CPU placement
//! (sched_{get,set}affinity, getcpu, sched_yield) and prctl's name calls.

use core::sync::atomic::Ordering;

use super::errno::*;
use super::{args, current, offload};
use crate::arch::x86_64::idt::TrapFrame;

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
    Ok(t.tid as u64)
}

/// futex: with one thread per process nothing can wake a waiter, so a wait
/// that would block returns ETIMEDOUT if it has a timeout and EINTR
/// otherwise (never a silent hang); wakes wake nobody.
pub fn futex(f: &mut TrapFrame) -> SysResult {
    let [uaddr, op, val, timeout, ..] = args(f);
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAKE: u64 = 1;
    const FUTEX_WAIT_BITSET: u64 = 9;
    const FUTEX_WAKE_BITSET: u64 = 10;
    const ETIMEDOUT: Errno = Errno(110);
    let t = current();
    match op & 0x7f {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let mut b = [0u8; 4];
            t.process.aspace.lock().read(uaddr, &mut b)?;
            if u32::from_le_bytes(b) != val as u32 {
                return Err(EAGAIN);
            }
            Err(if timeout != 0 { ETIMEDOUT } else { EINTR })
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => Ok(0),
        _ => Err(ENOSYS),
    }
}

pub fn sched_yield(_: &mut TrapFrame) -> SysResult {
    Ok(0)
}

/// The process runs on its home CPU only.
pub fn sched_getaffinity(f: &mut TrapFrame) -> SysResult {
    let [pid, len, mask, ..] = args(f);
    let t = current();
    let p = &t.process;
    if pid != 0 && pid != p.pid as u64 && pid != t.tid as u64 {
        return offload::syscall(f);
    }
    let ncpus = crate::boot_params::get().cores().len() as u64;
    let bytes = ncpus.div_ceil(64) * 8;
    if len < bytes || len % 8 != 0 {
        return Err(EINVAL);
    }
    let mut m = alloc::vec![0u8; bytes as usize];
    m[(t.cpu / 8) as usize] |= 1 << (t.cpu % 8);
    p.aspace.lock().write(mask, &m)?;
    Ok(bytes)
}

pub fn sched_setaffinity(f: &mut TrapFrame) -> SysResult {
    let [pid, len, mask, ..] = args(f);
    let t = current();
    let p = &t.process;
    if pid != 0 && pid != p.pid as u64 && pid != t.tid as u64 {
        return offload::syscall(f);
    }
    let byte = (t.cpu / 8) as u64;
    if byte >= len {
        return Err(EINVAL);
    }
    let mut b = [0u8; 1];
    p.aspace.lock().read(mask + byte, &mut b)?;
    if b[0] & (1 << (t.cpu % 8)) == 0 {
        // Threads do not migrate: only the current CPU is allowed.
        return Err(EINVAL);
    }
    Ok(0)
}

pub fn getcpu(f: &mut TrapFrame) -> SysResult {
    let [cpu, node, ..] = args(f);
    let t = current();
    let a = t.process.aspace.lock();
    if cpu != 0 {
        a.write_u32(cpu, t.cpu)?;
    }
    if node != 0 {
        a.write_u32(node, crate::mm::phys::local_numa())?;
    }
    Ok(0)
}

pub fn prctl(f: &mut TrapFrame) -> SysResult {
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    let [option, arg, ..] = args(f);
    let t = current();
    match option {
        PR_SET_NAME => {
            let mut b = [0u8; 16];
            // Read up to 16 bytes; a shorter string may end near a page end.
            let a = t.process.aspace.lock();
            for (i, byte) in b.iter_mut().enumerate().take(15) {
                let mut c = [0u8; 1];
                a.read(arg + i as u64, &mut c)?;
                if c[0] == 0 {
                    break;
                }
                *byte = c[0];
            }
            let n = b.iter().position(|&c| c == 0).unwrap_or(15);
            *t.process.comm.lock() = alloc::string::String::from_utf8_lossy(&b[..n]).into_owned();
            Ok(0)
        }
        PR_GET_NAME => {
            let mut b = [0u8; 16];
            let c = t.process.comm.lock().clone();
            let n = c.len().min(15);
            b[..n].copy_from_slice(&c.as_bytes()[..n]);
            t.process.aspace.lock().write(arg, &b)?;
            Ok(0)
        }
        _ => offload::syscall(f),
    }
}
