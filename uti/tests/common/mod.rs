//! Shared by the integration tests: install the freshly built libuti with
//! `install.sh` into a temporary prefix, compile C programs against it, and
//! run them with a clean UTI/hwloc environment.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A temporary installation of libuti.
pub struct Install {
    /// The prefix (`lib/`, `include/`).
    pub prefix: PathBuf,
}

/// Variables the library reads; removed from every child's environment so
/// the caller's shell cannot change the outcome.
pub const UTI_VARS: &[&str] = &[
    "DISABLE_UTI",
    "UTI_CPU_SET",
    "UTI_FWK_CPU_SET",
    "UTI_LWK_CPU_SET",
    "UTI_LOGLEVEL",
    "UTI_TOPOLOGY_XML",
    "UTI_TOPOLOGY_SYNTHETIC",
    "UTI_COUNTER_FILE",
    "HWLOC_XMLFILE",
    "HWLOC_SYNTHETIC",
    "HWLOC_THISSYSTEM",
];

/// The crate directory (`uti/`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory holding the `libuti.so` cargo built for this test run (the
/// library is compiled as rlib and cdylib in one step, next to the test
/// executable in `deps/`).
fn built_library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps directory").to_path_buf();
    assert!(
        deps.join("libuti.so").is_file(),
        "{} has no libuti.so: cargo should have built the cdylib with the tests",
        deps.display()
    );
    deps
}

/// Installs libuti once per test executable.
pub fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        // Under cargo's per-target scratch directory, one per test
        // executable, made afresh each run: a static is never dropped, so a
        // temporary directory in /tmp would stay behind after every run.
        let exe = std::env::current_exe().expect("test executable path");
        let name = exe.file_name().expect("test executable name").to_string_lossy().into_owned();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uti-install").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the install directory");
        // World-readable, so programs run under another identity can load it.
        for d in [dir.parent().unwrap(), &dir] {
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        }
        let prefix = dir.join("prefix");
        let out = Command::new("sh")
            .arg(crate_dir().join("install.sh"))
            .arg(&prefix)
            .arg(built_library_dir())
            .output()
            .expect("running install.sh");
        assert!(
            out.status.success(),
            "install.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for f in [
            "lib/libuti.so",
            "lib/libuti.so.1",
            "lib/libuti.so.1.0.0",
            "include/uti.h",
        ] {
            assert!(prefix.join(f).exists(), "install.sh did not install {f}");
        }
        Install { prefix }
    })
}

/// Compiles C sources into `out` against the installed header and library
/// with `compiler` (e.g. "cc", "mpicc.openmpi") and extra flags.
pub fn compile(compiler: &str, sources: &[&Path], out: &Path, extra: &[&str]) {
    let inst = install();
    let lib = inst.prefix.join("lib");
    let output = Command::new(compiler)
        .args(["-Wall", "-Wextra", "-Werror", "-O1", "-pthread"])
        .args(extra)
        .arg(format!("-I{}", inst.prefix.join("include").display()))
        .args(sources)
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-luti")
        .output()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(
        output.status.success(),
        "{compiler} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A command with the UTI and hwloc variables cleared.
pub fn clean_command(program: &Path) -> Command {
    let mut c = Command::new(program);
    for v in UTI_VARS {
        c.env_remove(v);
    }
    c
}

/// Output as text (stdout, stderr).
pub fn texts(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Whether this process may use SCHED_FIFO (tried on a child we start).
pub fn fifo_permitted() -> bool {
    Command::new("chrt")
        .args(["-f", "1", "true"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}
