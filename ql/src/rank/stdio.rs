//! Switching a rank's stdin/stdout/stderr between the launcher's and a
//! round caller's descriptors.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Lowest descriptor number for the saved launcher descriptors, out of the
/// way of programs that assume small numbers.
const SAVE_MIN_FD: i32 = 10;

/// Flushes every C stdio stream.
pub fn flush_all() {
    // SAFETY: fflush(NULL) flushes all output streams; it takes no pointer
    // of ours.
    unsafe { libc::fflush(std::ptr::null_mut()) };
}

/// The launcher's descriptors 0, 1, 2, duplicated (close-on-exec).
pub struct Saved([OwnedFd; 3]);

impl Saved {
    /// Duplicates the current 0, 1 and 2.
    pub fn save() -> std::io::Result<Self> {
        let dup = |fd: i32| -> std::io::Result<OwnedFd> {
            // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor we own; it
            // fails cleanly if `fd` is not open.
            let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, SAVE_MIN_FD) };
            if new < 0 {
                // A closed standard descriptor: stand in /dev/null.
                return std::fs::File::options()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map(OwnedFd::from);
            }
            // SAFETY: `new` was just created for us.
            Ok(unsafe { OwnedFd::from_raw_fd(new) })
        };
        Ok(Saved([dup(0)?, dup(1)?, dup(2)?]))
    }

    /// Puts the launcher's descriptors back on 0, 1, 2.
    pub fn restore(&self) {
        for (i, fd) in self.0.iter().enumerate() {
            // SAFETY: dup2 onto a standard descriptor number; both are open.
            unsafe { libc::dup2(fd.as_raw_fd(), i as i32) };
        }
    }
}

/// Installs a round's descriptors (stdin, stdout, stderr) on 0, 1, 2. A
/// message without descriptors leaves them as they are.
pub fn install(fds: super::RoundFds) {
    if fds.len() != 3 {
        return;
    }
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: dup2 onto a standard descriptor number; `fd` is open (we
        // own it until the end of this function).
        unsafe { libc::dup2(fd.as_raw_fd(), i as i32) };
    }
}
