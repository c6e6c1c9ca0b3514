//! Support shared by the partition tests and benchmarks of every crate
//! (a dev-dependency), and home of the cross-component integration tests in
//! `tests/tests/`: whole user sessions through several crates (install tree,
//! `mcreboot`, `mcexec`, `mcstop+release`).

pub mod fuzz;

use std::fs::{File, OpenOptions};
use std::process::Child;
use std::time::{Duration, Instant};

/// Held while a test or benchmark uses a partition: one at a time on this
/// machine, across test binaries and crates.
pub type PartitionLock = nix::fcntl::Flock<File>;

/// Whether a partition test may not skip itself: under CI (`CI=true`) or
/// when asked (`MCK_REQUIRE_KVM=1`), a test that cannot run fails instead,
/// so that a green run cannot hide that nothing ran.
pub fn skips_forbidden() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") || std::env::var("MCK_REQUIRE_KVM").is_ok_and(|v| v == "1")
}

/// `test` cannot run on this machine (`why`): skip it (print why and
/// return false), or fail it when skips are forbidden ([`skips_forbidden`]).
pub fn cannot_run(test: &str, why: &str) -> bool {
    if skips_forbidden() {
        panic!("{test} cannot run here ({why}), and CI=true or MCK_REQUIRE_KVM=1 forbids skipping it");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// The usual check of a partition test: root and `/dev/kvm`.
pub fn can_boot_partitions(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        return cannot_run(test, "needs root (it boots an LWK partition)");
    }
    if !std::path::Path::new("/dev/kvm").exists() {
        return cannot_run(test, "needs /dev/kvm");
    }
    true
}

/// Take the machine-wide partition lock (`$TMPDIR/ihk-integration-tests.lock`),
/// waiting for whoever holds it. With `MCK_PARTITION_TALLY=<file>` (set by
/// `scripts/test.sh`), each taking appends a line to that file, so the run
/// can say how many partition tests ran.
pub fn partition_lock() -> PartitionLock {
    if let Some(tally) = std::env::var_os("MCK_PARTITION_TALLY") {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("?").to_string();
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(tally) {
            let _ = writeln!(f, "{} {test}", std::process::id());
        }
    }
    let path = std::env::temp_dir().join("ihk-integration-tests.lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock the partition lock")
}

/// Wait up to `timeout` for a child we started to exit (it was asked to);
/// kill it if it has not. Returns whether it exited by itself.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Builds `examples/mpi-rs` (rsmpi against Debian's Open MPI,
/// `MPICC=mpicc.openmpi`) into `<target>/mpi-examples` and returns the
/// directory holding `mpi-allreduce` and `mpi-pingpong`. The crate is not a
/// workspace member (it needs an MPI installation), so its users build it
/// on demand; Err says why it could not be built.
pub fn build_mpi_examples() -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("mpi-examples");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("examples/mpi-rs/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env("MPICC", "mpicc.openmpi")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building examples/mpi-rs failed ({}; needs libopenmpi-dev and libclang-dev): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(target.join("release"))
}
