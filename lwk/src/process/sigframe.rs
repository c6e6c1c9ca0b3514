//! Layout of the x86-64 signal frame (Linux's `struct rt_sigframe`) that
//! `signal` writes on the user stack: offsets of its parts, the flag and
//! magic words, and where the frame and the FPU image go below a stack
//! pointer. Pure arithmetic, unit-tested on the host (`lwk/hosttest`).

pub const UC_FP_XSTATE: u64 = 1;
pub const UC_SIGCONTEXT_SS: u64 = 2;
pub const UC_STRICT_RESTORE_SS: u64 = 4;
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// pretcode + ucontext (uc_flags, uc_link, uc_stack, sigcontext, sigmask) + siginfo.
pub const UCONTEXT_OFF: u64 = 8;
pub const SIGCONTEXT_OFF: u64 = UCONTEXT_OFF + 40;
pub const SIGMASK_OFF: u64 = SIGCONTEXT_OFF + 256;
pub const SIGINFO_OFF: u64 = SIGMASK_OFF + 8;
pub const FRAME_SIZE: u64 = SIGINFO_OFF + 128;

/// Where a handler's frame goes below `sp` (the red zone or the top of
/// the alternate stack already taken off): (FPU image, 64-byte aligned,
/// with `fpsize` bytes and the 4-byte end magic; the frame below it, placed
/// so that the handler starts with rsp + 8 16-byte aligned, as after a call).
pub fn place(sp: u64, fpsize: u64) -> (u64, u64) {
    let fp = (sp - fpsize - 4) & !63;
    let frame = ((fp - FRAME_SIZE) & !15) - 8;
    (fp, frame)
}

/// Smallest alternate stack a handler frame fits in (AT_MINSIGSTKSZ), for
/// an FPU image of `fpsize` bytes.
pub fn min_stack(fpsize: u64) -> u64 {
    FRAME_SIZE + fpsize + 4 + 64 + 128
}
