//! `capset(hdr, data)` of the program's own capabilities. The LWK gives
//! its process mcexec's pid, so a program that names itself in the header
//! (`hdr->pid = getpid()`, as stress-ng does) names mcexec's main thread,
//! while the call runs in its proxy thread, and Linux refuses a capset of
//! any thread but the caller with EPERM. Capabilities are per thread on
//! Linux, and each LWK thread has its own proxy thread, so "myself" is the
//! proxy thread: the header is copied with the pid made 0 (the caller).
//! The copy goes through process_vm_readv/writev, so that a bad header
//! pointer is EFAULT, as on Linux, and never a fault of mcexec.

use ihk_abi::linux::errno::EFAULT;
use ihk_abi::linux::sys;

use super::raw_syscall;

/// Copy `len` bytes between our address space at `local` and `remote`
/// (also ours: the mirrored user range), `write` for local to remote.
fn copy(local: *mut u8, remote: u64, len: usize, write: bool) -> bool {
    let l = libc::iovec { iov_base: local as *mut libc::c_void, iov_len: len };
    let r = libc::iovec { iov_base: remote as *mut libc::c_void, iov_len: len };
    // SAFETY: `local` is a buffer of ours of `len` bytes; the kernel checks
    // `remote` and fails with EFAULT rather than faulting.
    let n = unsafe {
        if write {
            libc::process_vm_writev(libc::getpid(), &l, 1, &r, 1, 0)
        } else {
            libc::process_vm_readv(libc::getpid(), &l, 1, &r, 1, 0)
        }
    };
    n == len as isize
}

/// capset for the program whose pid (as the LWK gives it) is `own_pid`.
pub fn capset(a: [u64; 6], own_pid: i32) -> i64 {
    // struct __user_cap_header_struct { u32 version; int pid; }
    let mut hdr = [0u32; 2];
    if !copy(hdr.as_mut_ptr() as *mut u8, a[0], 8, false) {
        return EFAULT.neg();
    }
    if hdr[1] as i32 != own_pid {
        // SAFETY: the program's own arguments, pointers into the mirror.
        return unsafe { raw_syscall(sys::SYS_capset, a) };
    }
    let mut mine = [hdr[0], 0];
    // SAFETY: `mine` is a header of ours; `a[1]` is the program's data
    // pointer into the mirror, which the kernel checks.
    let r = unsafe { raw_syscall(sys::SYS_capset, [mine.as_mut_ptr() as u64, a[1], 0, 0, 0, 0]) };
    // An unknown version: Linux writes the one it prefers into the header.
    if mine[0] != hdr[0] && !copy(mine.as_mut_ptr() as *mut u8, a[0], 4, true) {
        return EFAULT.neg();
    }
    r
}
