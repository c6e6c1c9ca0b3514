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
//! Must not: deliver signal handlers here (the program's handlers would
//! have to run on Linux: process-directed signals pick other threads,
//! `signal.rs`), or create threads or processes from this thread (clone,
//! fork, execve answer EOPNOTSUPP: the new context would need the user
//! registers the proxy holds).

use core::sync::atomic::Ordering;

use ihk_abi::linux::sys;
use ihk_abi::offload::{OffloadCall, UtiRegs, UTI_CHECK, UTI_FAULT, UTI_RESUME, UTI_START};

use super::{offload, sched, service, Thread};
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
    let (mut kind, mut value) = (UTI_START, regs_gpa);
    loop {
        let (r, call) = offload::call_with_reply(t, OffloadCall::UtiRun as u64, [kind, value, 0, 0, 0, 0]);
        if t.process.is_dying() {
            sched::exit_current(t);
        }
        if t.leave.load(Ordering::Acquire) {
            super::thread::exit_thread(t, 0);
        }
        (kind, value) = (UTI_RESUME, 0);
        if r == UTI_CHECK {
            continue;
        }
        if r < 0 {
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
        value = if r as u64 == UTI_FAULT {
            fault(t, call.args[0], call.args[1] != 0) as u64
        } else {
            run_forwarded(r as u64, call.args, call.sp) as u64
        };
    }
}

/// A page fault of the program on Linux at `addr`: back the page as the
/// LWK's own fault handler would (the answer carries the new map sequence,
/// so the proxy mirrors it), or end the process with SIGSEGV as Linux would
/// (a handler cannot run on Linux).
fn fault(t: &Thread, addr: u64, write: bool) -> i64 {
    let p = &t.process;
    if p.aspace.lock().fault(addr, write, false) {
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
            | sys::SYS_rt_sigreturn
            | sys::SYS_rt_sigsuspend
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
