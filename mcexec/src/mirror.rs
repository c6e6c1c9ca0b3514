//! The unified address space, host side (ARCHITECTURE.md §5).
//!
//! At start `mcexec` reserves the whole LWK user range PROT_NONE (so Linux
//! never places anything of ours there). The LWK lists every backed user
//! range in the map table of the process's proxy area under a sequence
//! counter; [`Mirror::ensure`] brings our mappings up to date: each range is
//! mapped at the same virtual address with `mmap(MAP_FIXED|MAP_SHARED)` of
//! the memfd that backs its guest-physical memory, and ranges that left the
//! table go back to PROT_NONE. Mappings that stay the same are never
//! touched, so a proxy thread executing a call on them is not disturbed.
//! A share window's range (`MAP_ENTRY_WINDOW`) is mapped from our own
//! descriptor of its host file instead (`share.rs`): the same pages the
//! guest sees through the window.
//!
//! With `--enable-uti` ([`set_executable`]) every mirror is also
//! executable: a utility thread runs the program's code from it
//! (docs/uti.md).

use std::num::NonZeroUsize;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ihk_abi::offload::{MapEntry, ProxyAreaHeader, MAP_ENTRY_READONLY, MAP_ENTRY_WINDOW, MAP_ENTRY_WRITE, USER_END, USER_START};
use nix::sys::mman::{mmap, mmap_anonymous, MapFlags, ProtFlags};

use crate::guest::GuestMemory;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(
        "cannot reserve the LWK user address range {USER_START:#x}-{USER_END:#x} in mcexec: {0} \
         (is something already mapped there?)"
    )]
    Reserve(nix::Error),
    #[error("cannot mirror LWK memory at {va:#x} (+{len:#x}): {err}")]
    Map { va: u64, len: u64, err: nix::Error },
    #[error("the LWK published an invalid map entry {0:x?}")]
    BadEntry(MapEntry),
    #[error("the LWK's map table is misplaced: {0}")]
    BadTable(String),
    #[error("the LWK's map table stayed mid-update (odd sequence {0}) for {1:?}")]
    Stuck(u64, std::time::Duration),
    #[error("no host file is known for the share window at {0:#x} (+{1:#x})")]
    NoWindow(u64, u64),
    #[error(transparent)]
    Guest(#[from] crate::guest::GuestError),
}

/// How long the LWK may keep its map table mid-update (odd sequence): a
/// rewrite takes microseconds, plus whatever the host's scheduler delays
/// the LWK's CPU by.
pub const UPDATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

static EXECUTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Map mirrors executable from now on (`--enable-uti`; before the first
/// mirror is made).
pub fn set_executable() {
    EXECUTABLE.store(true, Ordering::Relaxed);
}

/// `prot`, plus PROT_EXEC under `--enable-uti`.
fn with_exec(prot: ProtFlags) -> ProtFlags {
    if EXECUTABLE.load(Ordering::Relaxed) {
        prot | ProtFlags::PROT_EXEC
    } else {
        prot
    }
}

/// Reserve `[USER_START, USER_END)` PROT_NONE. Call before anything that
/// could make Linux map into it (before threads, before the guest window).
pub fn reserve_user_range() -> Result<(), MirrorError> {
    let len = (USER_END - USER_START) as usize;
    // SAFETY: MAP_FIXED_NOREPLACE fails instead of replacing anything that
    // is mapped there, so no existing mapping of ours is disturbed.
    let p = unsafe {
        mmap_anonymous(
            Some(NonZeroUsize::new(USER_START as usize).unwrap()),
            NonZeroUsize::new(len).unwrap(),
            ProtFlags::PROT_NONE,
            MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE | MapFlags::MAP_FIXED_NOREPLACE,
        )
    }
    .map_err(MirrorError::Reserve)?;
    if p.as_ptr() as u64 != USER_START {
        // Kernels before 4.17 ignore MAP_FIXED_NOREPLACE and may place it
        // elsewhere: that is not a reservation.
        // SAFETY: unmapping the mapping just made.
        let _ = unsafe { nix::sys::mman::munmap(p, len) };
        return Err(MirrorError::Reserve(nix::Error::EEXIST));
    }
    Ok(())
}

/// Replace everything in the user range by the bare reservation (a fork
/// child drops the mirrors of its parent's memory).
pub fn reset_user_range() -> Result<(), MirrorError> {
    unmirror(USER_START, USER_END - USER_START)
}

/// Put `[va, va+len)` of the user range back to the reserved state.
fn unmirror(va: u64, len: u64) -> Result<(), MirrorError> {
    // SAFETY: the range lies in the user range, which only the mirror uses.
    unsafe {
        mmap_anonymous(
            Some(NonZeroUsize::new(va as usize).unwrap()),
            NonZeroUsize::new(len as usize).unwrap(),
            ProtFlags::PROT_NONE,
            MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE | MapFlags::MAP_FIXED,
        )
    }
    .map(|_| ())
    .map_err(|err| MirrorError::Map { va, len, err })
}

struct Applied {
    seq: u64,
    entries: Vec<MapEntry>,
}

/// The mirror of one LWK process's user memory.
pub struct Mirror {
    guest: Arc<GuestMemory>,
    header: *const ProxyAreaHeader,
    entries: *const MapEntry,
    capacity: u32,
    granule: u64,
    applied_seq: AtomicU64,
    applied: Mutex<Applied>,
}

// SAFETY: the raw pointers point into the guest window owned by `guest`
// (kept alive by the Arc); access is by atomics and volatile copies.
unsafe impl Send for Mirror {}
unsafe impl Sync for Mirror {}

impl Mirror {
    /// `header_gpa`: the process's proxy area.
    pub fn new(guest: Arc<GuestMemory>, header_gpa: u64, granule: u64) -> Result<Mirror, MirrorError> {
        // SAFETY: the LWK wrote a ProxyAreaHeader there before RUNNING and
        // keeps it until the proxy is gone (after we exit).
        let header: &ProxyAreaHeader = unsafe { guest.get(header_gpa)? };
        let entries_gpa = header_gpa + header.map_offset as u64;
        let capacity = header.map_capacity;
        let entries = guest.ptr(entries_gpa, capacity as u64 * std::mem::size_of::<MapEntry>() as u64)?;
        // The LWK wrote the offset: a misaligned table would make every
        // read of an entry undefined behaviour (a panic in a debug build).
        // Found by mcexec/tests/fuzz.rs.
        if (entries as usize) % std::mem::align_of::<MapEntry>() != 0 {
            return Err(MirrorError::BadTable(format!("entries at offset {:#x} are misaligned", header.map_offset)));
        }
        let header = header as *const ProxyAreaHeader;
        Ok(Mirror {
            guest,
            header,
            entries: entries as *const MapEntry,
            capacity,
            granule,
            applied_seq: AtomicU64::new(0),
            applied: Mutex::new(Applied { seq: 0, entries: Vec::new() }),
        })
    }

    fn header(&self) -> &ProxyAreaHeader {
        // SAFETY: see `new`.
        unsafe { &*self.header }
    }

    /// The LWK process's pending signals as the LWK published them for
    /// its signalfds (`sigfd`).
    pub fn sig_pending(&self) -> u64 {
        self.header().sig_pending.load(Ordering::Acquire)
    }

    /// A consistent copy of the LWK's table and its (even) sequence; an
    /// error when the LWK leaves the sequence odd for [`UPDATE_TIMEOUT`]
    /// (a broken LWK: the proxy thread would spin for ever).
    fn snapshot(&self) -> Result<(u64, Vec<MapEntry>), MirrorError> {
        let h = self.header();
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        loop {
            let s1 = h.map_seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                spins = spins.wrapping_add(1);
                if spins % 1024 == 0 {
                    if start.elapsed() > UPDATE_TIMEOUT {
                        return Err(MirrorError::Stuck(s1, UPDATE_TIMEOUT));
                    }
                    std::thread::yield_now();
                }
                std::hint::spin_loop();
                continue;
            }
            let n = h.map_count.load(Ordering::Acquire).min(self.capacity) as usize;
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                // SAFETY: i < capacity; a torn read is detected by the
                // sequence check below and retried.
                v.push(unsafe { std::ptr::read_volatile(self.entries.add(i)) });
            }
            fence(Ordering::Acquire);
            if h.map_seq.load(Ordering::Relaxed) == s1 {
                return Ok((s1, v));
            }
        }
    }

    fn validate(&self, entries: &[MapEntry]) -> Result<(), MirrorError> {
        let g = self.granule;
        let mut prev_end = USER_START;
        for e in entries {
            let window = e.flags & MAP_ENTRY_WINDOW != 0;
            let a = if window { 4096 } else { g };
            let ok = e.len > 0
                && e.va % a == 0
                && e.len % a == 0
                && e.gpa % a == 0
                && e.va >= prev_end
                && e.va.checked_add(e.len).is_some_and(|end| end <= USER_END);
            if !ok {
                return Err(MirrorError::BadEntry(*e));
            }
            if window {
                crate::share::lookup(e.gpa, e.len).ok_or(MirrorError::NoWindow(e.gpa, e.len))?;
            } else {
                self.guest.split(e.gpa, e.len)?;
            }
            prev_end = e.va + e.len;
        }
        Ok(())
    }

    /// Make our mappings reflect at least sequence `needed`.
    pub fn ensure(&self, needed: u64) -> Result<(), MirrorError> {
        if self.applied_seq.load(Ordering::Acquire) >= needed && needed != 0 {
            return Ok(());
        }
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if applied.seq >= needed && needed != 0 {
            return Ok(());
        }
        let (seq, new) = self.snapshot()?;
        if seq == applied.seq && seq != 0 {
            return Ok(());
        }
        self.validate(&new)?;
        for (va, len, gpa, flags) in plan_maps(&applied.entries, &new) {
            if flags & MAP_ENTRY_WINDOW != 0 {
                let (src, off, writable) = crate::share::lookup(gpa, len).ok_or(MirrorError::NoWindow(gpa, len))?;
                let prot = with_exec(if writable && flags & MAP_ENTRY_WRITE != 0 {
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
                } else {
                    ProtFlags::PROT_READ
                });
                match src {
                    // SAFETY: as below; `fd` is our own descriptor of the file.
                    crate::share::Source::File(fd) => unsafe {
                        mmap(
                            Some(NonZeroUsize::new(va as usize).unwrap()),
                            NonZeroUsize::new(len as usize).unwrap(),
                            prot,
                            MapFlags::MAP_SHARED | MapFlags::MAP_FIXED,
                            std::os::fd::BorrowedFd::borrow_raw(fd),
                            off as i64,
                        )
                    }
                    .map(|_| ())
                    .map_err(|err| MirrorError::Map { va, len, err })?,
                    crate::share::Source::Sysv(host) => {
                        // A new mapping of the same shared pages (old size 0).
                        // SAFETY: the target lies in the reserved user range;
                        // the source is our attachment of the segment.
                        let r = unsafe {
                            libc::mremap(
                                (host + off as usize) as *mut libc::c_void,
                                0,
                                len as usize,
                                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                                va as usize as *mut libc::c_void,
                            )
                        };
                        if r == libc::MAP_FAILED {
                            return Err(MirrorError::Map { va, len, err: nix::Error::last() });
                        }
                    }
                }
                continue;
            }
            for (g, l) in self.guest.split(gpa, len)? {
                let at = va + (g - gpa);
                let (fd, off, _) = self.guest.backing(g, l)?;
                // SAFETY: `at..at+l` lies in the reserved user range that
                // only the mirror uses; MAP_FIXED replaces our own reservation
                // or an older mirror of the same range.
                unsafe {
                    mmap(
                        Some(NonZeroUsize::new(at as usize).unwrap()),
                        NonZeroUsize::new(l as usize).unwrap(),
                        with_exec(if flags & MAP_ENTRY_READONLY != 0 {
                            ProtFlags::PROT_READ
                        } else {
                            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
                        }),
                        MapFlags::MAP_SHARED | MapFlags::MAP_FIXED,
                        fd,
                        off as i64,
                    )
                }
                .map_err(|err| MirrorError::Map { va: at, len: l, err })?;
            }
        }
        for (va, len) in plan_unmaps(&applied.entries, &new) {
            unmirror(va, len)?;
        }
        let windows: Vec<(u64, u64)> =
            new.iter().filter(|e| e.flags & MAP_ENTRY_WINDOW != 0).map(|e| (e.gpa, e.len)).collect();
        crate::share::retain_listed(&windows);
        applied.entries = new;
        applied.seq = seq;
        self.applied_seq.store(seq, Ordering::Release);
        Ok(())
    }

    /// The share windows (gpa, len) of the applied map table.
    pub fn windows(&self) -> Vec<(u64, u64)> {
        let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied.entries.iter().filter(|e| e.flags & MAP_ENTRY_WINDOW != 0).map(|e| (e.gpa, e.len)).collect()
    }

    /// The guest memory the mirror maps.
    pub fn guest(&self) -> &Arc<GuestMemory> {
        &self.guest
    }

    /// The sequence currently applied.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq.load(Ordering::Acquire)
    }
}

/// `[a, b)` minus the union of `holes` (each `(start, end)`), in order
/// (`ihk_abi::range::subtract`, which the LWK shares, on sorted holes).
fn subtract(a: u64, b: u64, holes: &mut [(u64, u64)]) -> Vec<(u64, u64)> {
    holes.sort_unstable();
    ihk_abi::range::subtract(a, b, holes).collect()
}

/// Pieces `(va, len, gpa, flags)` of `new` not already mapped identically
/// by `old`.
fn plan_maps(old: &[MapEntry], new: &[MapEntry]) -> Vec<(u64, u64, u64, u64)> {
    let mut out = Vec::new();
    for n in new {
        let delta = n.va.wrapping_sub(n.gpa);
        let mut same: Vec<(u64, u64)> = old
            .iter()
            .filter(|o| o.va.wrapping_sub(o.gpa) == delta && o.flags == n.flags)
            .map(|o| (o.va, o.va + o.len))
            .collect();
        for (s, e) in subtract(n.va, n.va + n.len, &mut same) {
            out.push((s, e - s, s.wrapping_sub(delta), n.flags));
        }
    }
    out
}

/// Ranges `(va, len)` of `old` that no entry of `new` covers.
fn plan_unmaps(old: &[MapEntry], new: &[MapEntry]) -> Vec<(u64, u64)> {
    let mut covered: Vec<(u64, u64)> = new.iter().map(|n| (n.va, n.va + n.len)).collect();
    let mut out = Vec::new();
    for o in old {
        for (s, e) in subtract(o.va, o.va + o.len, &mut covered) {
            out.push((s, e - s));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(va: u64, len: u64, gpa: u64) -> MapEntry {
        MapEntry { va, len, gpa, flags: 0 }
    }

    #[test]
    fn interval_subtraction() {
        assert_eq!(subtract(0, 10, &mut []), vec![(0, 10)]);
        assert_eq!(subtract(0, 10, &mut [(2, 4), (6, 12)]), vec![(0, 2), (4, 6)]);
        assert_eq!(subtract(5, 10, &mut [(0, 20)]), vec![]);
        assert_eq!(subtract(5, 10, &mut [(7, 8), (0, 6)]), vec![(6, 7), (8, 10)]);
    }

    #[test]
    fn unchanged_ranges_are_left_alone() {
        let old = [e(0x40_0000, 0x20_0000, 0x100_0000)];
        // Extended by one block with the same translation: only the new block maps.
        let new = [e(0x40_0000, 0x40_0000, 0x100_0000)];
        assert_eq!(plan_maps(&old, &new), vec![(0x60_0000, 0x20_0000, 0x120_0000, 0)]);
        assert!(plan_unmaps(&old, &new).is_empty());
        // Same va, different backing: remapped, nothing unmapped.
        let moved = [e(0x40_0000, 0x20_0000, 0x300_0000)];
        assert_eq!(plan_maps(&old, &moved), vec![(0x40_0000, 0x20_0000, 0x300_0000, 0)]);
        assert!(plan_unmaps(&old, &moved).is_empty());
        // Shrunk: the tail goes back to PROT_NONE.
        let shrunk = [e(0x40_0000, 0x20_0000, 0x100_0000)];
        assert!(plan_maps(&new, &shrunk).is_empty());
        assert_eq!(plan_unmaps(&new, &shrunk), vec![(0x60_0000, 0x20_0000)]);
    }
}
