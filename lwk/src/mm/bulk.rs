//! Zeroing and copying user memory in bulk for the address spaces
//! (`aspace`). How is the process layer's choice, registered at boot: by
//! the calling thread's proxy (`process::offload::zero_user`, `copy_phys`:
//! the host does it at memory speed). Until then, and for the kernel's own
//! use, here through the direct map.

use crate::errno::Errno;

struct Ops {
    zero: fn(u64, u64),
    copy: fn(u64, u64, u64) -> Result<(), Errno>,
}

static OPS: spin::Once<Ops> = spin::Once::new();

/// Register how user memory is zeroed and copied (BSP, once, at boot).
pub fn register(zero: fn(u64, u64), copy: fn(u64, u64, u64) -> Result<(), Errno>) {
    OPS.call_once(|| Ops { zero, copy });
}

/// Zero new user memory `[pa, pa+len)`.
pub fn zero_user(pa: u64, len: u64) {
    match OPS.get() {
        Some(o) => (o.zero)(pa, len),
        None => super::phys::zero(pa, len),
    }
}

/// Copy `len` bytes of guest-physical memory from `src` to `dst`.
pub fn copy_phys(dst: u64, src: u64, len: u64) -> Result<(), Errno> {
    match OPS.get() {
        Some(o) => (o.copy)(dst, src, len),
        None => {
            // SAFETY: both ranges are guest memory owned by the caller.
            unsafe { core::ptr::copy(super::phys::to_virt(src), super::phys::to_virt(dst), len as usize) };
            Ok(())
        }
    }
}
