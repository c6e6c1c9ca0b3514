//! Shared by the integration tests: a node guard that serializes tests
//! (one partition at a time on this machine), gives each test its own
//! runtime directory, runs the real commands, and always shuts down and
//! releases what the test booted, killing only the ihkd it started.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IHKD: &str = env!("CARGO_BIN_EXE_ihkd");
pub const IHKCONFIG: &str = env!("CARGO_BIN_EXE_ihkconfig");
pub const IHKOSCTL: &str = env!("CARGO_BIN_EXE_ihkosctl");
pub const MCREBOOT: &str = env!("CARGO_BIN_EXE_mcreboot");
pub const MCSTOP: &str = env!("CARGO_BIN_EXE_mcstop-release");

/// `None` (after printing why) when this machine cannot run the test.
pub fn can_run(test: &str) -> bool {
    mck_tests::can_boot_partitions(test)
}

/// Whether a process runs: any of its threads (a zombie whose threads have
/// all exited does not: this machine's init may be slow to reap the
/// daemons it inherits; a zombie leader with threads left still runs and
/// still holds its memory).
pub fn process_alive(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("").to_string();
    !(field("State:").starts_with('Z') && field("Threads:") == "1")
}

/// The LWK image built with this workspace (next to the binaries).
pub fn image() -> PathBuf {
    Path::new(IHKD).with_file_name("mckernel.img")
}

/// Huge page pool sizes of every node and page size (to compare before and
/// after).
pub fn hugepage_counts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(nodes) = fs::read_dir("/sys/devices/system/node") {
        for n in nodes.flatten() {
            let hp = n.path().join("hugepages");
            if let Ok(sizes) = fs::read_dir(&hp) {
                for s in sizes.flatten() {
                    let v = fs::read_to_string(s.path().join("nr_hugepages")).unwrap_or_default();
                    out.push((s.path().display().to_string(), v.trim().to_string()));
                }
            }
        }
    }
    out.sort();
    out
}

/// A test's view of the node: an exclusive lock, a runtime directory, and
/// cleanup of everything started there.
pub struct Node {
    _lock: mck_tests::PartitionLock,
    pub dir: tempfile::TempDir,
    /// Extra environment for every command (IHK_PROC_ROOT, ...).
    pub env: Vec<(String, String)>,
    ihkd: Option<Child>,
    pub hugepages_before: Vec<(String, String)>,
}

impl Node {
    pub fn new() -> Node {
        let lock = mck_tests::partition_lock();
        let dir = tempfile::Builder::new()
            .prefix("ihk-test-")
            .tempdir()
            .expect("tempdir");
        // The sockets must be reachable by other users (the EPERM tests).
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Node {
            _lock: lock,
            dir,
            env: Vec::new(),
            ihkd: None,
            hugepages_before: hugepage_counts(),
        }
    }

    pub fn runtime_dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, exe: &str) -> Command {
        let mut c = Command::new(exe);
        c.env("IHK_RUNTIME_DIR", self.dir.path())
            .env("IHK_ISOLATION", "pin")
            .env("IHKD", IHKD)
            .env("MCKERNEL_IMAGE", image())
            .env_remove("IHK_PROC_ROOT")
            .env_remove("IHK_SYS_ROOT");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Run a command to completion.
    pub fn run(&self, exe: &str, args: &[&str]) -> Output {
        let out = self
            .command(exe)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running a command");
        eprintln!(
            "$ {} {}\n  -> {:?}\n  stdout: {}\n  stderr: {}",
            Path::new(exe).file_name().unwrap().to_string_lossy(),
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
        out
    }

    /// Run a command and require success; returns its stdout.
    pub fn ok(&self, exe: &str, args: &[&str]) -> String {
        let out = self.run(exe, args);
        assert!(out.status.success(), "{exe} {args:?} failed");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    /// Run a command and require failure; returns (exit code, stderr).
    pub fn fails(&self, exe: &str, args: &[&str]) -> (i32, String) {
        let out = self.run(exe, args);
        assert!(
            !out.status.success(),
            "{exe} {args:?} unexpectedly succeeded"
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    pub fn ihkconfig(&self, args: &[&str]) -> String {
        self.ok(IHKCONFIG, &[&["0"], args].concat())
    }
    pub fn ihkosctl(&self, os: u32, args: &[&str]) -> String {
        self.ok(IHKOSCTL, &[&[os.to_string().as_str()], args].concat())
    }

    /// Start `ihkd --foreground` as our child and wait until it serves.
    pub fn start_ihkd(&mut self, isolation: &str) {
        assert!(self.ihkd.is_none());
        let child = self
            .command(IHKD)
            .args(["--foreground", &format!("--isolation={isolation}")])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting ihkd");
        self.ihkd = Some(child);
        self.wait_serving();
    }

    fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let sock = self.dir.path().join("mcd0");
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                return;
            }
            if let Some(c) = self.ihkd.as_ref() {
                // Started by us: if it died, say so now.
                if !process_alive(c.id()) {
                    panic!("ihkd exited during start");
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("ihkd did not start serving {}", sock.display());
    }

    /// SIGKILL the ihkd this test started (a crash).
    pub fn kill_ihkd(&mut self) {
        let mut c = self.ihkd.take().expect("no ihkd of ours");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Pid of whatever ihkd serves our runtime directory.
    pub fn ihkd_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.path().join("ihkd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the runtime directory holds a journal with pending records.
    pub fn journal_pending(&self) -> bool {
        fs::metadata(self.dir.path().join("journal"))
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    }

    /// The node is as the test found it: no ihkd, no socket, no journal,
    /// huge page pools as before.
    pub fn assert_clean(&self) {
        for e in fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(
                name == "ihkd.log",
                "{} left behind in the runtime directory",
                name
            );
        }
        assert_eq!(
            hugepage_counts(),
            self.hugepages_before,
            "huge page pools changed"
        );
    }

    /// Release everything: quit the ihkd serving our directory (ours or one
    /// mcreboot started), replay a crash journal, kill our child if needed.
    pub fn cleanup(&mut self) {
        let sock = self.dir.path().join("mcd0");
        if sock.exists() || self.journal_pending() {
            let out = self.command(MCSTOP).output();
            if let Ok(o) = out {
                if !o.status.success() {
                    eprintln!(
                        "cleanup: mcstop+release: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
        }
        if let Some(mut c) = self.ihkd.take() {
            mck_tests::wait_or_kill(&mut c, Duration::from_secs(15));
            if self.journal_pending() {
                // Killed: a new ihkd replays the journal; then let it go.
                let _ = self.command(MCSTOP).output();
            }
        }
    }

    /// After a clean `mcstop+release`, forget our child (it has exited).
    pub fn reap_ihkd(&mut self) {
        if let Some(mut c) = self.ihkd.take() {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("ihkd did not exit");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cleanup();
    }
}
