//! Support shared by the partition tests and benchmarks of every crate
//! (a dev-dependency), and home of the cross-component integration tests in
//! `tests/tests/`: whole user sessions through several crates (install tree,
//! `mcreboot`, `mcexec`, `mcstop+release`).

use std::fs::{File, OpenOptions};
use std::process::Child;
use std::time::{Duration, Instant};

/// Held while a test or benchmark uses a partition: one at a time on this
/// machine, across test binaries and crates.
pub type PartitionLock = nix::fcntl::Flock<File>;

/// Take the machine-wide partition lock (`$TMPDIR/ihk-integration-tests.lock`),
/// waiting for whoever holds it.
pub fn partition_lock() -> PartitionLock {
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
