//! Detach from the terminal (double fork, new session, stdio on
//! /dev/null) while the starting process waits for a readiness report, so
//! `ihkd` returns 0 only once its sockets accept connections and non-zero
//! with the reason when it could not start.
//!
//! Must be called while the process is single-threaded.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::unistd::{fork, pipe, setsid, ForkResult};

/// Where to report readiness.
pub enum Readiness {
    /// Foreground: nobody waits.
    Foreground,
    /// Daemonized: the starter reads this pipe.
    Pipe(OwnedFd),
}

impl Readiness {
    /// The daemon serves.
    pub fn ok(&mut self) {
        self.send("OK\n");
    }

    /// The daemon could not start.
    pub fn fail(&mut self, why: &str) {
        self.send(&format!("{why}\n"));
    }

    fn send(&mut self, msg: &str) {
        if let Readiness::Pipe(fd) = std::mem::replace(self, Readiness::Foreground) {
            let mut f = File::from(fd);
            let _ = f.write_all(msg.as_bytes());
        }
    }
}

/// Fork into the background. Returns in the daemon; the original process
/// exits with 0 when the daemon reports ready, 1 (printing the reason)
/// otherwise.
pub fn daemonize() -> anyhow::Result<Readiness> {
    daemonize_as("ihkd")
}

/// [`daemonize`] for the daemon `name` (its messages name it; ihkmond uses
/// this too).
pub fn daemonize_as(name: &str) -> anyhow::Result<Readiness> {
    let (rd, wr) = pipe()?;
    // SAFETY: single-threaded at this point (documented precondition), so
    // the child may run arbitrary code.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            drop(wr);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut msg = String::new();
            let _ = File::from(rd).read_to_string(&mut msg);
            if msg == "OK\n" {
                std::process::exit(0);
            }
            let msg = msg.trim();
            if msg.is_empty() {
                eprintln!("{name}: the daemon exited before it was ready (see its log)");
            } else {
                eprintln!("{name}: {msg}");
            }
            std::process::exit(1);
        }
        ForkResult::Child => {}
    }
    drop(rd);
    setsid()?;
    // SAFETY: still single-threaded.
    if let ForkResult::Parent { .. } = unsafe { fork() }? {
        // The intermediate child: let the session leader go so the daemon
        // can never reacquire a terminal.
        // SAFETY: _exit skips destructors of state shared with the daemon.
        unsafe { libc::_exit(0) };
    }
    std::env::set_current_dir("/")?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors of this process.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
    drop(null);
    close_inherited(wr.as_raw_fd());
    Ok(Readiness::Pipe(wr))
}

/// Close every descriptor but the standard ones and `keep`: a daemon must
/// not hold what its starter had open. Found by scripts/soak.sh: ihkd kept
/// the partition lock file that the caller of `mcreboot` held (`flock
/// <file> mcreboot ...`, or a script's `exec 9>>lock`), so the lock
/// outlived the caller for as long as ihkd ran.
fn close_inherited(keep: RawFd) {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // SAFETY: single-threaded; nothing in this process uses these
        // descriptors (they came from the starter). The one read_dir used
        // is already closed, which makes its close fail with EBADF.
        unsafe { libc::close(fd) };
    }
}
