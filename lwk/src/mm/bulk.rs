//! Zeroing, copying and filling user memory in bulk for the address spaces
//! (`aspace`). How is the process layer's choice, registered at boot: by
//! the calling thread's proxy (`process::offload::zero_user`, `copy_phys`:
//! the host does it at memory speed; `read_file`: a `pread` of a host file
//! into guest memory). Until then, and for the kernel's own use, zeroing and
//! copying happen here through the direct map; reading a file cannot.

use crate::errno::Errno;

struct Ops {
    zero: fn(u64, u64),
    copy: fn(u64, u64, u64) -> Result<(), Errno>,
    read_file: fn(i32, u64, u64, u64) -> Result<u64, Errno>,
}

static OPS: spin::Once<Ops> = spin::Once::new();

/// Register how user memory is zeroed, copied and filled from host files
/// (BSP, once, at boot).
pub fn register(
    zero: fn(u64, u64),
    copy: fn(u64, u64, u64) -> Result<(), Errno>,
    read_file: fn(i32, u64, u64, u64) -> Result<u64, Errno>,
) {
    OPS.call_once(|| Ops { zero, copy, read_file });
}

/// Read `len` bytes of host file `fd` at `off` into guest-physical `pa`
/// (stops early at the end of the file: the rest is left as it was).
pub fn read_file(fd: i32, pa: u64, len: u64, off: u64) -> Result<(), Errno> {
    let f = OPS.get().ok_or(crate::errno::EIO)?.read_file;
    let mut done = 0;
    while done < len {
        let n = f(fd, pa + done, len - done, off + done)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(())
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
