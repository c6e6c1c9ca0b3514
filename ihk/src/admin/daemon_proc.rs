//! Starting and stopping ihkd from the scripts (the equivalent of their
//! insmod/rmmod steps), and finding the installed files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::{IhkError, IhkResult};
use crate::paths::RuntimeDir;

/// The directory of the running executable.
fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()?
        .parent()
        .map(Path::to_path_buf)
}

/// `ihkd`: `$IHKD` if set, else next to this executable, else
/// `<prefix>/sbin/ihkd` for an executable in `<prefix>/bin`, else `PATH`.
pub fn ihkd_path() -> PathBuf {
    if let Some(p) = std::env::var_os("IHKD").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = exe_dir() {
        for cand in [d.join("ihkd"), d.join("../sbin/ihkd")] {
            if cand.is_file() {
                return cand;
            }
        }
    }
    PathBuf::from("ihkd")
}

/// The LWK image: `$MCKERNEL_IMAGE`, else `mckernel.img` next to this
/// executable, else `<prefix>/lib/mckernel/mckernel.img`.
pub fn default_image() -> PathBuf {
    if let Some(p) = std::env::var_os("MCKERNEL_IMAGE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = exe_dir() {
        let here = d.join("mckernel.img");
        if here.is_file() {
            return here;
        }
        if let Some(prefix) = d.parent() {
            return prefix.join("lib/mckernel/mckernel.img");
        }
    }
    PathBuf::from("/usr/lib/mckernel/mckernel.img")
}

/// Start ihkd (it returns once its sockets accept connections) and return
/// its pid.
pub fn start_ihkd(dir: &RuntimeDir) -> IhkResult<u32> {
    let exe = ihkd_path();
    let out = Command::new(&exe)
        .arg("--runtime-dir")
        .arg(dir.path())
        .output()
        .map_err(|e| IhkError::os(e, format!("starting {}", exe.display())))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(IhkError::io(format!(
            "{} failed to start: {msg}",
            exe.display()
        )));
    }
    Client::device(dir, 0)?.daemon_info().map(|i| i.pid)
}

/// Wait until process `pid` has exited (it is not our child), all of its
/// threads: then its memory and descriptors are given back.
///
/// A pidfd becomes readable once the whole thread group has exited. The
/// state of `/proc/<pid>/stat` alone is not enough: it is the leader
/// thread's, which is a zombie as soon as that one thread has exited while
/// the others (ihkd's vCPU threads, leaving KVM_RUN) still run and still
/// hold the guest memory. That made mcstop+release start its journal
/// replay too early after a `kill -9` of ihkd, now and then, which then
/// found the hugepages still in use (docs/reliability.md).
pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // SAFETY: pidfd_open on a pid, no pointer; a gone pid gives ESRCH.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd >= 0 {
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut p = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&fd), events: libc::POLLIN, revents: 0 };
            // SAFETY: polling one descriptor we own.
            let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if r > 0 {
                return true;
            }
            if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return false;
            }
        }
    }
    if std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    // No pidfd (a kernel before 5.3): a zombie leader with no thread left.
    let path = PathBuf::from(format!("/proc/{pid}"));
    loop {
        if !thread_group_alive(&path) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the process of `/proc/<pid>` still has a running thread.
fn thread_group_alive(proc_dir: &Path) -> bool {
    let Ok(status) = std::fs::read_to_string(proc_dir.join("status")) else { return false };
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("").to_string()
    };
    !(field("State:").starts_with('Z') && field("Threads:") == "1")
}

/// Ask ihkd to release everything and exit; wait for it to go.
pub fn stop_ihkd(dir: &RuntimeDir) -> IhkResult<()> {
    let mut c = Client::device(dir, 0)?;
    let pid = c.daemon_info()?.pid;
    let r = c.quit();
    if !wait_exit(pid, Duration::from_secs(15)) {
        return Err(IhkError::busy(format!(
            "ihkd (pid {pid}) did not exit after quit"
        )));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The second thread of a forked child: outlives the leader, then ends
    /// the process.
    extern "C" fn linger(_: *mut libc::c_void) -> *mut libc::c_void {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 400_000_000 };
        // SAFETY: plain system calls of the child.
        unsafe {
            libc::nanosleep(&ts, std::ptr::null_mut());
            libc::syscall(libc::SYS_exit_group, 0);
        }
        std::ptr::null_mut()
    }

    /// A process whose leader thread has exited (a zombie in /proc/<pid>/stat)
    /// while another thread still runs has not exited: the case of a killed
    /// ihkd whose vCPU threads are still leaving KVM_RUN.
    #[test]
    fn a_zombie_leader_with_a_running_thread_has_not_exited() {
        // SAFETY: the child only creates a thread and makes system calls.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: in the child: one thread more, then the leader ends
            // alone (SYS_exit ends the calling thread only).
            unsafe {
                let mut t: libc::pthread_t = std::mem::zeroed();
                libc::pthread_create(&mut t, std::ptr::null(), linger, std::ptr::null_mut());
                libc::syscall(libc::SYS_exit, 0);
            }
            unreachable!();
        }
        let stat = format!("/proc/{pid}/stat");
        let zombie = || {
            std::fs::read_to_string(&stat)
                .is_ok_and(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z"))
        };
        let start = Instant::now();
        while !zombie() {
            assert!(start.elapsed() < Duration::from_secs(5), "the leader did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        let leader_gone = Instant::now();
        assert!(thread_group_alive(Path::new(&format!("/proc/{pid}"))), "a thread still runs");
        assert!(wait_exit(pid as u32, Duration::from_secs(10)));
        let waited = leader_gone.elapsed();
        assert!(!thread_group_alive(Path::new(&format!("/proc/{pid}"))));
        let mut status = 0;
        // SAFETY: reaping our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(waited >= Duration::from_millis(200), "wait_exit returned after {waited:?}, before the last thread ended");
        assert!(!wait_exit(std::process::id(), Duration::from_millis(50)), "we still run");
        assert!(wait_exit(pid as u32, Duration::from_millis(50)), "a reaped pid has exited");
    }
}
