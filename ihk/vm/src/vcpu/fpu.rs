//! The FPU service of `ihk_abi::doorbell::FPU_PORT`: on hosts that emulate
//! the LWK's kernel code (KVM PVM), the LWK cannot execute XSAVE or any VEX
//! instruction, but its user mode runs natively with the host's AVX state.
//! The vCPU thread saves and loads that state for it with KVM_GET_XSAVE and
//! KVM_SET_XSAVE, one port exit per request, so thread switches and signal
//! handlers on the LWK keep whole YMM registers.

use crate::memory::GuestMemory;
use ihk_abi::doorbell::{FPU_QUERY_FEATURES, FPU_QUERY_SIZE, FPU_RESTORE, FPU_SAVE};
use kvm_bindings::kvm_xsave;
use kvm_ioctls::VcpuFd;

/// Bytes of `struct kvm_xsave`.
const KVM_XSAVE_SIZE: usize = std::mem::size_of::<kvm_xsave>();

/// Bytes of an image: the standard XSAVE size of the user mode's XCR0
/// (CPUID 0xD.0 EBX on this CPU), at most a `kvm_xsave`.
pub(crate) fn image_size() -> usize {
    let ebx = core::arch::x86_64::__cpuid_count(0xd, 0).ebx as usize;
    ebx.clamp(576, KVM_XSAVE_SIZE)
}

/// The XCR0 of user mode (the guest's user code runs with the host's).
fn features() -> u64 {
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 27) == 0 {
        return 3;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is allowed.
    unsafe { core::arch::x86_64::_xgetbv(0) }
}

/// Answer one request (`cmd` from rdi, `gpa` from rsi).
pub(crate) fn serve(fd: &VcpuFd, mem: &GuestMemory, cmd: u64, gpa: u64) -> u32 {
    let size = image_size();
    match cmd {
        FPU_QUERY_SIZE => size as u32,
        FPU_QUERY_FEATURES => features() as u32,
        FPU_SAVE => match fd.get_xsave() {
            Ok(x) => {
                // SAFETY: kvm_xsave is plain data of KVM_XSAVE_SIZE bytes.
                let bytes = unsafe { std::slice::from_raw_parts(&x as *const kvm_xsave as *const u8, KVM_XSAVE_SIZE) };
                match mem.write(gpa, &bytes[..size]) {
                    Ok(()) => 0,
                    Err(_) => libc::EFAULT as u32,
                }
            }
            Err(e) => e.errno() as u32,
        },
        FPU_RESTORE => {
            let mut x = kvm_xsave::default();
            let Ok(p) = mem.host_ptr(gpa, size as u64) else { return libc::EFAULT as u32 };
            // SAFETY: host_ptr checked the range is guest memory; the LWK
            // does not write the image while it waits for this answer.
            unsafe { std::ptr::copy_nonoverlapping(p, &mut x as *mut kvm_xsave as *mut u8, size) };
            // SAFETY: a kvm_xsave of the standard layout; KVM checks the
            // header and MXCSR and refuses a bad image (EINVAL).
            match unsafe { fd.set_xsave(&x) } {
                Ok(()) => 0,
                Err(e) => e.errno() as u32,
            }
        }
        _ => libc::EINVAL as u32,
    }
}
