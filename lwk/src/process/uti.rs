//! Utility threads on Linux (`mcexec --enable-uti`, docs/uti.md): the LWK
//! half of a thread whose user code runs in its proxy thread on a Linux CPU.
//!
//! Such a thread is created by an ordinary clone after McKernel's
//! `util_indicate_clone` (`syscall::uti`). It keeps everything an LWK
//! thread has (tid, offload slot, futex waits, robust list, the
//! CLONE_CHILD_CLEARTID word, its place in the process's thread list) but
//! never enters user mode here: it hands its first user frame to its proxy
//! (`OffloadCall::UtiRun` with `UTI_START`), which runs the program on
//! Linux, and then runs, in its own kernel context, the calls the proxy
//! forwards (memory management, futex, exit, signal state...), answering
//! each with `UTI_RESUME`. So the LWK's state stays the one truth for those
//! calls, and a futex wait of the utility thread is an ordinary LWK wait
//! that LWK threads wake (and the other way round).
//!
//! Signals: at each visit (a forwarded call, a fault, UTI_CHECK) the
//! thread takes a pending signal (`uti_signal.rs`) and the resume tells
//! the proxy, which runs the handler on Linux.
//!
//! Must not: create threads or processes from this thread (clone,
//! fork, execve answer EOPNOTSUPP: the new context would need the user
//! registers the proxy holds).

use core::sync::atomic::Ordering;

use ihk_abi::linux::sys;
use ihk_abi::offload::{OffloadCall, UtiRegs, UtiSignal, UTI_CHECK, UTI_FAULT, UTI_RESUME, UTI_START};

use super::signal::{self, SigInfo, SIG_IGN};
use super::{offload, sched, service, uti_signal, Thread};
use crate::arch::x86_64::entry::{USER_CS, USER_DS};
use crate::arch::x86_64::idt::TrapFrame;
use crate::errno::*;

const SIGKILL: u32 = 9;
const SIGSEGV: u32 = 11;

/// First (and only) code of a utility thread: start the program on Linux
/// with `frame` (the clone child's user frame), then serve its calls until
/// the thread or the process ends.
pub fn uti_main(t: &Thread, frame: TrapFrame) -> ! {
    let regs = UtiRegs {
        r15: frame.r15,
        r14: frame.r14,
        r13: frame.r13,
        r12: frame.r12,
        r11: frame.r11,
        r10: frame.r10,
        r9: frame.r9,
        r8: frame.r8,
        rbp: frame.rbp,
        rdi: frame.rdi,
        rsi: frame.rsi,
        rdx: frame.rdx,
        rcx: frame.rcx,
        rbx: frame.rbx,
        rax: frame.rax,
        rip: frame.rip,
        rflags: frame.rflags,
        rsp: frame.rsp,
        fs_base: t.fs_base.load(Ordering::Relaxed),
    };
    // On this thread's kernel stack (direct-mapped), alive until the proxy
    // answers the first UtiRun: it copies the registers before running.
    let regs_gpa = crate::mm::phys::to_phys(&regs as *const UtiRegs as *const u8);
    // Likewise the signal the proxy must deliver (read before it answers).
    let mut sig = UtiSignal::default();
    let sig_gpa = crate::mm::phys::to_phys(&sig as *const UtiSignal as *const u8);
    let (mut kind, mut value, mut sig_arg) = (UTI_START, regs_gpa, 0);
    loop {
        let (r, call) = offload::call_with_reply(t, OffloadCall::UtiRun as u64, [kind, value, sig_arg, 0, 0, 0]);
        if t.process.is_dying() {
            sched::exit_current(t);
        }
        if t.leave.load(Ordering::Acquire) {
            super::thread::exit_thread(t, 0);
        }
        (kind, value) = (UTI_RESUME, 0);
        if r < 0 && r != UTI_CHECK {
            // The proxy could not run the thread (mirror or set-up failed):
            // the program cannot go on consistently.
            let p = &t.process;
            crate::printk!(
                "{}[{}]: utility thread {} could not run on Linux (error {}): ending the process",
                p.comm.lock(),
                p.pid,
                t.tid(),
                -r
            );
            service::kill_process(p, SIGKILL, false);
            sched::exit_current(t);
        }
        if r as u64 == UTI_FAULT {
            value = fault(t, call.args[0], call.args[1] != 0) as u64;
        } else if r != UTI_CHECK {
            value = if r as u64 == sys::SYS_rt_sigreturn {
                uti_signal::sigreturn(t, call.args[0], call.args[1], call.sp) as u64
            } else {
                run_forwarded(r as u64, call.args, call.sp) as u64
            };
        }
        let mut next = UtiSignal::default();
        let restart = t.take_restart();
        sig_arg = if uti_signal::take(t, call.sp, restart, &mut next) {
            // SAFETY: our own local; volatile because only the proxy reads it.
            unsafe { core::ptr::write_volatile(&mut sig, next) };
            sig_gpa
        } else {
            0
        };
    }
}

/// A page fault of the program on Linux at `addr`: back the page as the
/// LWK's own fault handler would (the answer carries the new map sequence,
/// so the proxy mirrors it); else SIGSEGV for the thread if it catches it
/// (its handler runs on Linux), or the process ends with SIGSEGV.
fn fault(t: &Thread, addr: u64, write: bool) -> i64 {
    let p = &t.process;
    let mapped = {
        let mut a = p.aspace.lock();
        if a.fault(addr, write, false) {
            return 0;
        }
        a.vma_at(addr).is_some()
    };
    let a = p.signals.lock().actions[(SIGSEGV - 1) as usize];
    if a.handler > SIG_IGN && t.sig_mask.load(Ordering::Relaxed) & signal::bit(SIGSEGV) == 0 {
        // SEGV_ACCERR 2, SEGV_MAPERR 1.
        let info = SigInfo { code: if mapped { 2 } else { 1 }, addr, ..SigInfo::default() };
        signal::send_to_thread(t, SIGSEGV, info);
        return 0;
    }
    crate::printk!("{}[{}]: segfault at {:x} in utility thread {} (on Linux)", p.comm.lock(), p.pid, addr, t.tid());
    service::kill_process(p, SIGSEGV, false);
    -(EFAULT.0 as i64)
}

/// Run forwarded call `nr` as this thread's own system call (what the
/// table routes it to: a local handler, or an offload that this thread's
/// proxy serves while it waits). Returns the raw result.
fn run_forwarded(nr: u64, a: [u64; 6], sp: u64) -> i64 {
    if matches!(
        nr,
        sys::SYS_clone
            | sys::SYS_clone3
            | sys::SYS_fork
            | sys::SYS_vfork
            | sys::SYS_execve
            | sys::SYS_execveat
    ) {
        return -(EOPNOTSUPP.0 as i64);
    }
    let mut f = TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: a[3],
        r9: a[5],
        r8: a[4],
        rbp: 0,
        rdi: a[0],
        rsi: a[1],
        rdx: a[2],
        rcx: 0,
        rbx: 0,
        rax: nr,
        vector: nr,
        error_code: 0,
        rip: 0,
        cs: USER_CS,
        rflags: 0x202,
        rsp: sp,
        ss: USER_DS,
    };
    // Through the registered handler (syscall::dispatch): process/ sits below syscall/.
    crate::arch::x86_64::hooks::syscall(&mut f);
    f.rax as i64
}
