//! The program's signal handlers in a utility thread (docs/uti.md).
//!
//! The LWK keeps the thread's signal state and chooses the signal
//! (lwk/src/process/uti_signal.rs); it sends a [`UtiSignal`] with the
//! resume of a forwarded call, fault or `UTI_CHECK`. The thread is then in
//! one of its own handlers (SIGSYS, SIGSEGV, SIGURG) whose ucontext holds
//! the program's registers and FPU image: [`deliver`] copies that context
//! as Linux's `rt_sigframe` below [`UtiSignal::sp`] (with the program's
//! mask, siginfo and `sigaltstack`) and changes the handler's context so
//! that returning from it enters the program's handler. The program's
//! `rt_sigreturn` (from its restorer) traps like a forwarded call:
//! [`sigreturn`] copies the frame back into the handler's context, and the
//! caller forwards the frame's mask and `uc_stack` to the LWK, so that a
//! signal it unblocks is taken at once.
//!
//! Must not: touch the thread's Linux signal mask or alternate stack
//! (mcexec's), or write below the room the LWK backed.

use ihk_abi::offload::{UtiSignal, UTI_NO_RESTART};

/// Linux's `struct rt_sigframe` (x86-64): pretcode, then the ucontext
/// (flags, link, stack, sigcontext, 8-byte mask), then the siginfo.
const UCONTEXT_OFF: u64 = 8;
/// The kernel's ucontext up to its mask: the same bytes as glibc's
/// `ucontext_t` (whose mask is longer).
const UC_HEAD: usize = 296;
const SIGMASK_OFF: u64 = UCONTEXT_OFF + UC_HEAD as u64;
const SIGINFO_OFF: u64 = SIGMASK_OFF + 8;
const FRAME_SIZE: u64 = SIGINFO_OFF + 128;
/// `uc_mcontext.fpregs` within the ucontext.
const FPREGS_OFF: usize = 40 + 23 * 8;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Flags a program may change in rt_sigreturn (Linux's FIX_EFLAGS).
const FIX_EFLAGS: i64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000 | 0x4000 | 0x1_0000;

/// Size of the FPU image at `fp` (XSAVE with its software bytes, or
/// FXSAVE's 512), without the end magic.
///
/// # Safety
/// `fp` points to an FPU image the kernel wrote.
unsafe fn fpu_size(fp: *const u8) -> usize {
    // SAFETY: the legacy area is 512 bytes; the software bytes at 464.
    unsafe {
        if (fp.add(464) as *const u32).read_unaligned() == FP_XSTATE_MAGIC1 {
            (fp.add(480) as *const u32).read_unaligned() as usize
        } else {
            512
        }
    }
}

/// Apply `s` to the context `uc` of this thread's current handler: restart
/// the interrupted call, then (if `s.sig`) enter the program's handler.
///
/// # Safety
/// `uc` as the kernel passed it to this thread's SA_SIGINFO handler, for
/// the program's context; the pages below `s.sp` backed and mirrored.
pub unsafe fn deliver(uc: *mut libc::ucontext_t, s: &UtiSignal) {
    // SAFETY: per the contract.
    let g = unsafe { &mut (*uc).uc_mcontext.gregs };
    if s.restart != UTI_NO_RESTART {
        g[libc::REG_RIP as usize] -= 2; // back over `syscall`
        g[libc::REG_RAX as usize] = s.restart as i64;
    }
    if s.sig == 0 {
        return;
    }
    // SAFETY: per the contract (the kernel's FPU image of the context).
    let kfp = unsafe { (*uc).uc_mcontext.fpregs as *mut u8 };
    let size = if kfp.is_null() { 0 } else { unsafe { fpu_size(kfp) } };
    let fp = (s.sp - size as u64 - 4) & !63;
    let frame = ((fp - FRAME_SIZE) & !15) - 8;
    // SAFETY: [frame, fp + size + 4) lies below s.sp, in memory the LWK
    // backed for this frame and that the mirror maps at the same address.
    unsafe {
        if !kfp.is_null() {
            std::ptr::copy_nonoverlapping(kfp, fp as *mut u8, size);
            if size > 512 {
                (fp as *mut u32).add(size / 4).write_unaligned(FP_XSTATE_MAGIC2);
                // The handler starts with a clean FPU state, as on Linux:
                // XSTATE_BV 0 (every component in its initial state) and
                // the default MXCSR.
                (kfp.add(512) as *mut u64).write_unaligned(0);
                (kfp.add(24) as *mut u32).write_unaligned(0x1f80);
            }
        }
        let f = frame as *mut u8;
        (f as *mut u64).write_unaligned(s.restorer);
        std::ptr::copy_nonoverlapping(uc as *const u8, f.add(UCONTEXT_OFF as usize), UC_HEAD);
        let ucf = f.add(UCONTEXT_OFF as usize);
        (ucf.add(8) as *mut u64).write_unaligned(0); // uc_link
        (ucf.add(16) as *mut u64).write_unaligned(s.alt_sp);
        (ucf.add(24) as *mut u64).write_unaligned(s.alt_flags);
        (ucf.add(32) as *mut u64).write_unaligned(s.alt_size);
        (ucf.add(FPREGS_OFF) as *mut u64).write_unaligned(if kfp.is_null() { 0 } else { fp });
        (f.add(SIGMASK_OFF as usize) as *mut u64).write_unaligned(s.mask);
        std::ptr::copy_nonoverlapping(s.info.as_ptr(), f.add(SIGINFO_OFF as usize), 128);
    }
    g[libc::REG_RIP as usize] = s.handler as i64;
    g[libc::REG_RSP as usize] = frame as i64;
    g[libc::REG_RDI as usize] = s.sig as i64;
    g[libc::REG_RSI as usize] = (frame + SIGINFO_OFF) as i64;
    g[libc::REG_RDX as usize] = (frame + UCONTEXT_OFF) as i64;
    g[libc::REG_RAX as usize] = 0;
    g[libc::REG_EFL as usize] &= !(0x100 | 0x400); // TF, DF
}

/// The program's `rt_sigreturn` (trapped, context `uc`, stack pointer at
/// the frame's ucontext): load the frame's registers and FPU image into
/// `uc`. Returns the addresses of the frame's mask and `uc_stack`, which
/// the LWK makes the thread's.
///
/// # Safety
/// `uc` as in [`deliver`]; the frame is the program's memory (mirrored).
pub unsafe fn sigreturn(uc: *mut libc::ucontext_t) -> (u64, u64) {
    // SAFETY: per the contract.
    let g = unsafe { &mut (*uc).uc_mcontext.gregs };
    let at = g[libc::REG_RSP as usize] as u64;
    // SAFETY: the program's frame at its stack pointer (a bad one faults
    // in mcexec's code, as Linux would kill the program with SIGSEGV).
    unsafe {
        let fg = (at + 40) as *const i64;
        for (r, v) in g.iter_mut().enumerate().take(libc::REG_RIP as usize + 1) {
            *v = fg.add(r).read_unaligned();
        }
        let e = libc::REG_EFL as usize;
        g[e] = (g[e] & !FIX_EFLAGS) | (fg.add(e).read_unaligned() & FIX_EFLAGS);
        let ffp = ((at as usize + FPREGS_OFF) as *const u64).read_unaligned() as *const u8;
        let kfp = (*uc).uc_mcontext.fpregs as *mut u8;
        if !ffp.is_null() && !kfp.is_null() {
            std::ptr::copy_nonoverlapping(ffp, kfp, fpu_size(kfp).min(fpu_size(ffp)));
        }
    }
    (at + UC_HEAD as u64, at + 16)
}
