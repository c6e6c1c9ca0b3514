//! Starting mpiexec and carrying its own output: the child runs in its own
//! process group (so teardown reaches every process it forked) and gets
//! SIGTERM if the server dies; its stdout and stderr go, through two relay
//! threads, to the caller of the current round or, between rounds, to the
//! server's log.

use super::job::ClientIo;
use crate::proto::{Bytes, Status};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Where relayed output goes now.
pub type RelayTarget = Arc<Mutex<Option<Arc<ClientIo>>>>;

/// A started mpiexec.
pub struct Mpiexec {
    pub child: Child,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Starts `command` with exactly `env`, in `cwd`.
pub fn spawn(command: &[Bytes], env: &[Bytes], cwd: &[u8]) -> io::Result<Mpiexec> {
    let (prog, args) = command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty mpiexec command"))?;
    let mut cmd = Command::new(OsStr::from_bytes(prog));
    cmd.args(args.iter().map(|a| OsStr::from_bytes(a)))
        .env_clear()
        .envs(env.iter().filter_map(|e| {
            let p = e.iter().position(|b| *b == b'=')?;
            Some((OsStr::from_bytes(&e[..p]), OsStr::from_bytes(&e[p + 1..])))
        }))
        .current_dir(OsStr::from_bytes(cwd))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(PR_SET_PDEATHSIG), which is async-signal-safe and touches
    // no memory shared with the parent. The server spawns from its main
    // thread, which lives as long as the server, so the signal means "the
    // server is gone".
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(io::Error::from)
        });
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    Ok(Mpiexec {
        child,
        stdout,
        stderr,
    })
}

/// mpiexec's exit as the shell would see it.
pub fn status_of(s: std::process::ExitStatus) -> Status {
    match (s.code(), s.signal()) {
        (Some(c), _) => Status::Code(c),
        (None, Some(sig)) => Status::Signal(sig),
        (None, None) => Status::Code(1),
    }
}

/// Which of mpiexec's streams a relay carries.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Out,
    Err,
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Copies `from` to the current target until end of file. Output that
/// cannot reach a caller (none, or it went away) goes to the log (our
/// stderr).
pub fn relay(mut from: impl Read, stream: Stream, target: RelayTarget) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("reading mpiexec's {stream:?}: {e}");
                return;
            }
        };
        // Take the target out of the lock: a slow reader of the caller's
        // output must not block a change of target.
        let to = target.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let delivered = to.is_some_and(|io| {
            let fd = match stream {
                Stream::Out => io.stdout.as_fd(),
                Stream::Err => io.stderr.as_fd(),
            };
            write_all(fd, &buf[..n]).is_ok()
        });
        if !delivered {
            let _ = write_all(io::stderr().as_fd(), &buf[..n]);
        }
    }
}
