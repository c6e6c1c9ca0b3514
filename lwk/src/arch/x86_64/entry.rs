//! SYSCALL entry and the way back to user mode.
//!
//! GS always holds the kernel's per-CPU base (the LWK never runs user code
//! with another GS base: `arch_prctl(ARCH_SET_GS)` is refused and
//! CR4.FSGSBASE stays off), so entry needs no `swapgs`. The entry stub saves
//! the user stack pointer in the per-CPU scratch word, switches to the
//! current thread's kernel stack and builds a [`TrapFrame`] with the same
//! layout as an interrupt's (`arch::x86_64::idt`), so a thread's user state is
//! always one frame at the top of its kernel stack. The return path prefers
//! `sysretq` and uses `iretq` when the frame is not sysret-safe (a signal
//! handler changed rip to a non-canonical address, or the frame came from
//! an interrupt). The call itself is the registered handler's (`hooks`).

use super::idt::TrapFrame;

/// Offsets in the per-CPU block that GS points at (`percpu::PerCpu`).
pub const PERCPU_KERNEL_RSP: usize = 16;
pub const PERCPU_USER_RSP: usize = 24;

/// User selectors of the GDT (`arch::x86_64::gdt`): user data 0x20, user
/// code64 0x28, with RPL 3.
pub const USER_DS: u64 = 0x23;
pub const USER_CS: u64 = 0x2b;

core::arch::global_asm!(
    r#"
    .section .text
    .balign 16
    .global lwk_syscall_entry
lwk_syscall_entry:
    movq %rsp, %gs:{user_rsp}
    movq %gs:{kernel_rsp}, %rsp
    pushq ${user_ds}
    pushq %gs:{user_rsp}
    pushq %r11
    pushq ${user_cs}
    pushq %rcx
    pushq $0
    pushq %rax
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call {dispatch}
    /* fall through */

    .global lwk_return_to_user
    /* rsp: a TrapFrame of user state. */
lwk_return_to_user:
    /* sysret is safe when the frame has the user selectors, rcx == rip,
       r11 == rflags and rip is canonical (below 2^47). */
    movq 17*8(%rsp), %rcx
    cmpq %rcx, 12*8(%rsp)
    jne 1f
    movq 19*8(%rsp), %r11
    cmpq %r11, 4*8(%rsp)
    jne 1f
    cmpq ${user_cs}, 18*8(%rsp)
    jne 1f
    cmpq ${user_ds}, 21*8(%rsp)
    jne 1f
    shrq $47, %rcx
    jnz 1f
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    movq 5*8(%rsp), %rsp
    sysretq
1:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
"#,
    user_rsp = const PERCPU_USER_RSP,
    kernel_rsp = const PERCPU_KERNEL_RSP,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    dispatch = sym syscall_from_user,
    options(att_syntax)
);

extern "C" {
    fn lwk_syscall_entry();
    fn lwk_return_to_user() -> !;
}

/// The SYSCALL path through LSTAR (ring 0) ran: 0 not yet, 1 ran and not
/// logged, 2 logged. The syscall layer logs it once (`hwvirt-check` reads
/// the line); arch prints nothing itself.
pub static RING0_ENTRY: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

extern "C" fn syscall_from_user(f: &mut TrapFrame) {
    let start = super::tsc::now();
    let nr = f.vector as u16;
    super::tlb::entered_kernel();
    if RING0_ENTRY.load(core::sync::atomic::Ordering::Relaxed) == 0 {
        RING0_ENTRY.store(1, core::sync::atomic::Ordering::Relaxed);
    }
    let h = super::hooks::get();
    (h.entered_from_user)();
    (h.syscall)(f);
    (h.return_to_user)(f);
    super::trace::record(start, ihk_abi::trace::CAUSE_SYSCALL, nr);
}

/// A SYSCALL that a nested hypervisor delivered without the switch to CPL0
/// (seen with KVM PVM hosts): it arrives as a user-mode page fault on
/// fetching the entry point, with rcx/r11 already saved.
pub fn is_emulated_syscall(f: &TrapFrame) -> bool {
    f.cs & 3 == 3 && f.vector == 14 && f.error_code & 0x10 != 0 && f.rip == entry_address()
}

/// Leave for user mode with the frame at `frame` (on the current thread's
/// kernel stack, directly below its top).
///
/// # Safety
/// `frame` must be a complete user-mode frame on the current kernel stack,
/// with nothing of the caller's needed afterwards.
pub unsafe fn enter_user(frame: *mut TrapFrame) -> ! {
    core::arch::asm!(
        "mov rsp, {f}",
        "jmp {ret}",
        f = in(reg) frame,
        ret = sym lwk_return_to_user,
        options(noreturn)
    );
}

/// Address of the SYSCALL entry point (LSTAR).
pub fn entry_address() -> u64 {
    lwk_syscall_entry as *const () as u64
}

const IA32_STAR: u32 = 0xc000_0081;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_FMASK: u32 = 0xc000_0084;
const IA32_EFER: u32 = 0xc000_0080;

/// Program SYSCALL on this CPU: kernel CS 0x08 (SS 0x10), sysret base 0x18
/// (user SS 0x23, CS 0x2b), entry point, and RFLAGS bits cleared on entry
/// (IF, TF, DF, AC, NT: the kernel runs with interrupts off).
pub fn init_this_cpu() {
    use super::{rdmsr, wrmsr};
    wrmsr(IA32_STAR, (0x18u64 << 48) | (0x08u64 << 32));
    wrmsr(IA32_LSTAR, lwk_syscall_entry as *const () as u64);
    wrmsr(IA32_FMASK, 0x4_7700);
    wrmsr(IA32_EFER, rdmsr(IA32_EFER) | 1);
}
