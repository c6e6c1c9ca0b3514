//! Linux errno values (asm-generic/errno-base.h, errno.h) the LWK returns.
//! Below every layer: imports nothing of the kernel, so any layer may
//! return an [`Errno`] (`syscall/` turns it into rax).

/// A positive errno; system calls return its negation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

pub const EPERM: Errno = Errno(1);
pub const ESRCH: Errno = Errno(3);
pub const EINTR: Errno = Errno(4);
pub const EIO: Errno = Errno(5);
pub const ENOEXEC: Errno = Errno(8);
pub const EAGAIN: Errno = Errno(11);
pub const ENOMEM: Errno = Errno(12);
pub const EFAULT: Errno = Errno(14);
pub const EEXIST: Errno = Errno(17);
pub const ENODEV: Errno = Errno(19);
pub const EINVAL: Errno = Errno(22);
pub const EPIPE: Errno = Errno(32);
pub const ENOSYS: Errno = Errno(38);
pub const EOPNOTSUPP: Errno = Errno(95);

/// Result of a system call handler: the value for rax, or an errno.
pub type SysResult = Result<u64, Errno>;

/// The raw return value for rax.
pub fn to_raw(r: SysResult) -> u64 {
    match r {
        Ok(v) => v,
        Err(Errno(e)) => (-(e as i64)) as u64,
    }
}
