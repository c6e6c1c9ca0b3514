//! Starting and stopping ihkmond from the scripts: mcreboot stops the
//! ihkmond of its runtime directory (the script's `pidof ihkmond; kill`)
//! and starts a new one when `-k`/`-i` ask for it; mcstop+release stops it.
//! The running ihkmond is the process holding the lock on
//! `<runtime dir>/ihkmond.pid`.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::daemon_proc::{ihkd_path, wait_exit};
use crate::error::{IhkError, IhkResult};
use crate::mond;
use crate::paths::RuntimeDir;

/// How long ihkmond gets to exit after SIGTERM before SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// `ihkmond`: `$IHKMOND` if set, else next to ihkd.
pub fn ihkmond_path() -> PathBuf {
    match std::env::var_os("IHKMOND").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => ihkd_path().with_file_name("ihkmond"),
    }
}

/// Pid of the ihkmond serving `dir`, if one runs (its pid file is locked).
pub fn ihkmond_pid(dir: &RuntimeDir) -> Option<u32> {
    let path = mond::pid_file(dir);
    let f = OpenOptions::new().read(true).open(&path).ok()?;
    // SAFETY: flock on a descriptor we own; released when `f` closes.
    let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        return None; // left by an ihkmond that died
    }
    std::fs::read_to_string(&path).ok()?.trim().parse().ok()
}

/// Remove the pid file of an ihkmond that died without removing it (killed:
/// found by ihk/tests/faults.rs, `IHK_FAULT_STOP=ihkmond:started`), so
/// that the runtime directory is as a clean stop leaves it. Only while we
/// hold its lock: a starting ihkmond that has it keeps its file.
fn remove_stale_pid_file(dir: &RuntimeDir) -> IhkResult<()> {
    let path = mond::pid_file(dir);
    let Ok(f) = OpenOptions::new().read(true).open(&path) else { return Ok(()) };
    // SAFETY: flock on a descriptor we own; released when `f` closes.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(()); // an ihkmond holds it (it is starting)
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(IhkError::os(e, format!("removing {}", path.display()))),
    }
}

/// Start ihkmond for `dir` (it detaches; this returns once it runs) and
/// return its pid.
pub fn start_ihkmond(
    dir: &RuntimeDir,
    facility: &str,
    redirect_kmsg: i64,
    mon_interval: i64,
) -> IhkResult<u32> {
    let exe = ihkmond_path();
    let out = Command::new(&exe)
        .arg("--runtime-dir")
        .arg(dir.path())
        .args([
            "-f",
            facility,
            "-k",
            &redirect_kmsg.to_string(),
            "-i",
            &mon_interval.to_string(),
        ])
        .output()
        .map_err(|e| IhkError::os(e, format!("starting {}", exe.display())))?;
    if !out.status.success() {
        return Err(IhkError::io(format!(
            "{} failed to start: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    ihkmond_pid(dir)
        .ok_or_else(|| IhkError::io(format!("{} started but is not running", exe.display())))
}

/// Stop the ihkmond of `dir` (SIGTERM, then SIGKILL after a few seconds).
/// Returns whether one was running.
pub fn stop_ihkmond(dir: &RuntimeDir) -> IhkResult<bool> {
    let Some(pid) = ihkmond_pid(dir) else {
        remove_stale_pid_file(dir)?;
        return Ok(false);
    };
    let target = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
    if wait_exit(pid, STOP_WAIT) {
        return Ok(true);
    }
    tracing::warn!("ihkmond (pid {pid}) ignored SIGTERM; killing it");
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
    if wait_exit(pid, STOP_WAIT) {
        Ok(true)
    } else {
        Err(IhkError::busy(format!("ihkmond (pid {pid}) does not exit")))
    }
}
