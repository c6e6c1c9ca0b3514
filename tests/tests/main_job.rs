//! The README's main job, run as a new user would: `scripts/main-job.sh`
//! installs the workspace into a prefix, boots a partition on CPU 1 with
//! 512 MiB, runs Debian's unmodified busybox through `mcexec` (comparing
//! with Linux), and gives the node back with `mcstop+release`.
//! Runs in its own IHK_RUNTIME_DIR with `pin` isolation; the script's trap
//! and the guard below release the partition even when a step fails.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn can_run() -> bool {
    mck_tests::can_boot_partitions("main_job")
}

/// Always runs `mcstop+release` on the test's runtime directory.
struct Release<'a> {
    prefix: &'a Path,
    runtime: &'a Path,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let stop = self.prefix.join("sbin/mcstop+release");
        if stop.exists() {
            let _ = Command::new(stop).env("IHK_RUNTIME_DIR", self.runtime).status();
        }
    }
}

#[test]
fn readme_main_job_boots_runs_busybox_and_releases() {
    if !can_run() {
        return;
    }
    let _lock = mck_tests::partition_lock();
    let prefix = tempfile::Builder::new().prefix("mck-prefix-").tempdir().unwrap();
    let runtime = tempfile::Builder::new().prefix("ihk-test-").tempdir().unwrap();
    let _guard = Release { prefix: prefix.path(), runtime: runtime.path() };
    let out = Command::new(repo_root().join("scripts/main-job.sh"))
        .current_dir(repo_root())
        .env("MCK_PREFIX", prefix.path())
        .env("MCK_INSTALL_PROFILE", "debug")
        .env("IHK_RUNTIME_DIR", runtime.path())
        .env("IHK_ISOLATION", "pin")
        .output()
        .expect("run scripts/main-job.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "main-job.sh failed: {:?}", out.status);
    assert!(stdout.contains("RUNNING"), "status was not RUNNING");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        stdout.lines().any(|l| l.trim() == host.trim()),
        "mcexec busybox hostname did not print {host:?}"
    );
    assert!(stdout.contains("hello from the LWK"));
    assert!(stdout.trim_end().ends_with("main-job: OK"));
    // mcstop+release ran: no ihkd serves the runtime directory any more.
    assert!(!runtime.path().join("mcd0").exists(), "mcd0 socket left behind");
}
