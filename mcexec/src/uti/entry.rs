//! Switching a utility thread between the program's context and mcexec's:
//! the first entry into the program (a built signal frame and
//! `rt_sigreturn`, which loads every register at once), and the SIGSYS
//! entry, which swaps the FS base (TLS) from the program's to this
//! thread's own before any mcexec code runs and back before returning.
//!
//! The thread's own FS base is kept at the bottom of its alternate signal
//! stack ([`AltHeader`]); the entry finds it with `sigaltstack`. Until FS
//! is swapped, the entry uses raw system calls only (no errno, no
//! thread-locals: they would land in the program's TLS).

use std::arch::asm;

use ihk_abi::offload::{UtiRegs, USER_END, USER_START};

/// Size of a utility thread's alternate signal stack (the handler serves
/// offload requests on it).
pub const ALTSTACK_SIZE: usize = 512 << 10;

/// At the bottom of the alternate signal stack.
#[repr(C)]
pub struct AltHeader {
    /// mcexec's FS base of this thread (its glibc thread pointer).
    pub mcexec_fs: u64,
    /// The stack pointer at which [`enter_program`] returns (written by
    /// it, used by [`leave_program`]).
    pub return_rsp: u64,
}

const SYS_RT_SIGRETURN: u64 = 15;
const SYS_SIGALTSTACK: u64 = 131;
const SYS_ARCH_PRCTL: u64 = 158;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;

/// A two-argument system call without errno.
///
/// # Safety
/// As the call itself.
#[inline(always)]
unsafe fn raw2(nr: u64, a: u64, b: u64) -> i64 {
    let r: i64;
    // SAFETY: per the caller; `syscall` clobbers rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => r, in("rdi") a, in("rsi") b,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

/// The calling thread's FS base.
pub fn fs_base() -> u64 {
    let mut v = 0u64;
    // SAFETY: ARCH_GET_FS writes one u64 to a local.
    unsafe { raw2(SYS_ARCH_PRCTL, ARCH_GET_FS, &mut v as *mut u64 as u64) };
    v
}

/// Enter the program with `regs` on this thread: FS base, all general
/// registers, flags, fresh FPU state; `alt` (`ALTSTACK_SIZE` bytes, an
/// [`AltHeader`] at its start) becomes the alternate signal stack and the
/// signal mask stays this thread's. Returns when the thread's handler
/// calls [`leave_program`] (the LWK thread has exited), on mcexec's FS
/// base, with the handler's signal mask and `alt` still the alternate
/// stack (no longer in use).
///
/// # Safety
/// The program's memory must be mirrored, the SIGSYS handler and filter in
/// place, and `alt` live until this returns.
pub unsafe fn enter_program(regs: &UtiRegs, alt: *mut u8) {
    // The kernel reads the frame at the stack pointer (after an 8-byte
    // return-address slot), as it built it for a handler.
    let mut buf = vec![0u8; 4096].into_boxed_slice();
    let uc = unsafe { &mut *(buf.as_mut_ptr().add(64) as *mut libc::ucontext_t) };
    let g = &mut uc.uc_mcontext.gregs;
    for (i, v) in [
        (libc::REG_R8, regs.r8),
        (libc::REG_R9, regs.r9),
        (libc::REG_R10, regs.r10),
        (libc::REG_R11, regs.r11),
        (libc::REG_R12, regs.r12),
        (libc::REG_R13, regs.r13),
        (libc::REG_R14, regs.r14),
        (libc::REG_R15, regs.r15),
        (libc::REG_RDI, regs.rdi),
        (libc::REG_RSI, regs.rsi),
        (libc::REG_RBP, regs.rbp),
        (libc::REG_RBX, regs.rbx),
        (libc::REG_RDX, regs.rdx),
        (libc::REG_RAX, regs.rax),
        (libc::REG_RCX, regs.rcx),
        (libc::REG_RSP, regs.rsp),
        (libc::REG_RIP, regs.rip),
        (libc::REG_EFL, regs.rflags),
        // cs = __USER_CS, ss = __USER_DS (bits 48..63).
        (libc::REG_CSGSFS, 0x33 | (0x2b << 48)),
    ] {
        g[i as usize] = v as i64;
    }
    // fpregs NULL: the kernel gives the thread a fresh FPU state.
    uc.uc_stack = libc::stack_t { ss_sp: alt.cast(), ss_flags: 0, ss_size: ALTSTACK_SIZE };
    // SAFETY: reads this thread's signal mask into the frame.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut uc.uc_sigmask) };
    let frame = buf.as_mut_ptr() as u64 + 64;
    // SAFETY: `alt` starts with the header (written by the caller).
    let ret_slot = unsafe { std::ptr::addr_of_mut!((*(alt as *mut AltHeader)).return_rsp) };
    // SAFETY: the callee-saved registers and the address of label 2 are
    // pushed on this stack and the stack pointer is kept in the header;
    // `leave_program` comes back to label 2 with exactly that stack
    // pointer, which pops them: to the compiler the block returns like a
    // call that clobbered the caller-saved registers. After ARCH_SET_FS no
    // Rust code runs on this thread until an entry swaps FS back;
    // rt_sigreturn loads the frame built above (`buf` outlives the block;
    // rdx is not touched by `syscall`).
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "lea rcx, [rip + 2f]",
            "push rcx",
            "mov [r8], rsp",
            "syscall",
            "mov rsp, rdx",
            "mov eax, {sigreturn}",
            "syscall",
            "ud2",
            "2:",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            sigreturn = const SYS_RT_SIGRETURN,
            in("rax") SYS_ARCH_PRCTL,
            in("rdi") ARCH_SET_FS,
            in("rsi") regs.fs_base,
            in("rdx") frame,
            in("r8") ret_slot,
            clobber_abi("C"),
        )
    }
    drop(buf);
}

/// From a utility thread's handler (on its alternate stack, mcexec's FS
/// base), after the LWK thread has exited: return from [`enter_program`]
/// on the thread's own stack, abandoning the handler and the program's
/// context, so that the thread ends as a Rust thread (glibc takes back its
/// stack, thread-locals are dropped) and its alternate stack can be freed.
///
/// # Safety
/// Only in a handler of a utility thread whose `enter_program` has not
/// returned; nothing on the alternate stack may be used afterwards.
pub unsafe fn leave_program() -> ! {
    let mut ss = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: 0, ss_size: 0 };
    // SAFETY: reads this thread's alternate stack into a local; its header
    // was written by `run` and `enter_program`.
    let rsp = unsafe {
        raw2(SYS_SIGALTSTACK, 0, &mut ss as *mut libc::stack_t as u64);
        (*(ss.ss_sp as *const AltHeader)).return_rsp
    };
    // SAFETY: per the contract; see `enter_program` for the stack layout.
    unsafe { asm!("mov rsp, {0}", "ret", in(reg) rsp, options(noreturn)) }
}

/// SIGSYS handler (SA_SIGINFO | SA_ONSTACK): a utility thread's program
/// made a call the LWK must run.
pub extern "C" fn sigsys_entry(_sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: as in `on_mcexec_tls`.
    unsafe { on_mcexec_tls(info, uc, super::on_sigsys) }
}

/// SIGSEGV handler (SA_SIGINFO | SA_ONSTACK): a fault of the program's code
/// (a utility thread touching memory not mirrored yet) goes to the LWK;
/// a fault of mcexec's own code to the handler that was there before.
pub extern "C" fn sigsegv_entry(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext to a SA_SIGINFO handler.
    let rip = unsafe { (*(uc as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] as u64 };
    if (USER_START..USER_END).contains(&rip) {
        // SAFETY: as in `on_mcexec_tls`.
        unsafe { on_mcexec_tls(info, uc, super::on_sigsegv) }
    } else {
        // SAFETY: forwarding the kernel's arguments.
        unsafe { super::previous_sigsegv(sig, info, uc) }
    }
}

/// SIGURG handler (SA_SIGINFO | SA_ONSTACK, no SA_RESTART): the proxy
/// interrupt (a blocking call returns EINTR, `proxy.rs`); in a utility
/// thread running the program, also a request to visit the LWK
/// (`on_sigurg`).
pub extern "C" fn sigurg_entry(_sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext to a SA_SIGINFO handler.
    let rip = unsafe { (*(uc as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] as u64 };
    if (USER_START..USER_END).contains(&rip) {
        // SAFETY: as in `on_mcexec_tls`.
        unsafe { on_mcexec_tls(info, uc, super::on_sigurg) }
    }
}

/// Run `f` with this thread's own FS base instead of the program's.
///
/// # Safety
/// Only in a utility thread's handler for a signal raised by the
/// program's code (on the thread's own alternate stack).
#[inline(always)]
unsafe fn on_mcexec_tls(
    info: *mut libc::siginfo_t,
    uc: *mut libc::c_void,
    f: unsafe fn(*mut libc::siginfo_t, *mut libc::c_void),
) {
    // SAFETY: raw calls on locals; the header was written by `run` before
    // the thread entered the program (no other thread has this altstack).
    unsafe {
        let mut prog_fs = 0u64;
        raw2(SYS_ARCH_PRCTL, ARCH_GET_FS, &mut prog_fs as *mut u64 as u64);
        let mut ss = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: 0, ss_size: 0 };
        raw2(SYS_SIGALTSTACK, 0, &mut ss as *mut libc::stack_t as u64);
        if ss.ss_sp.is_null() || ss.ss_flags & libc::SS_DISABLE != 0 {
            return; // not a utility thread: no filter traps here
        }
        let own_fs = (*(ss.ss_sp as *const AltHeader)).mcexec_fs;
        raw2(SYS_ARCH_PRCTL, ARCH_SET_FS, own_fs);
        f(info, uc);
        raw2(SYS_ARCH_PRCTL, ARCH_SET_FS, prog_fs);
    }
}
