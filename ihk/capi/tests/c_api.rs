//! The C API as a job scheduler uses it: `ihk/install.sh` installs the
//! build into a fresh prefix, `tests/c/ihklib_test.c` is compiled against
//! the installed `ihklib.h` and `libihk.so`, and runs the whole sequence
//! (reserve, create, assign, load, boot, freeze/thaw, rusage, dumps,
//! shutdown, release, and the `*_str` functions) against an ihkd started
//! here; then gdb opens the dumps with the LWK image, and mcstop+release
//! must leave the node clean.
//!
//! Needs root, /dev/kvm, a C compiler and gdb (skips with a message
//! otherwise). Serialized with the ihk tests on
//! `$TMPDIR/ihk-integration-tests.lock`; the guard stops what it started
//! even when a check fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Files the install needs from the cargo profile directory.
const ARTIFACTS: &[&str] = &[
    "ihkd",
    "ihkconfig",
    "ihkosctl",
    "ihkmond",
    "mcreboot",
    "mcstop-release",
    "mckernel.img",
    "libihk.so",
];

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn can_run(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        "needs root"
    } else if !Path::new("/dev/kvm").exists() {
        "needs /dev/kvm"
    } else if !have("cc") {
        "needs a C compiler (apt-get install gcc)"
    } else if !have("gdb") {
        "needs gdb (apt-get install gdb)"
    } else {
        return true;
    };
    mck_tests::cannot_run(test, why)
}

/// The cargo profile directory (target/<profile>) of this test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Bring the ihk binaries and the LWK image up to date (a `cargo test -p
/// libihk` alone builds neither: libihk links only `ihk-client`; a no-op
/// when they are).
fn ensure_built(dir: &Path) {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-p", "ihk", "--bins", "-p", "libihk"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let st = cmd.status().expect("running cargo build");
    assert!(st.success(), "cargo build -p ihk -p libihk failed");
    for f in ARTIFACTS {
        assert!(
            dir.join(f).is_file(),
            "{} was not built",
            dir.join(f).display()
        );
    }
}

fn show(what: &str, out: &Output) {
    eprintln!(
        "$ {what}\n  -> {:?}\n  stdout: {}\n  stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
}

/// The node while the test runs: the shared test lock, a runtime
/// directory, our ihkd; `Drop` releases everything and stops ihkd.
struct Node {
    _lock: mck_tests::PartitionLock,
    runtime: tempfile::TempDir,
    prefix: PathBuf,
    ihkd: Option<Child>,
}

impl Node {
    fn new(prefix: &Path) -> Node {
        let lock = mck_tests::partition_lock();
        let runtime = tempfile::Builder::new()
            .prefix("ihk-capi-")
            .tempdir()
            .unwrap();
        // The unprivileged part of the C test must reach the sockets.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(runtime.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Node {
            _lock: lock,
            runtime,
            prefix: prefix.to_path_buf(),
            ihkd: None,
        }
    }

    fn command(&self, exe: &Path) -> Command {
        let mut c = Command::new(exe);
        c.env("IHK_RUNTIME_DIR", self.runtime.path())
            .env("IHK_ISOLATION", "pin")
            .env_remove("IHK_PROC_ROOT")
            .env_remove("IHK_SYS_ROOT")
            .stdin(Stdio::null());
        c
    }

    fn sbin(&self, name: &str) -> PathBuf {
        self.prefix.join("sbin").join(name)
    }

    /// The installed ihkd, in the foreground as our child, until it serves.
    fn start_ihkd(&mut self) {
        let child = self
            .command(&self.sbin("ihkd"))
            .args(["--foreground", "--isolation=pin"])
            .spawn()
            .expect("starting ihkd");
        self.ihkd = Some(child);
        let sock = self.runtime.path().join("mcd0");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "ihkd did not start serving");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) -> Output {
        let out = self
            .command(&self.sbin("mcstop+release"))
            .output()
            .expect("running mcstop+release");
        if let Some(mut c) = self.ihkd.take() {
            mck_tests::wait_or_kill(&mut c, Duration::from_secs(15));
        }
        out
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.ihkd.is_some() {
            let out = self.stop();
            show("mcstop+release (cleanup)", &out);
        }
    }
}

#[test]
fn c_program_runs_the_whole_sequence_against_the_installed_library() {
    if !can_run("c_program_runs_the_whole_sequence_against_the_installed_library") {
        return;
    }
    let build = profile_dir();
    ensure_built(&build);
    let work = tempfile::tempdir().unwrap();
    let prefix = work.path().join("prefix");

    // Install as an administrator would.
    let install = Path::new(env!("CARGO_MANIFEST_DIR")).join("../install.sh");
    let out = Command::new("sh")
        .arg(&install)
        .arg(&prefix)
        .arg(&build)
        .output()
        .unwrap();
    show("ihk/install.sh", &out);
    assert!(out.status.success());
    for f in [
        "include/ihklib.h",
        "lib/libihk.so",
        "sbin/ihkmond",
        "sbin/ihkd",
    ] {
        assert!(prefix.join(f).is_file(), "{f} installed");
    }

    // Compile the scheduler's program against the installed files only.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/ihklib_test.c");
    let exe = work.path().join("ihklib_test");
    let out = Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(prefix.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(prefix.join("lib"))
        .arg("-lihk")
        .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
        .output()
        .unwrap();
    show("cc ihklib_test.c -lihk", &out);
    assert!(
        out.status.success(),
        "the C program compiles against ihklib.h"
    );

    let mut node = Node::new(&prefix);
    node.start_ihkd();
    let dumps = work.path().join("dumps");
    fs::create_dir(&dumps).unwrap();
    let image = prefix.join("lib/mckernel/mckernel.img");
    let cpu = "1";
    let out = node
        .command(&exe)
        .arg(&image)
        .arg(cpu)
        .arg(&dumps)
        .output()
        .unwrap();
    show("ihklib_test", &out);
    assert!(out.status.success(), "every libihk check passed");

    // The dumps open in gdb with the image: registers in the kernel.
    for level in ["24", "0"] {
        let core = dumps.join(format!("mcdump.{level}"));
        let out = Command::new("gdb")
            .args(["-nx", "-batch", "-ex", "info registers rip rsp"])
            .arg(&image)
            .arg(&core)
            .output()
            .unwrap();
        show(
            &format!("gdb -batch -ex 'info registers' mckernel.img mcdump.{level}"),
            &out,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("rip") && text.contains("0xffffffff8"),
            "gdb shows a kernel rip for level {level}"
        );
    }

    let out = node.stop();
    show("mcstop+release", &out);
    assert!(out.status.success(), "the node is clean");
    let left: Vec<String> = fs::read_dir(node.runtime.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "ihkd.log")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
