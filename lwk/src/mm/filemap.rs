//! File-backed mappings of a process: which user ranges came from which
//! host file (for `/proc/self/maps`), which private ones are filled from
//! their file on first touch, and the MAP_SHARED ones (without a share
//! window) whose bytes go back to the file on msync, munmap and exit.
//!
//! The bytes of a private mapping live in LWK memory like anonymous memory.
//! A private mapping of a regular file is filled on demand (docs/memory.md):
//! when the address space backs one of its pages (a fault, a neighbour in
//! the same mirror granule, a kernel access), the page is read from the
//! file through the proxy's kept mapping of it (`kept_file`, a handle; one
//! per file and process, shared by every range of that file). A MAP_SHARED mapping of
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
    /// Private mapping filled on first touch: the handle of the proxy's
    /// kept mapping of the file (`OffloadCall::KeepFile`).
    pub kept_file: Option<i32>,
    /// File size at mmap: bytes past it read as zero.
    pub size: u64,
    /// File modification time at mmap (which bytes a shared read-only
    /// granule holds, `pagecache`).
    pub mtime_ns: u64,
}

/// A piece to fill from a file: `[va, va+len)` from kept file `fd` at `off`; `len`
/// stops at the file's end (the rest of the range stays zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    pub va: u64,
    pub len: u64,
    pub fd: i32,
    pub off: u64,
}

/// A piece to write back: `[va, va+len)` to `fd` at `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writeback {
    pub va: u64,
    pub len: u64,
    pub fd: i32,
    pub off: u64,
}

/// A host descriptor or kept file no range uses any more: `kept` files are
/// dropped with `OffloadCall::DropFile`, descriptors closed with `close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub fd: i32,
    pub kept: bool,
}

#[derive(Default)]
pub struct FileMaps {
    map: BTreeMap<u64, FileMap>,
    /// Host descriptors no range uses any more, to close.
    orphans: Vec<Orphan>,
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

    /// The pieces inside `[start, end)` filled from a file on first touch.
    pub fn fills_in(&self, start: u64, end: u64) -> Vec<Fill> {
        self.overlapping(start, end)
            .into_iter()
            .filter_map(|k| {
                let m = &self.map[&k];
                let fd = m.kept_file?;
                let (s, e) = (k.max(start), m.end.min(end));
                let off = m.off + (s - k);
                let len = (e - s).min(m.size.saturating_sub(off));
                (s < e && len > 0).then_some(Fill { va: s, len, fd, off })
            })
            .collect()
    }

    /// The kept file of (`dev`, `ino`) of `size` bytes if a range uses one
    /// (a file that changed size is kept again, to cover its new size).
    pub fn kept_file_for(&self, dev: u64, ino: u64, size: u64) -> Option<i32> {
        self.map.values().find(|m| m.kept_file.is_some() && m.dev == dev && m.ino == ino && m.size == size).and_then(|m| m.kept_file)
    }

    /// Whether the file ranges at `at - 1` and `at` are one: both absent,
    /// or the same file from contiguous offsets (two VMAs there may merge).
    pub fn continues(&self, at: u64) -> bool {
        match (self.at(at - 1), self.at(at)) {
            (None, None) => true,
            (Some((xs, x)), Some((ys, y))) => {
                x.dev == y.dev && x.ino == y.ino && x.kept_file == y.kept_file && x.shared_fd == y.shared_fd && x.off + (at - xs) == y.off + (at - ys)
            }
            _ => false,
        }
    }

    /// The range ending at `old_end` now ends at `new_end` (mremap grew
    /// its mapping in place: the file continues there).
    pub fn grow(&mut self, old_end: u64, new_end: u64) {
        if let Some((_, m)) = self.map.range_mut(..old_end).next_back() {
            if m.end == old_end {
                m.end = new_end;
            }
        }
    }

    /// A copy for a fork child, whose proxy inherits the kept files;
    /// shared copies are not written back by the child (its proxy's
    /// duplicates are not its own to close).
    pub fn fork(&self) -> FileMaps {
        let map = self.map.iter().map(|(&k, m)| (k, FileMap { shared_fd: None, ..m.clone() })).collect();
        FileMaps { map, orphans: Vec::new() }
    }

    /// Forget `[start, end)` (munmap), splitting ranges at its edges.
    pub fn remove(&mut self, start: u64, end: u64) {
        let mut gone: Vec<Orphan> = Vec::new();
        for k in self.overlapping(start, end) {
            let m = self.map.remove(&k).unwrap();
            if k < start {
                self.map.insert(k, FileMap { end: start, ..m.clone() });
            }
            if m.end > end {
                self.map.insert(end, FileMap { off: m.off + (end - k), ..m.clone() });
            }
            gone.extend(m.shared_fd.map(|fd| Orphan { fd, kept: false }));
            gone.extend(m.kept_file.map(|fd| Orphan { fd, kept: true }));
        }
        for o in gone {
            if !self.uses(&o) && !self.orphans.contains(&o) {
                self.orphans.push(o);
            }
        }
    }

    /// Forget everything (execve, exit); the descriptors become orphans.
    pub fn clear(&mut self) {
        self.remove(0, u64::MAX);
    }

    /// Whether a range uses descriptor `o`.
    fn uses(&self, o: &Orphan) -> bool {
        self.map.values().any(|m| if o.kept { m.kept_file == Some(o.fd) } else { m.shared_fd == Some(o.fd) })
    }

    /// Kept file `fd` (just kept for a mapping that then failed) is to be
    /// dropped unless a range uses it.
    pub fn release_kept(&mut self, fd: i32) {
        let o = Orphan { fd, kept: true };
        if !self.uses(&o) && !self.orphans.contains(&o) {
            self.orphans.push(o);
        }
    }

    /// Descriptors to close on the host (a descriptor a new range took up
    /// again since it became an orphan stays).
    pub fn take_orphans(&mut self) -> Vec<Orphan> {
        let all = core::mem::take(&mut self.orphans);
        all.into_iter().filter(|o| !self.uses(o)).collect()
    }
}
