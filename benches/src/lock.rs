//! The partition lock every partition test of the workspace takes
//! (`mck_tests::partition_lock()` in `tests/lib.rs`): an exclusive flock on
//! `<temp dir>/ihk-integration-tests.lock`. Only one partition exists on the
//! machine at a time, so the harness holds it for as long as it has
//! partitions. Unlike the tests' version, waiting for it reports who waits
//! and ends on Ctrl-C.

use crate::interrupt;
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Held while alive; the flock goes with the file when dropped.
#[derive(Debug)]
pub struct PartitionLock {
    _file: Flock<File>,
}

/// The lock file the tests use.
pub fn path() -> PathBuf {
    std::env::temp_dir().join("ihk-integration-tests.lock")
}

/// Waits for the workspace's partition lock.
pub fn acquire() -> Result<PartitionLock> {
    acquire_at(&path())
}

/// Waits for an exclusive flock on `path`, polling so that a stop request
/// (Ctrl-C) ends the wait.
pub fn acquire_at(path: &Path) -> Result<PartitionLock> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening the partition lock {}", path.display()))?;
    let start = Instant::now();
    let mut said = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => {
                if said {
                    eprintln!(
                        "mck-bench: got the partition lock after {:.0} s",
                        start.elapsed().as_secs_f64()
                    );
                }
                return Ok(PartitionLock { _file: l });
            }
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => {
                if !said {
                    eprintln!(
                        "mck-bench: another partition user (a test?) holds {}; waiting for it",
                        path.display()
                    );
                    said = true;
                }
                if interrupt::requested() {
                    bail!("stopped by a signal while waiting for the partition lock");
                }
                std::thread::sleep(Duration::from_millis(200));
                file = f;
            }
            Err((_, e)) => {
                return Err(e).with_context(|| format!("flock {}", path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn same_path_as_the_tests() {
        assert_eq!(
            path(),
            std::env::temp_dir().join("ihk-integration-tests.lock")
        );
    }

    #[test]
    fn second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.lock");
        let first = acquire_at(&p).unwrap();
        let (tx, rx) = mpsc::channel();
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            let l = acquire_at(&p2).unwrap();
            tx.send(()).unwrap();
            l
        });
        assert!(rx.recv_timeout(Duration::from_millis(600)).is_err());
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the lock is free after the first holder dropped it");
        let second = t.join().unwrap();
        // Held again: a third party cannot take it without waiting.
        let f = File::options().write(true).open(&p).unwrap();
        assert!(Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err());
        drop(second);
    }
}
