//! Shared by mcexec's integration tests: a partition guard that boots an
//! LWK with the real commands (`ihkd --foreground --isolation=pin` as our
//! child, `mcreboot`), runs programs under the real `mcexec`, and always
//! shuts down and releases (`mcstop+release`) even when the test fails,
//! killing only the ihkd it started. Tests serialize on the same lock file
//! as ihk's integration tests (one partition at a time on this machine).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const MCEXEC: &str = env!("CARGO_BIN_EXE_mcexec");

/// The LWK CPU the tests use (the acceptance runs `mcreboot -c 1`).
pub const CPU: &str = "1";

/// Whether this machine can run partition tests; prints why not.
pub fn can_run(test: &str) -> bool {
    mck_tests::can_boot_partitions(test)
}

/// Directory of the workspace's binaries (ihkd, mcreboot, ...): next to
/// mcexec. `cargo test -p mcexec` alone builds neither another package's
/// binaries nor the LWK (mcexec links only `ihk-client`), so bring them up
/// to date once per test binary (a no-op when they are).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(MCEXEC).parent().unwrap().to_path_buf();
        {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let mut c = Command::new(cargo);
            c.args(["build", "-p", "ihk", "--bins", "--manifest-path"]).arg(&manifest);
            if dir.file_name().is_some_and(|n| n == "release") {
                c.arg("--release");
            }
            // Same target directory as this test binary.
            if let Some(target) = dir.parent() {
                c.env("CARGO_TARGET_DIR", target);
            }
            let st = c.status().expect("running cargo to build the ihk commands");
            assert!(st.success(), "building the ihk commands failed");
        }
        dir
    })
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// One booted partition, torn down on drop.
pub struct Partition {
    _lock: mck_tests::PartitionLock,
    pub dir: tempfile::TempDir,
    ihkd: Option<Child>,
}

impl Partition {
    /// Boot `mcreboot -c 1 -m <mem>` (plus `extra` options) in a fresh
    /// runtime directory.
    pub fn boot(mem: &str, extra: &[&str]) -> Partition {
        Partition::boot_cpus(CPU, mem, extra)
    }

    /// Boot `mcreboot -c <cpus> -m <mem>` (plus `extra`): `0-1` is the
    /// 2-CPU LWK of this 2-CPU machine, whose vCPUs share the CPUs with
    /// Linux in `pin` mode.
    pub fn boot_cpus(cpus: &str, mem: &str, extra: &[&str]) -> Partition {
        let lock = mck_tests::partition_lock();
        let dir = tempfile::Builder::new().prefix("mcexec-test-").tempdir().expect("tempdir");
        // Reachable by the unprivileged user of the ownership test.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut p = Partition { _lock: lock, dir, ihkd: None };
        let child = p
            .command(&bin("ihkd"))
            .args(["--foreground", "--isolation=pin"])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting ihkd");
        p.ihkd = Some(child);
        p.wait_serving();
        let mut args = vec!["-c", cpus, "-m", mem];
        args.extend_from_slice(extra);
        let out = p.run_cmd(&bin("mcreboot"), &args);
        assert!(out.status.success(), "mcreboot failed: {}", String::from_utf8_lossy(&out.stderr));
        p
    }

    fn wait_serving(&self) {
        let sock = self.dir.path().join("mcd0");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("ihkd did not start serving {}", sock.display());
    }

    pub fn runtime_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A command with this partition's environment.
    pub fn command(&self, exe: &Path) -> Command {
        let mut c = Command::new(exe);
        c.env("IHK_RUNTIME_DIR", self.dir.path())
            .env("IHK_ISOLATION", "pin")
            .env("IHKD", bin("ihkd"))
            .env("MCKERNEL_IMAGE", bin("mckernel.img"))
            .env_remove("IHK_PROC_ROOT")
            .env_remove("IHK_SYS_ROOT");
        c
    }

    fn run_cmd(&self, exe: &Path, args: &[&str]) -> Output {
        let out = self.command(exe).args(args).stdin(Stdio::null()).output().expect("running a command");
        log(exe, args, &out);
        out
    }

    /// `mcexec <args>` with stdin from `/dev/null`.
    pub fn mcexec(&self, args: &[&str]) -> Output {
        self.run_cmd(Path::new(MCEXEC), args)
    }

    /// An mcexec command to customise (stdin, env, spawn).
    pub fn mcexec_command(&self, args: &[&str]) -> Command {
        let mut c = self.command(Path::new(MCEXEC));
        c.args(args);
        c
    }

    /// The ihkd serving this partition.
    pub fn ihkd_pid(&self) -> u32 {
        self.ihkd.as_ref().expect("ihkd runs").id()
    }

    /// Lines of ihkd's memory map that contain `needle` (its share
    /// windows appear there as mappings of the shared files).
    pub fn ihkd_maps_with(&self, needle: &str) -> Vec<String> {
        let maps = fs::read_to_string(format!("/proc/{}/maps", self.ihkd_pid())).unwrap_or_default();
        maps.lines().filter(|l| l.contains(needle)).map(String::from).collect()
    }

    pub fn kmsg(&self) -> String {
        let out = self.command(&bin("ihkosctl")).args(["0", "kmsg"]).output().expect("ihkosctl kmsg");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until kmsg contains `needle` (or `timeout` passes).
    pub fn wait_kmsg(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.kmsg().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let out = self.command(&bin("mcstop-release")).stdin(Stdio::null()).output();
        if let Ok(o) = &out {
            if !o.status.success() {
                eprintln!("cleanup: mcstop+release: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
        if let Some(mut c) = self.ihkd.take() {
            mck_tests::wait_or_kill(&mut c, Duration::from_secs(15));
        }
    }
}

pub fn log(exe: &Path, args: &[&str], out: &Output) {
    eprintln!(
        "$ {} {}\n  -> {:?}\n  stdout: {}\n  stderr: {}",
        exe.file_name().unwrap().to_string_lossy(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
}

/// Linux's output of the same command, for comparison.
pub fn linux(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).output().expect("running on Linux")
}

/// Compile a C test program with gcc and `flags`; None (after printing
/// why) when gcc is missing.
pub fn compile(src: &str, flags: &[&str], out_dir: &Path, name: &str) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs").join(src);
    let out = out_dir.join(name);
    let cc = if src.extension().is_some_and(|e| e == "cpp") { "g++" } else { "gcc" };
    match Command::new(cc).arg("-O2").arg("-o").arg(&out).arg(&src).args(flags).status() {
        Ok(s) if s.success() => Some(out),
        Ok(s) => panic!("gcc {flags:?} {} failed: {s}", src.display()),
        Err(e) => {
            mck_tests::cannot_run(name, &format!("{cc} not available ({e})"));
            None
        }
    }
}
