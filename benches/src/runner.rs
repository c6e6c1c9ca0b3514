//! Running one benchmark program on one side: on the LWK (`mcexec [args]
//! <program> <args>`) or natively pinned to the LWK's CPUs (the same argv,
//! with sched_setaffinity in the child before exec). Both sides share every
//! other line of code.
//!
//! A child is watched through a pidfd: the harness kills it (by its own pid,
//! before reaping it, so the pid cannot have been reused) when it runs past
//! its time limit or when the harness is asked to stop.

use crate::interrupt;
use anyhow::{anyhow, bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which system runs the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Lwk,
    Linux,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Lwk => "LWK",
            Side::Linux => "Linux",
        }
    }
}

/// How to reach the LWK: the mcexec binary, its options, and the
/// environment that names the partition (IHK_RUNTIME_DIR).
#[derive(Debug, Clone)]
pub struct Mcexec {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, OsString)>,
}

/// Checked about once a second while an LWK program runs: Some(reason)
/// when the partition can no longer finish it (PANIC, HUNGUP), so the
/// program is killed at once instead of at its time limit.
pub type Health = Arc<dyn Fn() -> Option<String> + Send + Sync>;

#[derive(Clone)]
pub struct Runner {
    side: Side,
    /// The CPUs a native child is pinned to.
    cpus: Vec<usize>,
    mcexec: Option<Mcexec>,
    health: Option<Health>,
}

/// The harness killed the program: time limit, stop request or a dead
/// partition. Found in an error's chain with `is_killed`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{why}; killed it{stderr_tail}")]
pub struct Killed {
    pub why: String,
    /// `": <last lines of its stderr>"`, or empty.
    pub stderr_tail: String,
}

/// Whether the harness killed the program behind this error.
pub fn is_killed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Killed>())
}

/// What a finished program left behind.
#[derive(Debug)]
pub struct Finished {
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit.
    pub wall: Duration,
}

impl Runner {
    /// Native Linux, pinned to `cpu`.
    pub fn linux(cpu: usize) -> Runner {
        Runner::linux_on(&[cpu])
    }

    /// Native Linux, pinned to the CPU set `cpus` (the thread benchmarks).
    pub fn linux_on(cpus: &[usize]) -> Runner {
        Runner {
            side: Side::Linux,
            cpus: cpus.to_vec(),
            mcexec: None,
            health: None,
        }
    }

    /// Under mcexec on the partition whose LWK CPU is `cpu`; `health`
    /// tells when the partition has died.
    pub fn lwk(cpu: usize, mcexec: Mcexec, health: Option<Health>) -> Runner {
        Runner {
            side: Side::Lwk,
            cpus: vec![cpu],
            mcexec: Some(mcexec),
            health,
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    /// The command that runs `program args` on this side.
    pub fn command(&self, program: &Path, args: &[String]) -> Command {
        match &self.mcexec {
            Some(m) => {
                let mut c = Command::new(&m.path);
                c.args(&m.args).arg(program).args(args);
                c.envs(m.env.iter().map(|(k, v)| (k, v)));
                c
            }
            None => {
                let mut c = Command::new(program);
                c.args(args);
                pin_child(&mut c, &self.cpus);
                c
            }
        }
    }

    /// `program args` started by a launcher (`mpirun -n 2`): on the LWK
    /// side `launcher mcexec <mcexec options> <mcexec_extra> program args`
    /// (each rank its own mcexec), natively `launcher program args` with
    /// the launcher pinned to this side's CPUs (its ranks inherit them).
    pub fn launched_command(
        &self,
        launcher: &[String],
        mcexec_extra: &[&str],
        program: &Path,
        args: &[String],
    ) -> Command {
        let mut c = Command::new(&launcher[0]);
        c.args(&launcher[1..]);
        match &self.mcexec {
            Some(m) => {
                c.arg(&m.path).args(&m.args).args(mcexec_extra);
                c.envs(m.env.iter().map(|(k, v)| (k, v)));
            }
            None => pin_child(&mut c, &self.cpus),
        }
        c.arg(program).args(args);
        c
    }

    /// Runs a command made by `command` or `launched_command` to completion
    /// within `limit`, as `run` does.
    pub fn run_prepared(&self, cmd: Command, limit: Duration) -> Result<Finished> {
        let shown = show(&cmd);
        run_watched(cmd, limit, true, true, self.health.as_ref())
            .with_context(|| format!("{}: {shown}", self.side.name()))
    }

    /// Runs `program args` to completion within `limit`; an error names the
    /// side, the command and the tail of its stderr when it fails.
    pub fn run(&self, program: &Path, args: &[String], limit: Duration) -> Result<Finished> {
        let cmd = self.command(program, args);
        let shown = show(&cmd);
        let fin = run_watched(cmd, limit, true, true, self.health.as_ref())
            .with_context(|| format!("{}: {shown}", self.side.name()))?;
        Ok(fin)
    }

    /// Wall time of one run of `program args`, output discarded.
    pub fn time_once(&self, program: &Path, args: &[String], limit: Duration) -> Result<Duration> {
        let cmd = self.command(program, args);
        let shown = show(&cmd);
        let fin = run_watched(cmd, limit, false, true, self.health.as_ref())
            .with_context(|| format!("{}: {shown}", self.side.name()))?;
        Ok(fin.wall)
    }
}

/// The command line as a person would type it.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Makes the spawned child run on `cpus` only.
fn pin_child(cmd: &mut Command, cpus: &[usize]) {
    // Built here, in the parent: the child only copies it.
    let mut set = CpuSet::new();
    let bad = cpus.iter().find(|&&c| set.set(c).is_err()).copied();
    // SAFETY: the closure runs in the forked child before exec. It only
    // reads the CpuSet it owns and makes one sched_setaffinity system call,
    // async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            if bad.is_some() {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
        });
    }
}

/// A pidfd for our own, not yet reaped child.
fn pidfd_of(child: &Child) -> Result<OwnedFd> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("pidfd_open");
    }
    // SAFETY: fd is a fresh descriptor returned to us and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> Option<JoinHandle<String>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    })
}

/// Spawns `cmd`, waits for it (killing it on time-out or interrupt), and
/// fails unless it exits with status 0.
pub fn run_command(cmd: Command, limit: Duration, capture: bool) -> Result<Finished> {
    run_watched(cmd, limit, capture, true, None)
}

/// As `run_command`; with `interruptible` false a stop request does not kill
/// the child (for the shutdown that must still run after Ctrl-C).
pub fn run_command_with(
    cmd: Command,
    limit: Duration,
    capture: bool,
    interruptible: bool,
) -> Result<Finished> {
    run_watched(cmd, limit, capture, interruptible, None)
}

fn run_watched(
    mut cmd: Command,
    limit: Duration,
    capture: bool,
    interruptible: bool,
    health: Option<&Health>,
) -> Result<Finished> {
    cmd.stdin(Stdio::null());
    if !interruptible {
        // Its own process group: a Ctrl-C at the terminal does not reach it.
        cmd.process_group(0);
    }
    if capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| anyhow!("cannot start: {e}"))?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let stopped = match watch(&child, start, limit, interruptible, health) {
        Ok(s) => s,
        Err(e) => {
            // Cannot watch it: do not wait blindly either. Not reaped yet,
            // so the pid is still our child's.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            return Err(e);
        }
    };
    let wall = start.elapsed();
    let status: ExitStatus = child.wait().context("waiting for the child")?;
    let stdout = out
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    if let Some(why) = stopped {
        return Err(Killed {
            why,
            stderr_tail: stderr_tail(&stderr),
        }
        .into());
    }
    if !status.success() {
        bail!("{status}{}", stderr_tail(&stderr));
    }
    Ok(Finished {
        stdout,
        stderr,
        wall,
    })
}

/// Waits until the child exits; kills it and says why when the time limit
/// passes, a stop is requested or the health check fails. Does not reap it.
fn watch(
    child: &Child,
    start: Instant,
    limit: Duration,
    interruptible: bool,
    health: Option<&Health>,
) -> Result<Option<String>> {
    const HEALTH_EVERY: Duration = Duration::from_secs(1);
    let pidfd = pidfd_of(child)?;
    let mut last_check = Instant::now();
    loop {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u8)) {
            Ok(n) if n > 0 => return Ok(None),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll on pidfd"),
        }
        let why = if interruptible && interrupt::requested() {
            Some("stopped by a signal to the harness".to_string())
        } else if start.elapsed() >= limit {
            Some(format!("timed out after {limit:?}"))
        } else if let Some(h) = health.filter(|_| last_check.elapsed() >= HEALTH_EVERY) {
            last_check = Instant::now();
            h()
        } else {
            None
        };
        if let Some(why) = why {
            // Not reaped yet, so this pid is still our child.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            return Ok(Some(why));
        }
    }
}

fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(6)..];
    format!(": {}", tail.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a child started by `r` reads as its Cpus_allowed_list line.
    fn allowed_list(r: &Runner) -> Finished {
        r.run(
            Path::new("/bin/sh"),
            &["-c".into(), "grep Cpus_allowed_list /proc/self/status".into()],
            Duration::from_secs(10),
        )
        .unwrap()
    }

    #[test]
    fn native_child_is_pinned() {
        let cpu = nix::sched::sched_getaffinity(Pid::from_raw(0))
            .ok()
            .and_then(|s| (0..CpuSet::count()).find(|&c| s.is_set(c).unwrap_or(false)))
            .expect("at least one usable cpu");
        let r = Runner::linux(cpu);
        let f = allowed_list(&r);
        assert_eq!(
            f.stdout.split_whitespace().nth(1),
            Some(cpu.to_string().as_str()),
            "{}",
            f.stdout
        );
    }

    #[test]
    fn native_child_is_pinned_to_a_set() {
        let allowed = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
        let cpus: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| allowed.is_set(c).unwrap_or(false))
            .take(2)
            .collect();
        let r = Runner::linux_on(&cpus);
        let f = allowed_list(&r);
        let want = match cpus.as_slice() {
            [a] => a.to_string(),
            [a, b] if b == &(a + 1) => format!("{a}-{b}"),
            [a, b] => format!("{a},{b}"),
            _ => unreachable!(),
        };
        assert_eq!(
            f.stdout.split_whitespace().nth(1),
            Some(want.as_str()),
            "{}",
            f.stdout
        );
        let e = Runner::linux_on(&[CpuSet::count()])
            .run(Path::new("/bin/true"), &[], Duration::from_secs(10))
            .unwrap_err();
        assert!(format!("{e:#}").contains("cannot start"), "{e:#}");
    }

    #[test]
    fn failure_names_status_and_stderr() {
        let r = Runner::linux(0);
        let e = r
            .run(
                Path::new("/bin/sh"),
                &["-c".into(), "echo broken >&2; exit 3".into()],
                Duration::from_secs(10),
            )
            .unwrap_err();
        let s = format!("{e:#}");
        assert!(
            s.contains("exit status: 3") && s.contains("broken") && s.contains("Linux"),
            "{s}"
        );
    }

    #[test]
    fn time_limit_kills_child() {
        let r = Runner::linux(0);
        let t = Instant::now();
        let e = r
            .run(
                Path::new("/bin/sleep"),
                &["30".into()],
                Duration::from_millis(300),
            )
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("timed out") && is_killed(&e),
            "{e:#}"
        );
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn failed_health_check_kills_child() {
        let m = Mcexec {
            path: "/bin/sleep".into(),
            args: vec![],
            env: vec![],
        };
        let health: Health = Arc::new(|| Some("the partition is PANIC".to_string()));
        let r = Runner::lwk(0, m, Some(health));
        let t = Instant::now();
        let e = r
            .run(Path::new("30"), &[], Duration::from_secs(60))
            .unwrap_err();
        assert!(is_killed(&e), "{e:#}");
        assert!(format!("{e:#}").contains("the partition is PANIC"), "{e:#}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn lwk_command_is_mcexec_prefix() {
        let m = Mcexec {
            path: "/opt/mck/bin/mcexec".into(),
            args: vec!["-n".into(), "1".into()],
            env: vec![("IHK_RUNTIME_DIR".into(), "/run/x".into())],
        };
        let c = Runner::lwk(1, m, None).command(Path::new("/b/fwq"), &["10".into()]);
        assert_eq!(show(&c), "/opt/mck/bin/mcexec -n 1 /b/fwq 10");
        assert!(c
            .get_envs()
            .any(|(k, v)| k == "IHK_RUNTIME_DIR" && v == Some("/run/x".as_ref())));
    }
}
