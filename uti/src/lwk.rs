//! The second back end of thread creation: a program running on the LWK
//! (under `mcexec`). Before `pthread_create`, libuti issues McKernel's
//! `util_indicate_clone` (system call 731), so the LWK makes the next
//! clone a utility thread that `mcexec --enable-uti` runs on a Linux CPU
//! (mckernel-rs docs/uti.md). The answer tells where we are:
//!
//! - ENOSYS: plain Linux (the number is not Linux's): nothing changes;
//! - 0: on the LWK with `--enable-uti`: the placement's affinity is
//!   applied by glibc's `sched_setaffinity` of the new thread, which the
//!   LWK passes to Linux for a utility thread;
//! - EOPNOTSUPP: on the LWK without `--enable-uti`: an ordinary LWK thread,
//!   without the Linux placement (its CPUs are not the LWK's), with a log
//!   line (and the LWK's kmsg line).

use crate::log;

/// McKernel's `util_indicate_clone`.
pub const SYS_UTIL_INDICATE_CLONE: libc::c_long = 731;

/// Where the next thread is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Plain Linux.
    Linux,
    /// On the LWK, the next clone runs on Linux inside mcexec.
    LwkOnLinux,
    /// On the LWK without `--enable-uti`: an ordinary LWK thread.
    LwkOnly,
}

/// Are we on the LWK? (Its util_indicate_clone answers something other
/// than ENOSYS; mode -1 is invalid, so nothing is indicated.)
pub fn on_lwk() -> bool {
    // SAFETY: a system call without pointer arguments.
    let r = unsafe { libc::syscall(SYS_UTIL_INDICATE_CLONE, -1 as libc::c_long, 0 as libc::c_long) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
}

/// Withdraw the indication (pthread_create failed, maybe before cloning:
/// the thread's next ordinary clone must stay an ordinary thread).
pub fn withdraw() {
    // SAFETY: a system call without pointer arguments.
    unsafe { libc::syscall(SYS_UTIL_INDICATE_CLONE, -2 as libc::c_long, 0 as libc::c_long) };
}

/// Tell the kernel the calling thread's next clone is a utility thread.
/// Call right before `pthread_create`.
pub fn indicate_clone() -> Backend {
    // SAFETY: a system call without pointer arguments.
    let r = unsafe { libc::syscall(SYS_UTIL_INDICATE_CLONE, 0 as libc::c_long, 0 as libc::c_long) };
    if r == 0 {
        return Backend::LwkOnLinux;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP) => {
            log::warning!(
                "running on the LWK without mcexec --enable-uti: the utility thread runs on the LWK, without Linux placement"
            );
            Backend::LwkOnly
        }
        _ => Backend::Linux,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn on_linux_the_indication_is_a_no_op() {
        assert_eq!(super::indicate_clone(), super::Backend::Linux);
    }
}
