//! The VMA set of an address space (`aspace`): VMAs by start address, the
//! lookups and splits on it, free-range search, and the page-range
//! arithmetic (`align_up`, `align_down`, `subtract`). Pure bookkeeping (no
//! page tables, no memory), so it is unit-tested on the host
//! (`lwk/hosttest`).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use ihk_abi::offload::{MMAP_TOP, USER_START};

use super::pagetable::{Perm, LARGE};
use super::phys::PAGE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaKind {
    Anon,
    Heap,
    Stack,
    Image,
    /// A piece of a share window (`window`): mapped onto a host file's
    /// pages, never backed by the process's own memory. Its 2 MiB mirror
    /// granules hold nothing else.
    Shared,
    /// The vDSO's data page and image (`elf::vdso`).
    Vdso,
}

#[derive(Clone, Copy, Debug)]
pub struct Vma {
    pub end: u64,
    pub perm: Perm,
    pub kind: VmaKind,
    /// Populated on first touch instead of at creation.
    pub lazy: bool,
}

pub const fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}
pub const fn align_down(v: u64, a: u64) -> u64 {
    v & !(a - 1)
}

/// `[a, b)` minus the union of sorted, possibly overlapping `holes`
/// (`ihk_abi::range::subtract`, which mcexec's mirror uses too).
pub fn subtract(a: u64, b: u64, holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    ihk_abi::range::subtract(a, b, holes).collect()
}

/// VMAs by start address, non-overlapping. Derefs to the map for
/// iteration and in-place edits by the address space.
#[derive(Clone, Default)]
pub struct VmaSet {
    map: BTreeMap<u64, Vma>,
}

impl core::ops::Deref for VmaSet {
    type Target = BTreeMap<u64, Vma>;
    fn deref(&self) -> &BTreeMap<u64, Vma> {
        &self.map
    }
}

impl core::ops::DerefMut for VmaSet {
    fn deref_mut(&mut self) -> &mut BTreeMap<u64, Vma> {
        &mut self.map
    }
}

impl VmaSet {
    pub const fn new() -> VmaSet {
        VmaSet { map: BTreeMap::new() }
    }

    /// The VMA containing `addr`.
    pub fn vma_at(&self, addr: u64) -> Option<(u64, Vma)> {
        let (&s, &v) = self.map.range(..=addr).next_back()?;
        (addr < v.end).then_some((s, v))
    }

    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        if let Some((_, v)) = self.map.range(..start).next_back() {
            if v.end > start {
                return true;
            }
        }
        self.map.range(start..end).next().is_some()
    }

    /// Split the VMA containing `addr` so that a VMA starts at `addr`.
    pub fn split_at(&mut self, addr: u64) {
        if let Some((s, v)) = self.vma_at(addr) {
            if s < addr {
                self.map.insert(s, Vma { end: addr, ..v });
                self.map.insert(addr, v);
            }
        }
    }

    /// Remove VMAs in `[start, end)` (splitting at the edges); returns them.
    pub fn remove_range(&mut self, start: u64, end: u64) -> Vec<(u64, Vma)> {
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(&k, _)| k).collect();
        keys.into_iter().map(|k| (k, self.map.remove(&k).unwrap())).collect()
    }

    /// Lowest-level insert of a VMA over free space.
    pub fn insert_vma(&mut self, start: u64, v: Vma) {
        debug_assert!(!self.overlaps(start, v.end));
        self.map.insert(start, v);
    }

    /// `[s, v.end)` widened to whole granules `g` where the VMA owns them
    /// (every VMA when placing a share window, else share windows only).
    fn extent(s: u64, v: &Vma, g: u64, share: bool) -> (u64, u64) {
        if share || v.kind == VmaKind::Shared {
            (align_down(s, g), align_up(v.end, g))
        } else {
            (s, v.end)
        }
    }

    /// Whether `[start, end)` meets a VMA's extent (see `extent`).
    pub fn overlaps_extent(&self, start: u64, end: u64, g: u64, share: bool) -> bool {
        let hit = |(&s, v): (&u64, &Vma)| {
            let (a, b) = Self::extent(s, v, g, share);
            a < end && start < b
        };
        // VMAs are sorted and disjoint: the last one before `start` reaches
        // furthest up; the ones after it start below `end`'s granule end.
        self.map.range(..start).next_back().is_some_and(hit) || self.map.range(start..align_up(end, g)).any(hit)
    }

    /// Whether the granules (`g`) of a share window meet `[start, end)`.
    pub fn meets_share(&self, start: u64, end: u64, g: u64) -> bool {
        let hit = |(&s, v): (&u64, &Vma)| v.kind == VmaKind::Shared && align_down(s, g) < end && start < align_up(v.end, g);
        // Ends rise with starts: walking down, stop at the first VMA whose
        // widened end is below `start`.
        self.map.range(..start).rev().take_while(|(_, v)| align_up(v.end, g) > start).any(hit)
            || self.map.range(start..align_up(end, g)).any(hit)
    }

    /// A free range of `len` bytes: at `hint` if free, else top-down below
    /// the mmap top. Ranges of 2 MiB and more are 2 MiB aligned. No range
    /// shares a mirror granule `g` with a share window; a range for a share
    /// window (`share`) is granule aligned and shares its granules with
    /// nothing.
    pub fn find_free(&self, len: u64, hint: u64, g: u64, share: bool) -> Option<u64> {
        let align = if share { g.max(PAGE) } else if len >= LARGE { LARGE } else { PAGE };
        let need = if share { align_up(len, g) } else { len };
        if hint != 0 {
            let h = align_down(hint, PAGE);
            if h % align == 0
                && h >= USER_START
                && h.checked_add(need).is_some_and(|e| e <= MMAP_TOP)
                && !self.overlaps(h, h + len)
                && !self.overlaps_extent(h, h + need, g, share)
            {
                return Some(h);
            }
        }
        let mut top = MMAP_TOP;
        for (&s, v) in self.map.range(..MMAP_TOP).rev() {
            let (a, b) = Self::extent(s, v, g, share);
            if b <= top {
                if let Some(cand) = top.checked_sub(need).map(|c| align_down(c, align)) {
                    if cand >= b && cand >= USER_START {
                        return Some(cand);
                    }
                }
            }
            top = top.min(a);
        }
        let cand = align_down(top.checked_sub(need)?, align);
        (cand >= USER_START).then_some(cand)
    }
}
