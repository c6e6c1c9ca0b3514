//! Running the IHK tools (`mcreboot`, `mcstop+release`, `ihkosctl`) with
//! the site's environment, a time limit, and their output captured for the
//! message the user or the slurmd log gets.
//!
//! Output goes to an unlinked file rather than a pipe: `mcreboot` starts the
//! `ihkd` daemon, which may keep the inherited descriptors open for its whole
//! life, so "read until end of file" would never end.

use std::ffi::CString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::config::SiteConfig;

/// What a finished command did.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    /// stdout and stderr, interleaved as written, trimmed.
    pub output: String,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// `exit status 1: error: reserving memory ...` for messages.
    pub fn describe(&self) -> String {
        let status = match self.status.code() {
            Some(c) => format!("exit status {c}"),
            None => format!("{}", self.status),
        };
        if self.output.is_empty() {
            status
        } else {
            format!("{status}: {}", self.output.replace('\n', " | "))
        }
    }
}

/// Runs `program args` with `IHK_RUNTIME_DIR` and `IHK_ISOLATION` from the
/// site configuration, as root (the caller's real uid; see below), waiting
/// at most `timeout`. The error names the program and why it did not finish.
pub fn run(
    config: &SiteConfig,
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<Outcome, String> {
    let name = program.display().to_string();
    let mut out = tempfile_in(&config.state_dir)
        .map_err(|e| format!("{name}: cannot create an output file: {e}"))?;
    let err = out.try_clone().map_err(|e| format!("{name}: {e}"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("IHK_RUNTIME_DIR", &config.runtime_dir)
        .env("IHK_ISOLATION", config.isolation.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            out.try_clone().map_err(|e| format!("{name}: {e}"))?,
        ))
        .stderr(Stdio::from(err));
    // In slurmstepd's user_init the effective uid is the job's user while the
    // real uid stays root: become root completely in the child, as the IHK
    // tools expect (a no-op when we already are root).
    if nix::unistd::getuid().is_root() && !nix::unistd::geteuid().is_root() {
        cmd.uid(0).gid(0);
    }
    if let Some(cgroup) = &config.daemon_cgroup {
        let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(|_| format!("daemon_cgroup {} contains a NUL byte", cgroup.display()))?;
        // SAFETY: the closure runs in the forked child before exec and only
        // calls async-signal-safe functions (open, write, close) on memory
        // prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" moves the writing process itself (cgroup v1 and v2).
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                if n == 1 {
                    Ok(())
                } else {
                    Err(e)
                }
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {name}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // Our own child: end it, and say so.
                let _ = child.kill();
                let _ = child.wait();
                let text = read_all(&mut out);
                return Err(format!(
                    "{name} did not finish within {} s and was killed{}",
                    timeout.as_secs(),
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!("; it printed: {}", text.replace('\n', " | "))
                    }
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {name}: {e}")),
        }
    };
    Ok(Outcome {
        status,
        output: read_all(&mut out),
    })
}

fn read_all(f: &mut std::fs::File) -> String {
    let mut s = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_string(&mut s);
    s.trim().to_string()
}

/// An anonymous file in `dir` (created, opened, unlinked).
fn tempfile_in(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = dir.join(format!(".out.{}.{nanos}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> SiteConfig {
        SiteConfig {
            state_dir: dir.to_path_buf(),
            runtime_dir: dir.join("rt"),
            isolation: crate::config::Isolation::Pin,
            ..SiteConfig::default()
        }
    }

    #[test]
    fn captures_output_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let o = run(
            &c,
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                "echo out $IHK_ISOLATION; echo err >&2; exit 3".into(),
            ],
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(!o.success());
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(o.output, "out pin\nerr");
        assert_eq!(o.describe(), "exit status 3: out pin | err");
    }

    #[test]
    fn a_daemon_holding_the_output_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let start = Instant::now();
        // The background sleep keeps stdout open after the shell exits.
        let o = run(
            &c,
            Path::new("/bin/sh"),
            &["-c".into(), "sleep 3 & echo started".into()],
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(o.success());
        assert_eq!(o.output, "started");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn timeout_kills_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let e = run(
            &config(dir.path()),
            Path::new("/bin/sleep"),
            &["30".into()],
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(
            e.contains("did not finish within 0 s and was killed"),
            "{e}"
        );
    }

    #[test]
    fn missing_program() {
        let dir = tempfile::tempdir().unwrap();
        let e = run(
            &config(dir.path()),
            Path::new("/nonexistent/mcreboot"),
            &[],
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.contains("cannot run /nonexistent/mcreboot"), "{e}");
    }
}
