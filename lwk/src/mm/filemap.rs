//! File-backed mappings of a process: which user ranges came from which
//! host file (for `/proc/self/maps`), and the MAP_SHARED ones whose bytes
//! go back to the file on msync, munmap and exit.
//!
//! The bytes of a mapping live in LWK memory like anonymous memory (read
//! through the proxy at mmap time: a private copy). A MAP_SHARED mapping of
//! a writable descriptor keeps its own duplicate of the host descriptor
//! (the program may close its own), and is written back with offloaded
//! `pwrite64` from the mapping, which the proxy sees through the mirror.
//! Not shared with other processes' mappings of the same file (no page
//! cache here): coherence between processes holds only after msync/munmap.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// One file-backed range.
#[derive(Clone, Debug)]
pub struct FileMap {
    pub end: u64,
    /// File offset of the range's first byte.
    pub off: u64,
    pub dev: u64,
    pub ino: u64,
    pub path: String,
    /// MAP_SHARED (shown as such in /proc/self/maps).
    pub shared: bool,
    /// MAP_SHARED with PROT_WRITE of a writable descriptor: our duplicate
    /// of it on the host, for write-back.
    pub shared_fd: Option<i32>,
}

/// A piece to write back: `[va, va+len)` to `fd` at `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writeback {
    pub va: u64,
    pub len: u64,
    pub fd: i32,
    pub off: u64,
}

#[derive(Default)]
pub struct FileMaps {
    map: BTreeMap<u64, FileMap>,
    /// Host descriptors no range uses any more, to close.
    orphans: Vec<i32>,
}

impl FileMaps {
    pub const fn new() -> FileMaps {
        FileMaps { map: BTreeMap::new(), orphans: Vec::new() }
    }

    /// Record `[start, m.end)` (the range was unmapped before).
    pub fn insert(&mut self, start: u64, m: FileMap) {
        self.remove(start, m.end);
        self.map.insert(start, m);
    }

    /// The file range containing `addr`.
    pub fn at(&self, addr: u64) -> Option<(u64, &FileMap)> {
        let (&s, m) = self.map.range(..=addr).next_back()?;
        (addr < m.end).then_some((s, m))
    }

    fn overlapping(&self, start: u64, end: u64) -> Vec<u64> {
        let mut keys: Vec<u64> = Vec::new();
        if let Some((&s, m)) = self.map.range(..start).next_back() {
            if m.end > start {
                keys.push(s);
            }
        }
        keys.extend(self.map.range(start..end).map(|(&k, _)| k));
        keys
    }

    /// The shared pieces inside `[start, end)`.
    pub fn shared_in(&self, start: u64, end: u64) -> Vec<Writeback> {
        self.overlapping(start, end)
            .into_iter()
            .filter_map(|k| {
                let m = &self.map[&k];
                let fd = m.shared_fd?;
                let (s, e) = (k.max(start), m.end.min(end));
                (s < e).then_some(Writeback { va: s, len: e - s, fd, off: m.off + (s - k) })
            })
            .collect()
    }

    /// Forget `[start, end)` (munmap), splitting ranges at its edges.
    pub fn remove(&mut self, start: u64, end: u64) {
        let mut gone: Vec<i32> = Vec::new();
        for k in self.overlapping(start, end) {
            let m = self.map.remove(&k).unwrap();
            if k < start {
                self.map.insert(k, FileMap { end: start, ..m.clone() });
            }
            if m.end > end {
                self.map.insert(end, FileMap { off: m.off + (end - k), ..m.clone() });
            }
            if let Some(fd) = m.shared_fd {
                gone.push(fd);
            }
        }
        for fd in gone {
            if !self.map.values().any(|m| m.shared_fd == Some(fd)) && !self.orphans.contains(&fd) {
                self.orphans.push(fd);
            }
        }
    }

    /// Forget everything (execve, exit); the descriptors become orphans.
    pub fn clear(&mut self) {
        self.remove(0, u64::MAX);
    }

    /// Descriptors to close on the host.
    pub fn take_orphans(&mut self) -> Vec<i32> {
        core::mem::take(&mut self.orphans)
    }
}
