//! The node's record of its LWK partition, kept in the site's `state_dir`:
//! `lock` (flock'ed by whoever boots, registers a step, or cleans up) and
//! `partition.json` (which job owns the partition, what it was booted with,
//! the node's state before the boot, the steps using it). The record is what
//! makes booting once per job race-free and the epilogue idempotent: it
//! survives slurmstepd and ihkd crashes because it is on disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::baseline::Baseline;
use crate::plan::PartitionSpec;

/// Where a partition is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `mcreboot` was started; if the lock is free and this is still the
    /// phase, the booting step died and the epilogue must clean up.
    Booting,
    Running,
    /// A cleanup left something behind (listed in `problems`).
    Dirty,
}

/// A step that uses the partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepRef {
    pub step_id: u32,
    /// The slurmstepd of the step; a dead one no longer holds the partition.
    pub stepd_pid: i32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeRecord {
    pub job_id: u32,
    pub phase: Phase,
    pub spec: PartitionSpec,
    pub baseline: Baseline,
    pub steps: Vec<StepRef>,
    /// How many times this job booted a partition on the node.
    pub boots: u32,
    #[serde(default)]
    pub problems: Vec<String>,
}

impl NodeRecord {
    /// Steps whose slurmstepd still exists.
    pub fn live_steps(&self) -> Vec<StepRef> {
        self.steps
            .iter()
            .filter(|s| pid_alive(s.stepd_pid))
            .cloned()
            .collect()
    }
}

pub fn pid_alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use the McKernel state directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the McKernel state record {path} is unreadable ({message}); remove it after checking the node")]
    Corrupt { path: PathBuf, message: String },
    #[error("another step or epilogue of this node has held {path} for more than {secs} s")]
    LockTimeout { path: PathBuf, secs: u64 },
}

/// The state directory; holding a [`NodeLock`] is required to change it.
pub struct StateDir {
    dir: PathBuf,
}

/// The node lock: released when dropped (also when the holder dies).
pub struct NodeLock {
    _lock: Flock<File>,
}

impl StateDir {
    pub fn new(dir: &Path) -> Self {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
        let path = path.to_path_buf();
        move |source| StateError::Io {
            path: path.clone(),
            source,
        }
    }

    pub fn record_path(&self) -> PathBuf {
        self.dir.join("partition.json")
    }

    /// Takes the node lock, waiting at most `timeout`.
    pub fn lock(&self, timeout: Duration) -> Result<NodeLock, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let path = self.dir.join("lock");
        // O_CLOEXEC (std's default): a daemon started while we hold the lock
        // (ihkd, by mcreboot) must not inherit it.
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(self.io(&path))?;
        let deadline = Instant::now() + timeout;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(NodeLock { _lock: lock }),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) | Err((f, nix::errno::Errno::EINTR)) => {
                    if Instant::now() >= deadline {
                        return Err(StateError::LockTimeout {
                            path,
                            secs: timeout.as_secs(),
                        });
                    }
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, e)) => {
                    return Err(StateError::Io {
                        path,
                        source: e.into(),
                    })
                }
            }
        }
    }

    pub fn load(&self, _lock: &NodeLock) -> Result<Option<NodeRecord>, StateError> {
        let path = self.record_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::Io { path, source: e }),
        }
    }

    /// Atomically replaces the record (write, fsync, rename).
    pub fn store(&self, _lock: &NodeLock, record: &NodeRecord) -> Result<(), StateError> {
        let path = self.record_path();
        let tmp = self.dir.join("partition.json.tmp");
        let text = serde_json::to_string_pretty(record).expect("the record serializes");
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(self.io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(self.io(&tmp))?;
        f.sync_all().map_err(self.io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(self.io(&path))?;
        Ok(())
    }

    pub fn remove(&self, _lock: &NodeLock) -> Result<(), StateError> {
        let path = self.record_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io { path, source: e }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::{CpuSet, MemList};

    fn record() -> NodeRecord {
        NodeRecord {
            job_id: 3,
            phase: Phase::Running,
            spec: PartitionSpec {
                cpus: CpuSet::parse("1").unwrap(),
                mem: MemList::parse("512M@0").unwrap(),
                ikc_map: None,
                kargs: String::new(),
                uid: 0,
                gid: 0,
            },
            baseline: Baseline::default(),
            steps: vec![StepRef {
                step_id: 0,
                stepd_pid: std::process::id() as i32,
            }],
            boots: 1,
            problems: vec![],
        }
    }

    #[test]
    fn store_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(&dir.path().join("s"));
        let lock = state.lock(Duration::from_secs(1)).unwrap();
        assert_eq!(state.load(&lock).unwrap(), None);
        state.store(&lock, &record()).unwrap();
        let back = state.load(&lock).unwrap().unwrap();
        assert_eq!(back, record());
        assert_eq!(back.live_steps().len(), 1);
        state.remove(&lock).unwrap();
        state.remove(&lock).unwrap();
        assert_eq!(state.load(&lock).unwrap(), None);
    }

    #[test]
    fn lock_excludes_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let held = state.lock(Duration::from_secs(1)).unwrap();
        // flock locks belong to the open file description: a second open in
        // the same process conflicts, as another process would.
        let e = state.lock(Duration::from_millis(200)).err().unwrap();
        assert!(matches!(e, StateError::LockTimeout { .. }), "{e}");
        drop(held);
        state.lock(Duration::from_millis(200)).unwrap();
    }

    #[test]
    fn corrupt_record_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let lock = state.lock(Duration::from_secs(1)).unwrap();
        std::fs::write(state.record_path(), "{").unwrap();
        let e = state.load(&lock).unwrap_err().to_string();
        assert!(e.contains("unreadable"), "{e}");
    }

    #[test]
    fn dead_steps_do_not_count() {
        let mut r = record();
        // Pid 0x7ffffff0 is beyond pid_max on Linux.
        r.steps.push(StepRef {
            step_id: 1,
            stepd_pid: 0x7fff_fff0,
        });
        assert_eq!(r.live_steps(), vec![r.steps[0].clone()]);
    }
}
