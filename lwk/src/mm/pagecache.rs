//! Shared read-only file granules (docs/memory.md): a mirror granule of a
//! private file mapping that is wholly one read-only mapping of one file is
//! filled once and shared by every process that maps the same file range,
//! instead of each process holding its own copy (library code and read-only
//! data of MPI ranks). Keyed by the file (device, inode, size, modification
//! time) and the file offset of the granule's first byte; counted per
//! backing that uses the block, freed with the last.
//!
//! The address space (`aspace`) keeps a shared block only while nothing can
//! write it: its granule is covered by non-writable VMAs of that file range;
//! anything else (mprotect to writable, a partial munmap, MADV_DONTNEED)
//! first gives the process a private copy. mcexec mirrors it read-only.

use alloc::collections::BTreeMap;

/// Which bytes a block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: u64,
    /// File offset of the block's first byte.
    pub off: u64,
}

struct Block {
    pa: u64,
    len: u64,
    refs: u32,
}

struct Cache {
    by_key: BTreeMap<Key, Block>,
    /// Block address to its key.
    by_pa: BTreeMap<u64, Key>,
}

static CACHE: spin::Mutex<Cache> = spin::Mutex::new(Cache { by_key: BTreeMap::new(), by_pa: BTreeMap::new() });

/// The block of `key` (`len` bytes), with one more reference: an existing
/// one, or a new one made by `make` (which returns its guest-physical
/// address, filled, or None). The cache lock is not held while `make` runs;
/// if another process made the same block meanwhile, its block is used and
/// ours given back through `undo`.
pub fn get_or_make(key: Key, len: u64, make: impl FnOnce() -> Option<u64>, undo: impl FnOnce(u64)) -> Option<u64> {
    if let Some(b) = CACHE.lock().by_key.get_mut(&key) {
        if b.len == len {
            b.refs += 1;
            return Some(b.pa);
        }
        return None;
    }
    let pa = make()?;
    let mut c = CACHE.lock();
    if let Some(b) = c.by_key.get_mut(&key) {
        if b.len == len {
            b.refs += 1;
            let other = b.pa;
            drop(c);
            undo(pa);
            return Some(other);
        }
        drop(c);
        undo(pa);
        return None;
    }
    c.by_key.insert(key, Block { pa, len, refs: 1 });
    c.by_pa.insert(pa, key);
    Some(pa)
}

/// One more reference to the block at `pa` (a fork child's backing).
pub fn get(pa: u64) {
    let mut c = CACHE.lock();
    if let Some(k) = c.by_pa.get(&pa).copied() {
        if let Some(b) = c.by_key.get_mut(&k) {
            b.refs += 1;
        }
    }
}

/// A backing no longer uses the block at `pa`: returns (pa, len) to free
/// when it was the last.
pub fn put(pa: u64) -> Option<(u64, u64)> {
    let mut c = CACHE.lock();
    let k = c.by_pa.get(&pa).copied()?;
    let b = c.by_key.get_mut(&k)?;
    if b.refs > 1 {
        b.refs -= 1;
        return None;
    }
    let len = b.len;
    c.by_key.remove(&k);
    c.by_pa.remove(&pa);
    Some((pa, len))
}
