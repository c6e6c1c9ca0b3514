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

/// Wait until process `pid` has exited (it is not our child: poll /proc).
pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let path = PathBuf::from(format!("/proc/{pid}"));
    loop {
        let gone = match std::fs::read_to_string(path.join("stat")) {
            Err(_) => true,
            // A zombie has exited; its parent will reap it.
            Ok(s) => {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next())
                    == Some("Z")
            }
        };
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
