//! The x86-64 signal frame layout (`lwk/src/process/sigframe.rs`) against
//! Linux's `struct rt_sigframe` (arch/x86/include/asm/sigframe.h), built
//! here from the C library's types of the same ABI.

use core::mem::{offset_of, size_of};
use lwk_hosttest::process::sigframe::*;

/// The kernel's `struct ucontext` (uc_sigmask is the kernel's 64-bit set).
#[repr(C)]
struct KernelUcontext {
    uc_flags: u64,
    uc_link: u64,
    uc_stack: libc::stack_t,
    uc_mcontext: libc::mcontext_t, // = struct sigcontext
    uc_sigmask: u64,
}

#[repr(C)]
struct RtSigframe {
    pretcode: u64,
    uc: KernelUcontext,
    info: libc::siginfo_t,
}

#[test]
fn offsets_match_linux_rt_sigframe() {
    assert_eq!(size_of::<libc::mcontext_t>(), 256, "struct sigcontext");
    assert_eq!(offset_of!(RtSigframe, uc) as u64, UCONTEXT_OFF);
    assert_eq!((offset_of!(RtSigframe, uc) + offset_of!(KernelUcontext, uc_mcontext)) as u64, SIGCONTEXT_OFF);
    assert_eq!((offset_of!(RtSigframe, uc) + offset_of!(KernelUcontext, uc_sigmask)) as u64, SIGMASK_OFF);
    assert_eq!(offset_of!(RtSigframe, info) as u64, SIGINFO_OFF);
    assert_eq!(size_of::<RtSigframe>() as u64, FRAME_SIZE);
    // The C library's ucontext_t starts the same way (what handlers read).
    assert_eq!(offset_of!(libc::ucontext_t, uc_mcontext) as u64, SIGCONTEXT_OFF - UCONTEXT_OFF);
    assert_eq!(offset_of!(libc::ucontext_t, uc_sigmask) as u64, SIGMASK_OFF - UCONTEXT_OFF);
}

#[test]
fn flag_and_magic_words_are_linux_values() {
    // arch/x86/include/uapi/asm/{ucontext.h,sigcontext.h}
    assert_eq!((UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS), (0x1, 0x2, 0x4));
    assert_eq!((FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2), (0x4650_5853, 0x4650_5845));
}

#[test]
fn frame_placement_is_aligned_and_fits() {
    // FXSAVE, and XSAVE areas of common CPUs.
    for fpsize in [512u64, 832, 1088, 2440, 2696] {
        for k in 0..200u64 {
            let sp = 0x7fff_ffff_e000 - k * 24 - (k % 7);
            let (fp, frame) = place(sp, fpsize);
            assert_eq!(fp % 64, 0, "FPU image 64-byte aligned");
            assert!(fp + fpsize + 4 <= sp, "image and end magic below sp");
            assert_eq!((frame + 8) % 16, 0, "handler entered as after a call");
            assert!(frame + FRAME_SIZE <= fp, "frame below the image");
            // An alternate stack of AT_MINSIGSTKSZ bytes holds it all.
            let alt = sp & !0xfff;
            let (_, f2) = place(alt + min_stack(fpsize), fpsize);
            assert!(f2 >= alt, "fpsize {fpsize}: frame below a minimal alternate stack");
        }
    }
}
