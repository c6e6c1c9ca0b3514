//! Descriptors kept for private file mappings, proxy side
//! (docs/memory.md): the LWK fills a private file mapping's pages from the
//! file when they are first touched, with `PreadPhys` on a duplicate of
//! the program's descriptor that we keep ([`keep`], `OffloadCall::KeepFd`),
//! since the program usually closes its own right after `mmap`. The
//! program cannot close ours (`exec.rs` refuses `close`/`dup2` on them and
//! `close_range` skips them); the LWK drops one when no mapping of its
//! file is left ([`drop_fd`]). A fork child inherits them, as the LWK's
//! child inherits the mappings.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

static KEPT: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

fn kept() -> std::sync::MutexGuard<'static, Vec<OwnedFd>> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno() -> i64 {
    -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EBADF) as i64)
}

/// `OffloadCall::KeepFd(fd)`: a close-on-exec duplicate of `fd` at a high
/// number, ours. Returns it or -errno.
pub fn keep(fd: RawFd) -> i64 {
    // SAFETY: F_DUPFD_CLOEXEC of a descriptor number; an invalid one fails.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, crate::session::reserved_fd_base()) };
    if n < 0 {
        return errno();
    }
    // SAFETY: a fresh descriptor nobody else owns.
    kept().push(unsafe { OwnedFd::from_raw_fd(n) });
    n as i64
}

/// `OffloadCall::DropFd(fd)`: close one of ours. Returns 0 or -EBADF.
pub fn drop_fd(fd: RawFd) -> i64 {
    let mut v = kept();
    match v.iter().position(|f| f.as_raw_fd() == fd) {
        Some(i) => {
            v.swap_remove(i);
            0
        }
        None => -(libc::EBADF as i64),
    }
}

/// Whether `fd` is one of ours.
pub fn owns(fd: RawFd) -> bool {
    kept().iter().any(|f| f.as_raw_fd() == fd)
}

/// Our descriptors.
pub fn fds() -> Vec<RawFd> {
    kept().iter().map(|f| f.as_raw_fd()).collect()
}
