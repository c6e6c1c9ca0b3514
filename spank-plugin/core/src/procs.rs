//! Finding and ending a job's leftover `mcexec` processes.
//!
//! Slurm ends a step's tasks itself, but not when their slurmstepd was killed
//! (the tasks are orphaned) or when a proxy ignores the signal. A process is
//! the job's `mcexec` when its executable is the site's `mcexec` and its
//! environment (as exec'ed by the task hook) carries `SLURM_JOB_ID=<job>`.
//! Nothing else is ever signalled.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Pids of the job's `mcexec` processes under `proc_root` (normally /proc).
pub fn job_mcexecs(proc_root: &Path, mcexec: &Path, job_id: u32) -> Vec<i32> {
    let want_exe = std::fs::canonicalize(mcexec).unwrap_or_else(|_| mcexec.to_path_buf());
    let needle = format!("SLURM_JOB_ID={job_id}");
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let dir = proc_root.join(pid.to_string());
            let exe: Option<PathBuf> = std::fs::read_link(dir.join("exe")).ok();
            // A replaced binary shows as "<path> (deleted)".
            let exe_matches = exe.is_some_and(|e| {
                e == want_exe
                    || e.to_string_lossy().trim_end_matches(" (deleted)")
                        == want_exe.to_string_lossy()
            });
            exe_matches
                && std::fs::read(dir.join("environ"))
                    .map(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
                    .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// SIGTERM, `grace` to exit (mcexec passes it to the LWK process), then
/// SIGKILL and up to 5 s more. Returns the pids that still exist.
pub fn terminate(pids: &[i32], grace: Duration) -> Vec<i32> {
    let alive =
        |pids: &[i32]| -> Vec<i32> { pids.iter().copied().filter(|p| exists(*p)).collect() };
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let left = wait_gone(alive(pids), grace);
    for pid in &left {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    wait_gone(left, Duration::from_secs(5))
}

fn exists(pid: i32) -> bool {
    // A zombie whose threads have all exited is gone (only its parent's
    // wait remains); a zombie leader whose proxy threads still exit still
    // maps the partition's memory (ihk's `wait_exit` says more).
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    !(field("State:").starts_with('Z') && field("Threads:") == "1")
}

fn wait_gone(mut pids: Vec<i32>, limit: Duration) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    loop {
        pids.retain(|p| exists(*p));
        if pids.is_empty() || Instant::now() >= deadline {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A copy of `sleep` stands for mcexec: only processes running that
    /// exact file with the job's id in their environment are found.
    #[test]
    fn finds_and_ends_only_the_jobs_processes() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("mcexec");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let mut ours = Command::new(&fake)
            .arg("60")
            .env("SLURM_JOB_ID", "4242")
            .spawn()
            .unwrap();
        let mut other_job = Command::new(&fake)
            .arg("60")
            .env("SLURM_JOB_ID", "42420")
            .spawn()
            .unwrap();
        let mut other_exe = Command::new("/bin/sleep")
            .arg("60")
            .env("SLURM_JOB_ID", "4242")
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));

        let found = job_mcexecs(Path::new("/proc"), &fake, 4242);
        assert_eq!(found, vec![ours.id() as i32]);

        // terminate() cannot reap our child; reap it from a thread so that
        // the zombie disappears as a real orphan's would.
        let reaper = std::thread::spawn(move || ours.wait().unwrap());
        let left = terminate(&found, Duration::from_secs(2));
        assert!(left.is_empty(), "{left:?}");
        assert!(!reaper.join().unwrap().success());

        for c in [&mut other_job, &mut other_exe] {
            assert!(
                c.try_wait().unwrap().is_none(),
                "an unrelated process was signalled"
            );
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}
