//! The node-wide count of utility threads per CPU, shared by every process
//! of a user, so EXCLUSIVE_CPU / CPU_INTENSIVE threads of different
//! processes (MPI ranks) do not pile onto one CPU.
//!
//! Storage: a small file, by default `/dev/shm/uti-<euid>.cpus` (else
//! `$XDG_RUNTIME_DIR/uti.cpus`; `UTI_COUNTER_FILE` overrides both), mode
//! 0600, refused if another user owns it. It holds a header and an array of
//! slots, one per counted thread: `{in use, cpu, pid, tid, process start
//! time, thread start time}`. Every access holds `flock(LOCK_EX)` on the file
//! (released by the kernel if the holder dies) and an in-process mutex
//! (flock does not exclude threads sharing one descriptor).
//!
//! Robustness: a slot counts only while its thread lives. The thread frees
//! its slot when it exits (a thread-local guard, see [`crate::spawn`](mod@crate::spawn));
//! slots of crashed processes or vanished threads are recognised by their
//! pid/tid no longer existing with the recorded start time (so a reused pid
//! does not count) and are reclaimed by the next access. Between the
//! creator's claim and the new thread's first instructions, a slot has
//! tid 0 and is owned by the creating process.
//!
//! If the file cannot be used, counting falls back to a process-private
//! memfd (same code, but other processes are not seen), with a warning.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::log;

/// `UTI_COUNTER_FILE`.
pub const UTI_COUNTER_FILE: &str = "UTI_COUNTER_FILE";

const MAGIC: [u8; 8] = *b"UTICPU01";
const HEADER_LEN: u64 = 32;
const SLOT_LEN: u64 = 32;
/// Upper bound on simultaneously counted threads on a node.
pub const MAX_SLOTS: u64 = 65536;

/// One counted thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Slot {
    used: bool,
    cpu: u32,
    pid: i32,
    /// 0 while the thread is being created.
    tid: i32,
    pid_start: u64,
    tid_start: u64,
}

impl Slot {
    fn encode(&self) -> [u8; SLOT_LEN as usize] {
        let mut b = [0u8; SLOT_LEN as usize];
        b[0..4].copy_from_slice(&u32::from(self.used).to_le_bytes());
        b[4..8].copy_from_slice(&self.cpu.to_le_bytes());
        b[8..12].copy_from_slice(&self.pid.to_le_bytes());
        b[12..16].copy_from_slice(&self.tid.to_le_bytes());
        b[16..24].copy_from_slice(&self.pid_start.to_le_bytes());
        b[24..32].copy_from_slice(&self.tid_start.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Slot {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Slot {
            used: u32_at(0) != 0,
            cpu: u32_at(4),
            pid: u32_at(8) as i32,
            tid: u32_at(12) as i32,
            pid_start: u64_at(16),
            tid_start: u64_at(24),
        }
    }

    /// Whether the process (and, once known, the thread) still exists.
    fn alive(&self) -> bool {
        if process_start(self.pid, None) != Some(self.pid_start) {
            return false;
        }
        self.tid == 0 || process_start(self.pid, Some(self.tid)) == Some(self.tid_start)
    }
}

/// Start time (clock ticks after boot, field 22 of `stat`) of a process or
/// of one of its threads; `None` if it does not exist.
fn process_start(pid: i32, tid: Option<i32>) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let path = match tid {
        Some(t) => format!("/proc/{pid}/task/{t}/stat"),
        None => format!("/proc/{pid}/stat"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces and parentheses; the
    // fields after the last ')' start with field 3.
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

fn getpid() -> i32 {
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// The shared usage table.
#[derive(Debug)]
pub struct Registry {
    file: Mutex<File>,
    /// The file's path (None for the process-local table), to recreate it
    /// if someone removes it.
    path: Option<PathBuf>,
    /// Where the table lives (for log lines).
    pub location: String,
    /// Whether other processes share it.
    pub shared: bool,
}

/// The default location of the counter file for this user.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(UTI_COUNTER_FILE).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    // SAFETY: geteuid has no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if Path::new("/dev/shm").is_dir() {
        return Some(PathBuf::from(format!("/dev/shm/uti-{euid}.cpus")));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|p| !p.is_empty())
        .map(|d| PathBuf::from(d).join("uti.cpus"))
}

/// A thread's place in the table; frees it when dropped.
#[derive(Debug)]
pub struct Claim {
    registry: Arc<Registry>,
    index: u64,
    slot: Slot,
}

impl Claim {
    /// The CPU the claim counts against.
    pub fn cpu(&self) -> usize {
        self.slot.cpu as usize
    }

    /// Binds the claim to the calling thread (called first thing in the
    /// new thread), so it stays counted exactly as long as the thread lives.
    pub fn adopt_current_thread(&mut self) -> Result<(), Error> {
        let tid = gettid();
        let tid_start = process_start(self.slot.pid, Some(tid))
            .ok_or_else(|| Error::os("reading the new thread's start time", libc::ESRCH))?;
        let mut updated = self.slot;
        updated.tid = tid;
        updated.tid_start = tid_start;
        let (index, old) = (self.index, self.slot);
        self.registry.locked(|f| {
            if read_slot(f, index)? == old {
                write_slot(f, index, &updated)?;
            }
            Ok(())
        })?;
        self.slot = updated;
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let (index, mine) = (self.index, self.slot);
        let r = self.registry.locked(|f| {
            if read_slot(f, index)? == mine {
                write_slot(f, index, &Slot::default())?;
            }
            Ok(())
        });
        if let Err(e) = r {
            log::warning!(
                "releasing CPU {} in {}: {e}",
                mine.cpu,
                self.registry.location
            );
        }
    }
}

fn read_slot(f: &File, index: u64) -> Result<Slot, Error> {
    let mut b = [0u8; SLOT_LEN as usize];
    f.read_exact_at(&mut b, HEADER_LEN + index * SLOT_LEN)
        .map_err(|source| Error::Os {
            what: "reading the UTI counter file".into(),
            source,
        })?;
    Ok(Slot::decode(&b))
}

fn write_slot(f: &File, index: u64, s: &Slot) -> Result<(), Error> {
    f.write_all_at(&s.encode(), HEADER_LEN + index * SLOT_LEN)
        .map_err(|source| Error::Os {
            what: "writing the UTI counter file".into(),
            source,
        })
}

fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&(SLOT_LEN as u32).to_le_bytes());
    h
}

/// Holds `flock(LOCK_EX)` on a descriptor until dropped.
struct FlockGuard<'a>(&'a File);

impl<'a> FlockGuard<'a> {
    fn lock(f: &'a File) -> Result<Self, Error> {
        loop {
            // SAFETY: the descriptor is owned by `f`, which outlives the guard.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FlockGuard(f));
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::Os {
                    what: "locking the UTI counter file".into(),
                    source: e,
                });
            }
        }
    }
}

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `lock`; unlocking a held lock cannot fail on a valid fd.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Opens the counter file, refusing one this user does not own alone.
fn open_file(path: &Path) -> Result<File, Error> {
    let what = |w: &str| format!("{w} UTI counter file {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| Error::Os {
            what: what("opening"),
            source,
        })?;
    let meta = file.metadata().map_err(|source| Error::Os {
        what: what("inspecting"),
        source,
    })?;
    // SAFETY: geteuid has no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid || meta.mode() & 0o022 != 0 || !meta.is_file() {
        return Err(Error::os(
            format!(
                "{} (owner uid {}, mode {:o}; expected a regular file owned by uid {euid}, not writable by others)",
                what("refusing"),
                meta.uid(),
                meta.mode() & 0o7777
            ),
            libc::EPERM,
        ));
    }
    Ok(file)
}

impl Registry {
    /// Opens (creating if needed) the counter file at `path`.
    pub fn open(path: &Path) -> Result<Arc<Registry>, Error> {
        let reg = Registry {
            file: Mutex::new(open_file(path)?),
            path: Some(path.to_path_buf()),
            location: path.display().to_string(),
            shared: true,
        };
        reg.locked(|_| Ok(()))?;
        Ok(Arc::new(reg))
    }

    /// A table private to this process (fallback when no file is usable).
    pub fn process_local() -> Result<Arc<Registry>, Error> {
        // SAFETY: the name is a valid NUL-terminated string; the returned
        // descriptor is new and owned by nobody else, so `File` may own it.
        let file = unsafe {
            let fd = libc::memfd_create(c"uti-cpus".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return Err(Error::last_os("memfd_create for the UTI counter"));
            }
            File::from_raw_fd(fd)
        };
        let reg = Registry {
            file: Mutex::new(file),
            path: None,
            location: "process-local table".into(),
            shared: false,
        };
        reg.locked(|_| Ok(()))?;
        Ok(Arc::new(reg))
    }

    /// The default table: the per-user file, or a process-local one (with a
    /// warning) if the file cannot be used.
    pub fn open_default() -> Result<Arc<Registry>, Error> {
        match default_path() {
            Some(p) => match Registry::open(&p) {
                Ok(r) => return Ok(r),
                Err(e) => log::warning!("{e}; utility threads of other processes will not be counted"),
            },
            None => log::warning!(
                "no /dev/shm, XDG_RUNTIME_DIR or {UTI_COUNTER_FILE}; utility threads of other processes will not be counted"
            ),
        }
        Registry::process_local()
    }

    /// Runs `f` with the file locked and its header valid.
    fn locked<R>(&self, f: impl FnOnce(&File) -> Result<R, Error>) -> Result<R, Error> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = &self.path {
            // Removed (e.g. by a cleanup of /dev/shm): processes opening the
            // path from now on would not see our entries; use a new file.
            if file.metadata().map(|m| m.nlink() == 0).unwrap_or(false) {
                log::warning!("{} was removed; recreating it", p.display());
                *file = open_file(p)?;
            }
        }
        let _flock = FlockGuard::lock(&file)?;
        let len = file
            .metadata()
            .map_err(|source| Error::Os {
                what: "inspecting the UTI counter file".into(),
                source,
            })?
            .len();
        let mut h = [0u8; HEADER_LEN as usize];
        let valid = len >= HEADER_LEN
            && (len - HEADER_LEN) % SLOT_LEN == 0
            && file.read_exact_at(&mut h, 0).is_ok()
            && h == header();
        if !valid {
            if len != 0 {
                log::warning!("{}: unknown format, starting a new table", self.location);
            }
            let io = |source| Error::Os {
                what: "initializing the UTI counter file".into(),
                source,
            };
            file.set_len(0).map_err(io)?;
            file.write_all_at(&header(), 0).map_err(io)?;
        }
        f(&file)
    }

    fn slot_count(f: &File) -> Result<u64, Error> {
        let len = f
            .metadata()
            .map_err(|source| Error::Os {
                what: "inspecting the UTI counter file".into(),
                source,
            })?
            .len();
        Ok((len - HEADER_LEN) / SLOT_LEN)
    }

    /// Live slots, reclaiming dead ones. Returns (index, slot) pairs.
    fn live_slots(f: &File) -> Result<Vec<(u64, Slot)>, Error> {
        let n = Self::slot_count(f)?;
        let mut buf = vec![0u8; (n * SLOT_LEN) as usize];
        f.read_exact_at(&mut buf, HEADER_LEN)
            .map_err(|source| Error::Os {
                what: "reading the UTI counter file".into(),
                source,
            })?;
        let mut live = Vec::new();
        for i in 0..n {
            let s = Slot::decode(&buf[(i * SLOT_LEN) as usize..((i + 1) * SLOT_LEN) as usize]);
            if !s.used {
                continue;
            }
            if s.alive() {
                live.push((i, s));
            } else {
                write_slot(f, i, &Slot::default())?;
            }
        }
        Ok(live)
    }

    /// Utility threads currently counted per CPU (CPUs with none are absent).
    pub fn usage(&self) -> Result<BTreeMap<usize, usize>, Error> {
        self.locked(|f| Ok(count(&Self::live_slots(f)?)))
    }

    /// Atomically (with respect to every process using the table) chooses a
    /// CPU with `choose`, given the current per-CPU counts, and counts one
    /// more thread on it. `choose` returning `None` claims nothing.
    pub fn claim(
        self: &Arc<Self>,
        choose: impl FnOnce(&BTreeMap<usize, usize>) -> Option<usize>,
    ) -> Result<Option<Claim>, Error> {
        let pid = getpid();
        let pid_start = process_start(pid, None)
            .ok_or_else(|| Error::os("reading this process's start time", libc::ESRCH))?;
        self.locked(|f| {
            let live = Self::live_slots(f)?;
            let Some(cpu) = choose(&count(&live)) else {
                return Ok(None);
            };
            let n = Self::slot_count(f)?;
            let used: std::collections::BTreeSet<u64> = live.iter().map(|(i, _)| *i).collect();
            let index = (0..n).find(|i| !used.contains(i)).unwrap_or(n);
            if index >= MAX_SLOTS {
                return Err(Error::os(
                    format!(
                        "{}: {MAX_SLOTS} utility threads already counted",
                        self.location
                    ),
                    libc::ENOSPC,
                ));
            }
            let slot = Slot {
                used: true,
                cpu: u32::try_from(cpu).unwrap_or(u32::MAX),
                pid,
                tid: 0,
                pid_start,
                tid_start: 0,
            };
            write_slot(f, index, &slot)?;
            Ok(Some(Claim {
                registry: Arc::clone(self),
                index,
                slot,
            }))
        })
    }
}

impl Registry {
    /// Slots marked in use, without the liveness check (tests only: shows
    /// whether a thread released its slot itself).
    #[cfg(test)]
    pub(crate) fn raw_used_slots(&self) -> usize {
        self.locked(|f| {
            let n = Self::slot_count(f)?;
            let mut used = 0;
            for i in 0..n {
                used += usize::from(read_slot(f, i)?.used);
            }
            Ok(used)
        })
        .unwrap()
    }
}

fn count(live: &[(u64, Slot)]) -> BTreeMap<usize, usize> {
    let mut m = BTreeMap::new();
    for (_, s) in live {
        *m.entry(s.cpu as usize).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn least(m: &BTreeMap<usize, usize>, cpus: &[usize]) -> Option<usize> {
        cpus.iter()
            .copied()
            .min_by_key(|c| (m.get(c).copied().unwrap_or(0), *c))
    }

    #[test]
    fn claims_spread_and_release() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(&dir.path().join("c")).unwrap();
        let a = r.claim(|m| least(m, &[0, 1, 2])).unwrap().unwrap();
        let b = r.claim(|m| least(m, &[0, 1, 2])).unwrap().unwrap();
        let c = r.claim(|m| least(m, &[0, 1, 2])).unwrap().unwrap();
        assert_eq!((a.cpu(), b.cpu(), c.cpu()), (0, 1, 2));
        let d = r.claim(|m| least(m, &[0, 1, 2])).unwrap().unwrap();
        assert_eq!(d.cpu(), 0);
        assert_eq!(r.usage().unwrap(), BTreeMap::from([(0, 2), (1, 1), (2, 1)]));
        drop(b);
        let e = r.claim(|m| least(m, &[0, 1, 2])).unwrap().unwrap();
        assert_eq!(e.cpu(), 1);
        drop((a, c, d, e));
        assert!(r.usage().unwrap().is_empty());
        assert!(r.claim(|_| None).unwrap().is_none());
    }

    #[test]
    fn two_openers_share_counts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        let r1 = Registry::open(&p).unwrap();
        let r2 = Registry::open(&p).unwrap();
        let _a = r1.claim(|m| least(m, &[4, 5])).unwrap().unwrap();
        let b = r2.claim(|m| least(m, &[4, 5])).unwrap().unwrap();
        assert_eq!(b.cpu(), 5);
        assert_eq!(r1.usage().unwrap(), BTreeMap::from([(4, 1), (5, 1)]));
        // The file is removed: the next access recreates it, and a later
        // opener shares the new one.
        std::fs::remove_file(&p).unwrap();
        let c = r1.claim(|m| least(m, &[4, 5])).unwrap().unwrap();
        assert_eq!(c.cpu(), 4);
        assert!(p.exists());
        let r3 = Registry::open(&p).unwrap();
        assert_eq!(r3.usage().unwrap(), BTreeMap::from([(4, 1)]));
    }

    #[test]
    fn slots_of_dead_processes_and_threads_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        let r = Registry::open(&p).unwrap();
        // A process that has exited: its pid no longer has its start time.
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let dead_pid = child.id() as i32;
        child.wait().unwrap();
        let me = getpid();
        let my_start = process_start(me, None).unwrap();
        let stale = [
            Slot {
                used: true,
                cpu: 3,
                pid: dead_pid,
                tid: 0,
                pid_start: 1,
                tid_start: 0,
            },
            // Our pid but a start time that is not ours (a reused pid).
            Slot {
                used: true,
                cpu: 3,
                pid: me,
                tid: 0,
                pid_start: my_start + 1,
                tid_start: 0,
            },
            // Our process, a thread id that does not exist.
            Slot {
                used: true,
                cpu: 3,
                pid: me,
                tid: i32::MAX,
                pid_start: my_start,
                tid_start: 5,
            },
        ];
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        for (i, s) in stale.iter().enumerate() {
            f.write_all_at(&s.encode(), HEADER_LEN + i as u64 * SLOT_LEN)
                .unwrap();
        }
        drop(f);
        assert!(r.usage().unwrap().is_empty());
        // Reclaimed slots are reused rather than appended.
        let c = r.claim(|_| Some(3)).unwrap().unwrap();
        assert_eq!(c.index, 0);
    }

    #[test]
    fn adopted_claims_live_with_their_thread() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(&dir.path().join("c")).unwrap();
        let claim = r.claim(|_| Some(7)).unwrap().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let mut claim = claim;
            claim.adopt_current_thread().unwrap();
            tx.send(()).unwrap();
            done_rx.recv().unwrap();
            // Leak the claim: the thread exits without releasing it, as if
            // its destructor never ran. Liveness must still drop it.
            std::mem::forget(claim);
        });
        rx.recv().unwrap();
        assert_eq!(r.usage().unwrap(), BTreeMap::from([(7, 1)]));
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(r.usage().unwrap().is_empty());
    }

    #[test]
    fn foreign_or_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        std::fs::write(&p, b"not a table").unwrap();
        let r = Registry::open(&p).unwrap();
        assert!(r.usage().unwrap().is_empty());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), HEADER_LEN);
        let q = dir.path().join("open");
        std::fs::write(&q, b"").unwrap();
        std::fs::set_permissions(&q, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        let e = Registry::open(&q).unwrap_err();
        assert!(e.to_string().contains("refusing"), "{e}");
        let l = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(Registry::open(&l).is_err());
        let local = Registry::process_local().unwrap();
        assert!(!local.shared);
        assert_eq!(local.claim(|_| Some(1)).unwrap().unwrap().cpu(), 1);
    }
}
