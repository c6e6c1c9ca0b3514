//! ihkd, the IHK-master daemon: it owns the reserved CPUs and memory, the
//! journal, and the OS instances (KVM partitions), and serves the protocol of
//! [`crate::proto`] on `mcd0` and `mcos<N>` in its runtime directory.
//!
//! Modules: `state` (reservations and device operations), `instance` (one OS
//! instance and its operations; `instance/ops` those of libihk and ihkmond),
//! `events` (eventfds and ihkmond's reports), `memconf` (settings of the
//! next memory reservation), `server` (sockets, peer credentials,
//! dispatch, signals), `daemonize` (detaching from the terminal with a
//! readiness report to the starter).
//!
//! Locking: the global `State` mutex is taken before an instance's mutex,
//! never after; a boot waits for the LWK holding only its instance's mutex.

mod attach;
mod daemonize;
mod events;
mod instance;
mod libihk;
pub mod memconf;
mod server;
mod state;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use anyhow::{bail, Context};

use crate::paths::{Roots, RuntimeDir};
use crate::reserve::Isolation;

pub use daemonize::{daemonize, daemonize_as, Readiness};

/// How an ihkd runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: RuntimeDir,
    pub roots: Roots,
    pub isolation: Isolation,
}

/// The pid file, locked for the life of the daemon: a second ihkd on the
/// same runtime directory fails to lock it and refuses to start.
pub struct PidLock {
    file: File,
    path: std::path::PathBuf,
}

impl PidLock {
    pub fn acquire(dir: &RuntimeDir) -> anyhow::Result<PidLock> {
        Self::acquire_file(dir.pid_file(), "ihkd", dir)
    }

    /// The pid file `path` of daemon `name` (ihkmond has its own).
    pub fn acquire_file(
        path: std::path::PathBuf,
        name: &str,
        dir: &RuntimeDir,
    ) -> anyhow::Result<PidLock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut other = String::new();
            let _ = file.read_to_string(&mut other);
            bail!(
                "another {name} (pid {}) already serves {}",
                other.trim(),
                dir.path().display()
            );
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(PidLock { file, path })
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = &self.file;
    }
}

/// Create the runtime directory (mode 0755: the sockets inside carry the
/// access rights).
pub fn prepare_runtime_dir(dir: &RuntimeDir) -> anyhow::Result<()> {
    fs::create_dir_all(dir.path()).with_context(|| format!("creating {}", dir.path().display()))?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting the mode of {}", dir.path().display()))?;
    Ok(())
}

/// Run the daemon until `Quit` or SIGTERM/SIGINT; everything it reserved is
/// released and the node restored before it returns. `ready` is told once
/// the sockets accept connections (or why starting failed).
pub fn run(cfg: Config, ready: Readiness) -> anyhow::Result<()> {
    server::run(cfg, ready)
}
