//! fork (clone without CLONE_VM, and vfork) as McKernel does it: the child
//! is a new LWK process with its own mcexec, which the parent's proxy
//! creates by forking itself on Linux (so the child's proxy has its own
//! copy of the descriptor table, and wait4 on Linux sees the child).
//!
//! Parent: records what the child needs ([`ForkReq`]: its user registers,
//! FPU image, TLS, signal mask), asks its proxy to fork (`OffloadCall::Fork`,
//! which returns the child's pid once the host child asked the LWK to start
//! it), then waits until the LWK child has copied its memory. Child (the
//! new slot's first thread, [`child_main`]): copies the parent's address
//! space (its proxy copies the bytes) and dispositions, and returns to user
//! mode from the parent's fork with rax = 0.
//!
//! The memory is copied at fork time (no copy-on-write). Only the calling
//! thread exists in the child (POSIX). Threads (CLONE_THREAD) are made in
//! `thread`; a new process sharing the address space (CLONE_VM without
//! CLONE_THREAD or CLONE_VFORK) is not supported (ENOSYS).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use ihk_abi::offload::OffloadCall;

use super::{sched, service, Process, Thread, ThreadState};
use crate::arch::x86_64::idt::TrapFrame;
use crate::errno::*;
use super::offload;

pub const CLONE_VM: u64 = 0x100;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_SETTLS: u64 = 0x8_0000;
pub const CLONE_PARENT_SETTID: u64 = 0x10_0000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
pub const CLONE_CHILD_SETTID: u64 = 0x100_0000;
/// The exit signal sent to the parent (we always use SIGCHLD semantics).
const CSIGNAL: u64 = 0xff;

/// What the child of a fork in progress takes from its parent.
pub struct ForkReq {
    pub frame: TrapFrame,
    pub fpu: Vec<u8>,
    pub fs_base: u64,
    pub sig_mask: u64,
    pub altstack: (u64, u64, u32),
    pub flags: u64,
    pub child_tid: u64,
}

/// clone/fork/vfork in the parent. `f` is the parent's system-call frame.
pub fn fork(t: &Thread, f: &TrapFrame, flags: u64, ptid: u64, ctid: u64, tls: u64) -> SysResult {
    let supported = CSIGNAL | CLONE_VM | CLONE_VFORK | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID;
    if flags & !supported != 0 {
        return Err(EINVAL);
    }
    if flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0 {
        // A second process in the same address space: not supported.
        return Err(ENOSYS);
    }
    let p = &t.process;
    // One fork at a time per process (`fork_req` is the process's).
    let _one_at_a_time = p.fork_lock.lock();
    // The child starts from this very frame, returning 0.
    let mut frame = TrapFrame { ..*f };
    frame.rax = 0;
    let size = super::fpu::area_size() as usize;
    let mut fpu = alloc::vec![0u8; size + 64];
    let off = (64 - (fpu.as_ptr() as usize % 64)) % 64;
    super::fpu::save_to(fpu[off..].as_mut_ptr());
    fpu.drain(..off);
    fpu.truncate(size);
    let fs_base = if flags & CLONE_SETTLS != 0 { tls } else { crate::arch::x86_64::rdmsr(0xc000_0100) };
    *p.fork_req.lock() = Some(ForkReq {
        frame,
        fpu,
        fs_base,
        sig_mask: t.sig_mask.load(Ordering::Relaxed),
        altstack: *t.altstack.lock(),
        flags,
        child_tid: ctid,
    });
    p.fork_result.store(0, Ordering::Release);
    let r = offload::call(t, OffloadCall::Fork as u64, [p.slot_index as u64, 0, 0, 0, 0, 0]);
    let result = if r < 0 {
        Err(Errno((-r) as i32))
    } else {
        // Wait until the child copied us (its CPU may be this one).
        loop {
            let v = p.fork_result.load(Ordering::Acquire);
            if v != 0 {
                break if v < 0 { Err(Errno((-v) as i32)) } else { Ok(v as u64) };
            }
            if p.is_dying() {
                break Err(EINTR);
            }
            t.set_state(ThreadState::Runnable);
            sched::yield_now(t);
        }
    };
    *p.fork_req.lock() = None;
    let child = result?;
    if flags & CLONE_PARENT_SETTID != 0 {
        p.aspace.lock().write_u32(ptid, child as u32)?;
    }
    Ok(child)
}

/// The first thread of a fork child: become a copy of `parent` and return
/// to user mode from its fork.
pub fn child_main(t: &Thread, parent: Arc<Process>) -> ! {
    let p = &t.process;
    let result = (|| -> Result<TrapFrame, Errno> {
        let guard = parent.fork_req.lock();
        let req = guard.as_ref().ok_or(EAGAIN)?;
        {
            let mut a = p.aspace.lock();
            let pa = parent.aspace.lock();
            a.copy_from(&pa)?;
        }
        p.signals.lock().actions = parent.signals.lock().actions;
        *p.comm.lock() = parent.comm.lock().clone();
        // The descriptors are inherited, and so are their signalfds (the
        // child's proxy is a fork of the parent's, with its eventfds).
        {
            let l = parent.sigfds.lock().clone();
            p.sigfd_count.store(l.len() as u32, Ordering::Relaxed);
            *p.sigfds.lock() = l;
        }
        t.fs_base.store(req.fs_base, Ordering::Relaxed);
        crate::arch::x86_64::wrmsr(0xc000_0100, req.fs_base);
        t.sig_mask.store(req.sig_mask, Ordering::Relaxed);
        *t.altstack.lock() = req.altstack;
        if req.flags & CLONE_CHILD_SETTID != 0 {
            p.aspace.lock().write_u32(req.child_tid, t.tid())?;
        }
        if req.flags & CLONE_CHILD_CLEARTID != 0 {
            t.clear_child_tid.store(req.child_tid, Ordering::Relaxed);
        }
        // The parent's FPU state, into this CPU (we run) and our save area.
        // SAFETY: the area holds area_size() bytes; the image came from a
        // save of the same size.
        unsafe { core::ptr::copy_nonoverlapping(req.fpu.as_ptr(), t.fpu.ptr(), req.fpu.len()) };
        t.fpu.restore();
        Ok(TrapFrame { ..req.frame })
    })();
    match result {
        Ok(frame) => {
            parent.fork_result.store(t.tid() as i64, Ordering::Release);
            super::trap::enter_with_frame(t, frame)
        }
        // Killed before it ran (its proxy died: ihk/tests/faults.rs,
        // `mcexec:fork-started`): the copy's offloaded calls failed with
        // EINTR. The child exists, so the parent's fork succeeds, and its
        // wait sees the child killed (its proxy died of SIGKILL), as on
        // Linux for a child killed right after fork; a fork failing with
        // EINTR, which Linux never returns, made shells give up.
        Err(_) if p.is_dying() => {
            parent.fork_result.store(t.tid() as i64, Ordering::Release);
            service::exit_process(t, 0, 9)
        }
        Err(e) => {
            parent.fork_result.store(-(e.0 as i64), Ordering::Release);
            p.slot.start_error.store(-(e.0 as i64), Ordering::Relaxed);
            service::exit_process(t, 0, 0)
        }
    }
}
