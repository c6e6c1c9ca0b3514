//! Threads of a process: creation (clone with CLONE_THREAD, as glibc's
//! `pthread_create` and clone3 ask for it), a new thread's first entry to
//! user mode, a thread's own end (exit while others live: robust futexes,
//! CLONE_CHILD_CLEARTID), and ending the other threads (execve).
//!
//! Every thread has its own offload slot and its own proxy thread in
//! `mcexec` (ARCHITECTURE.md §5): the parent's proxy starts the new one
//! (`OffloadCall::ThreadStart`), whose host tid becomes the LWK tid, so the
//! tids that offloaded calls see (`/proc/self/task`, `tgkill` to Linux) are
//! the LWK's. A new thread goes to the least loaded CPU of its parent's
//! affinity (McKernel's placement).

use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use ihk_abi::offload::OffloadCall;

use super::service::{self, ThreadRes};
use super::{futex, sched, Thread};
use crate::arch::x86_64::idt::TrapFrame;
use crate::errno::*;
use super::offload;

pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_THREAD: u64 = 0x1_0000;
pub const CLONE_SYSVSEM: u64 = 0x4_0000;
pub const CLONE_SETTLS: u64 = 0x8_0000;
pub const CLONE_PARENT_SETTID: u64 = 0x10_0000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
pub const CLONE_DETACHED: u64 = 0x40_0000;
pub const CLONE_CHILD_SETTID: u64 = 0x100_0000;
pub const CLONE_IO: u64 = 0x8000_0000;

const IA32_FS_BASE: u32 = 0xc000_0100;

/// Is this clone a new thread (rather than a fork-like new process)?
pub fn is_thread(flags: u64) -> bool {
    flags & CLONE_THREAD != 0
}

/// clone(CLONE_THREAD | ...) in thread `t`, from its system-call frame `f`.
/// Returns the new thread's tid.
pub fn create(t: &Thread, f: &TrapFrame, flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64) -> SysResult {
    // Linux's consistency rules first.
    if flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0 {
        return Err(EINVAL);
    }
    if flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0 {
        return Err(EINVAL);
    }
    // A thread shares everything the proxy threads of one mcexec share.
    let shared = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    let allowed = shared
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID
        | CLONE_CHILD_SETTID
        | CLONE_DETACHED
        | CLONE_IO;
    if flags & shared != shared || flags & !allowed != 0 {
        return Err(EINVAL);
    }
    if flags & CLONE_SETTLS != 0 && tls >= 1 << 47 {
        return Err(EPERM);
    }
    let p = &t.process;
    if t.must_leave() {
        return Err(EINTR);
    }
    let res = ThreadRes::new(p, None)?;
    // The new thread's proxy: its host tid is the new LWK tid.
    let tid = offload::call(t, OffloadCall::ThreadStart as u64, [res.slot() as u64, 0, 0, 0, 0, 0]);
    if tid <= 0 {
        return Err(if tid < 0 { Errno((-tid) as i32) } else { EAGAIN });
    }
    let tid = tid as u32;
    let cpu = sched::least_loaded(&t.affinity.lock()).unwrap_or_else(|| t.cpu());
    // The child returns 0 from this very call, on its own stack.
    let mut frame = TrapFrame { ..*f };
    frame.rax = 0;
    if stack != 0 {
        frame.rsp = stack;
    }
    // After util_indicate_clone, the new thread is a utility thread whose
    // user code runs on Linux (uti.rs).
    let start = if t.uti_next.swap(false, Ordering::AcqRel) {
        sched::ThreadStart::Uti(Box::new(frame))
    } else {
        sched::ThreadStart::Clone(Box::new(frame))
    };
    let child = service::new_thread(res, tid, cpu, start);
    let fs = if flags & CLONE_SETTLS != 0 { tls } else { crate::arch::x86_64::rdmsr(IA32_FS_BASE) };
    child.fs_base.store(fs, Ordering::Relaxed);
    child.sig_mask.store(t.sig_mask.load(Ordering::Relaxed), Ordering::Relaxed);
    // As Linux: a new thread is named as the thread that created it.
    *child.name.lock() = Some(name_of(t));
    *child.affinity.lock() = *t.affinity.lock();
    // The parent's FPU/SIMD state (live in this CPU's registers) is the
    // child's first state, as Linux copies it.
    super::fpu::save_to(child.fpu.ptr());
    {
        let mut a = p.aspace.lock();
        if flags & CLONE_PARENT_SETTID != 0 {
            let _ = a.write_u32(ptid, tid);
        }
        if flags & CLONE_CHILD_SETTID != 0 {
            let _ = a.write_u32(ctid, tid);
        }
    }
    if flags & CLONE_CHILD_CLEARTID != 0 {
        child.clear_child_tid.store(ctid, Ordering::Relaxed);
    }
    sched::enqueue_on(cpu, child);
    Ok(tid as u64)
}

/// First code of a new thread (its FS base and FPU state are loaded by the
/// scheduler): enter user mode where its parent's clone returns.
pub fn clone_main(t: &Thread, frame: TrapFrame) -> ! {
    super::trap::enter_with_frame(t, frame)
}

/// `exit` of one thread while others live: give back what it holds for
/// others (robust futexes, the CLONE_CHILD_CLEARTID word that `pthread_join`
/// waits on), end its proxy thread, and end.
pub fn exit_thread(t: &Thread, code: u32) -> ! {
    let p = &t.process;
    p.last_exit_code.store(code & 0xff, Ordering::Relaxed);
    if !p.is_dying() {
        futex::exit_robust_list(t);
        let ctid = t.clear_child_tid.load(Ordering::Relaxed);
        if ctid != 0 && p.aspace.lock().write_u32(ctid, 0).is_ok() {
            futex::wake_one_at(t, ctid);
        }
        // The proxy thread of this slot acknowledges and ends.
        offload::call(t, OffloadCall::ThreadExit as u64, [0; 6]);
    }
    sched::exit_current(t)
}

/// End every thread of `t`'s process but `t` (execve), and wait until they
/// are gone. Returns false if the process is dying meanwhile.
pub fn end_other_threads(t: &Thread) -> bool {
    let p = &t.process;
    loop {
        let others: alloc::vec::Vec<_> =
            p.threads.lock().iter().filter(|x| x.tid() != t.tid()).cloned().collect();
        if others.is_empty() {
            return true;
        }
        if p.is_dying() {
            return false;
        }
        for o in &others {
            o.leave.store(true, Ordering::Release);
            sched::kick_thread(o);
        }
        drop(others);
        t.set_state(super::ThreadState::Runnable);
        sched::yield_now(t);
    }
}

/// Thread `t`'s name (`comm`): the main thread's is the process's.
pub fn name_of(t: &Thread) -> alloc::string::String {
    if t.tid() != t.process.pid {
        if let Some(n) = t.name.lock().clone() {
            return n;
        }
    }
    t.process.comm.lock().clone()
}

/// Name thread `t` (PR_SET_NAME, a write to its `comm`): at most 15
/// bytes, up to the first NUL.
pub fn set_name(t: &Thread, raw: &[u8]) {
    let raw = &raw[..raw.len().min(15)];
    let raw = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
    let n = alloc::string::String::from_utf8_lossy(raw).into_owned();
    if t.tid() == t.process.pid {
        *t.process.comm.lock() = n;
    } else {
        *t.name.lock() = Some(n);
    }
}
