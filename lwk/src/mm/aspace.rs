//! A process's address space: VMAs (the set itself and its range
//! arithmetic are `vma`), the physical memory backing them, the page table,
//! and the map table `mcexec` mirrors (ARCHITECTURE.md §5-6).
//!
//! Backing: user memory is allocated in aligned blocks of the mirror
//! granule (the host memfds' page size) with `va ≡ pa (mod granule)`, so
//! every backed range is a valid `mmap` of the host memfd at the same
//! address in `mcexec`. Memory is populated eagerly when a VMA becomes
//! accessible (NUMA-local, 2 MiB aligned runs where the span allows, so
//! the page table uses 2 MiB pages), except MAP_NORESERVE and PROT_NONE
//! ranges, the stack's growth area and private file mappings, which fault
//! in; a file mapping's pages are read from the file when backed
//! (`filemap`, docs/memory.md), and a granule wholly inside one read-only
//! file mapping is a block shared with other processes (`pagecache`),
//! copied before anything may write it. A block is freed when
//! no VMA touches it any more; frees wait while an offloaded call of the
//! process is in flight, since its proxy may still use the old mirror.
//!
//! Shared mappings of host files (and shared anonymous memory) are pieces
//! of share windows (`window`): their pages map the window's guest-physical
//! pages, not the process's backing, and their mirror granules hold nothing
//! else (`VmaSet::find_free`), since mcexec mirrors them with the file.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use ihk_abi::offload::{MapEntry, ProxyAreaHeader, MAP_ENTRY_READONLY, MAP_ENTRY_WINDOW, MAP_ENTRY_WRITE, MMAP_TOP, USER_END, USER_START};

use super::pagetable::{PageTable, Perm, LARGE};
use super::phys::{self, PAGE};
pub use super::vma::{align_down, align_up, Vma, VmaKind};
use super::vma::{subtract, VmaSet};
use super::window::{self, Piece, ShareMaps};
use crate::errno::*;

/// How much of an on-demand mapping one page fault backs (at least the
/// mirror granule): 16 pages, so sequential reads fault 16 times less
/// often while a sparse mapping still costs only what is touched.
pub const FILE_CHUNK: u64 = 64 << 10;

#[derive(Clone, Copy, Debug)]
struct Extent {
    len: u64,
    pa: u64,
    /// A shared read-only file granule (`pagecache`): never written, never
    /// freed here (its reference is put).
    shared: bool,
}

/// Where the process's map table lives (in its proxy area).
pub struct MapTable {
    pub header: *mut ProxyAreaHeader,
    pub entries: *mut MapEntry,
    pub capacity: u32,
}

pub struct AddressSpace {
    pub pt: PageTable,
    vmas: VmaSet,
    backing: BTreeMap<u64, Extent>,
    granule: u64,
    numa: u32,
    map: MapTable,
    /// Physical ranges waiting for no offload to be in flight.
    deferred: Vec<(u64, u64, bool)>,
    pub brk_start: u64,
    pub brk: u64,
    brk_end: u64,
    heap_ext: u64,
    pub stack_top: u64,
    stack_limit: u64,
    /// Offloaded calls of the process in flight (see module doc); shared
    /// with the process, counted without this address space's lock.
    pub in_flight: Arc<AtomicU32>,
    /// Bytes of user memory backed (for rusage / kmsg).
    pub backed_bytes: u64,
    /// File-backed ranges (`filemap.rs`).
    pub files: super::filemap::FileMaps,
    /// Pieces of share windows (`window.rs`).
    shares: ShareMaps,
}

// SAFETY: the MapTable pointers point into the process's proxy area in the
// direct map, owned by the process; the address space is behind a lock.
unsafe impl Send for AddressSpace {}

impl AddressSpace {
    pub fn new(granule: u64, numa: u32, map: MapTable, in_flight: Arc<AtomicU32>) -> Result<AddressSpace, Errno> {
        let pt = PageTable::new(phys::kernel_root()).map_err(|_| ENOMEM)?;
        Ok(AddressSpace {
            pt,
            vmas: VmaSet::new(),
            backing: BTreeMap::new(),
            granule: granule.max(PAGE),
            numa,
            map,
            deferred: Vec::new(),
            brk_start: 0,
            brk: 0,
            brk_end: 0,
            heap_ext: PAGE,
            stack_top: 0,
            stack_limit: 0,
            in_flight,
            backed_bytes: 0,
            files: super::filemap::FileMaps::new(),
            shares: ShareMaps::new(),
        })
    }

    // ----- VMAs ---------------------------------------------------------

    /// Every VMA in address order (`/proc/self/maps`).
    pub fn vmas(&self) -> impl Iterator<Item = (u64, Vma)> + '_ {
        self.vmas.iter().map(|(&s, &v)| (s, v))
    }

    /// The VMA containing `addr`.
    pub fn vma_at(&self, addr: u64) -> Option<(u64, Vma)> {
        self.vmas.vma_at(addr)
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.vmas.overlaps(start, end)
    }

    fn split_at(&mut self, addr: u64) {
        self.vmas.split_at(addr)
    }

    fn remove_vmas(&mut self, start: u64, end: u64) -> Vec<(u64, Vma)> {
        self.vmas.remove_range(start, end)
    }

    fn insert_vma(&mut self, start: u64, v: Vma) {
        self.vmas.insert_vma(start, v)
    }

    /// A free range of `len` bytes (see [`VmaSet::find_free`]).
    pub fn find_free(&self, len: u64, hint: u64) -> Option<u64> {
        self.vmas.find_free(len, hint, self.granule, false)
    }

    /// A free range for a share window of `len` bytes: granule aligned, in
    /// granules of its own.
    pub fn find_free_share(&self, len: u64, hint: u64) -> Option<u64> {
        self.vmas.find_free(len, hint, self.granule, true)
    }

    /// Whether a share window can go at `[start, start+len)` (after the
    /// range was unmapped): its granules hold no other VMA and no backing.
    pub fn share_fits(&self, start: u64, len: u64) -> bool {
        let g = self.granule;
        let (s, e) = (align_down(start, g), align_up(start + len, g));
        !self.vmas.overlaps_extent(start, start + len, g, true) && self.unbacked(s, e) == alloc::vec![(s, e)]
    }

    /// Whether a share window could replace `[start, start+len)` (MAP_FIXED):
    /// the granules it touches hold no VMA outside the range.
    pub fn share_fits_replacing(&self, start: u64, len: u64) -> bool {
        let g = self.granule;
        let Some(end) = start.checked_add(len) else { return false };
        let (s, e) = (align_down(start, g), align_up(end, g));
        let outside = |vs: u64, v: &Vma| vs < e && v.end > s && (vs < start || v.end > end);
        self.vmas.range(..s).next_back().is_none_or(|(&vs, v)| !outside(vs, v))
            && self.vmas.range(s..e).all(|(&vs, v)| !outside(vs, v))
    }

    /// Whether a share window piece lies in `[start, end)`.
    pub fn has_share_in(&self, start: u64, end: u64) -> bool {
        self.shares.iter().any(|(s, p)| s < end && p.end > start)
    }

    /// The window piece at `addr`, if the VMA there is shared.
    pub fn share_at(&self, addr: u64) -> Option<(u64, Piece)> {
        self.shares.at(addr)
    }

    // ----- backing ------------------------------------------------------

    /// Ranges of `[s, e)` (granule aligned) without backing.
    fn unbacked(&self, s: u64, e: u64) -> Vec<(u64, u64)> {
        let mut holes = Vec::new();
        if let Some((&va, x)) = self.backing.range(..s).next_back() {
            if va + x.len > s {
                holes.push((va, va + x.len));
            }
        }
        for (&va, x) in self.backing.range(s..e) {
            holes.push((va, va + x.len));
        }
        subtract(s, e, &holes)
    }

    /// Bytes of `[s, e)` backed by the process's memory.
    pub fn backed_in(&self, s: u64, e: u64) -> u64 {
        let mut n = 0;
        if let Some((&va, x)) = self.backing.range(..s).next_back() {
            n += (va + x.len).min(e).saturating_sub(s);
        }
        for (&va, x) in self.backing.range(s..e) {
            n += (va + x.len).min(e) - va;
        }
        n
    }

    /// Back `[start, end)` with zeroed memory where it is not yet.
    fn populate(&mut self, start: u64, end: u64) -> Result<(), Errno> {
        let g = self.granule;
        let (s, e) = (align_down(start, g), align_up(end, g));
        if self.vmas.meets_share(s, e, g) {
            crate::printk!(
                "mm: {:#x}-{:#x} shares a {} KiB mirror block with a shared mapping; refused",
                start,
                end,
                g >> 10
            );
            return Err(ENOMEM);
        }
        for (gs, ge) in self.unbacked(s, e) {
            let mut v = gs;
            while v < ge {
                let (pa, piece) = self.alloc_piece(v, ge)?;
                // New memory is zeroed by the proxy when there is one (the
                // host does it at memory speed), else here; pages of
                // private file mappings in it are then read from the file.
                super::bulk::zero_user(pa, piece);
                if let Err(e) = self.fill(v, v + piece, pa) {
                    phys::free(pa, piece);
                    return Err(e);
                }
                self.backing.insert(v, Extent { len: piece, pa, shared: false });
                self.backed_bytes += piece;
                v += piece;
            }
        }
        Ok(())
    }

    /// Back the granule of `addr` with a shared read-only file granule
    /// (`pagecache`) if it may be one: huge-page granules, unbacked, wholly
    /// inside one on-demand, non-writable VMA and one file range. Returns
    /// whether it did (else the caller backs it privately).
    fn try_share(&mut self, addr: u64) -> bool {
        let g = self.granule;
        if g < LARGE {
            return false;
        }
        let (gs, ge) = (align_down(addr, g), align_down(addr, g) + g);
        let Some((vs, v)) = self.vma_at(gs) else { return false };
        if vs > gs || v.end < ge || !v.lazy || v.perm.write || v.perm.is_none() || v.kind != VmaKind::Anon {
            return false;
        }
        let Some((fs, m)) = self.files.at(gs) else { return false };
        if m.end < ge || m.kept_file.is_none() || m.mtime_ns == 0 || self.unbacked(gs, ge) != alloc::vec![(gs, ge)] {
            return false;
        }
        let key = super::pagecache::Key { dev: m.dev, ino: m.ino, size: m.size, mtime_ns: m.mtime_ns, off: m.off + (gs - fs) };
        let fills = self.files.fills_in(gs, ge);
        let numa = self.numa;
        let make = || {
            let pa = phys::alloc_on(g, g, Some(numa))?;
            super::bulk::zero_user(pa, g);
            for f in &fills {
                if super::bulk::read_file(f.fd, pa + (f.va - gs), f.len, f.off).is_err() {
                    phys::free(pa, g);
                    return None;
                }
            }
            Some(pa)
        };
        let Some(pa) = super::pagecache::get_or_make(key, g, make, |pa| phys::free(pa, g)) else { return false };
        self.backing.insert(gs, Extent { len: g, pa, shared: true });
        self.backed_bytes += g;
        true
    }

    /// Give the shared granules in `[start, end)` private copies (before
    /// anything may write them: mprotect to writable, a partial munmap,
    /// MADV_DONTNEED), mapped where the shared ones were.
    pub fn unshare_range(&mut self, start: u64, end: u64) -> Result<(), Errno> {
        let g = self.granule;
        let (s, e) = (align_down(start, g), align_up(end, g));
        let shared: Vec<(u64, Extent)> = self.backing.range(s..e).filter(|(_, x)| x.shared).map(|(&k, &x)| (k, x)).collect();
        if shared.is_empty() {
            return Ok(());
        }
        for (va, x) in shared {
            let pa = phys::alloc_on(x.len, x.len, Some(self.numa)).ok_or(ENOMEM)?;
            super::bulk::copy_phys(pa, x.pa, x.len)?;
            self.backing.insert(va, Extent { len: x.len, pa, shared: false });
            self.deferred.push((x.pa, x.len, true));
            self.map_pages(va, va + x.len)?;
            super::pagetable::flush_range(va, x.len);
        }
        super::pagetable::shootdown(self.pt.root());
        self.publish()?;
        self.flush_deferred();
        Ok(())
    }

    /// Read the file-filled pages of `[s, e)` (backed from `pa`) from their
    /// files (`filemap`: private file mappings are filled on first backing).
    fn fill(&self, s: u64, e: u64, pa: u64) -> Result<(), Errno> {
        for f in self.files.fills_in(s, e) {
            super::bulk::read_file(f.fd, pa + (f.va - s), f.len, f.off).map_err(|e| {
                crate::printk!("mm: filling {:#x} (+{:#x}) from its file failed: errno {}", f.va, f.len, e.0);
                EFAULT
            })?;
        }
        Ok(())
    }

    /// A new private file mapping `[start, end)` was recorded in `files`:
    /// the parts already backed (mirror granules shared with a neighbour)
    /// are read from the file now, since they will not be backed again.
    pub fn fill_backed(&mut self, start: u64, end: u64) -> Result<(), Errno> {
        let mut exts: Vec<(u64, Extent)> = Vec::new();
        if let Some((&va, &x)) = self.backing.range(..start).next_back() {
            exts.push((va, x));
        }
        exts.extend(self.backing.range(start..end).map(|(&k, &x)| (k, x)));
        for (va, x) in exts {
            let (s, e) = (va.max(start), (va + x.len).min(end));
            if s < e {
                self.fill(s, e, x.pa + (s - va))?;
            }
        }
        Ok(())
    }

    /// Back and map the accessible pages of on-demand VMAs in `[start,
    /// start+len)` (buffers of an offloaded call, which the proxy reaches
    /// through the mirror, where an unbacked page is an EFAULT, not a fault).
    /// Stops at the first page outside every VMA.
    pub fn fault_in(&mut self, start: u64, len: u64) -> Result<(), Errno> {
        let end = align_up(start.saturating_add(len.max(1)), PAGE).min(USER_END);
        let mut cur = align_down(start, PAGE);
        let mut changed = false;
        while cur < end {
            let Some((_, v)) = self.vma_at(cur) else { break };
            let e = v.end.min(end);
            if v.lazy && !v.perm.is_none() && v.kind != VmaKind::Shared {
                self.populate(cur, e)?;
                self.map_pages(cur, e)?;
                changed = true;
            }
            cur = e;
        }
        if changed {
            self.publish()?;
        }
        Ok(())
    }

    /// Memory for the start of `[v, end)` (granule aligned): a large aligned
    /// run where possible (at most 1 GiB at once), else up to the next 2 MiB
    /// boundary; smaller runs when memory is fragmented. Returns (pa, len).
    fn alloc_piece(&self, v: u64, end: u64) -> Result<(u64, u64), Errno> {
        let g = self.granule;
        let mut piece = if v % LARGE == 0 && end - v >= LARGE {
            align_down((end - v).min(1 << 30), LARGE)
        } else {
            (align_up(v + 1, LARGE).min(end)) - v
        };
        loop {
            let align = if piece % LARGE == 0 && v % LARGE == 0 { LARGE.max(g) } else { g };
            if let Some(pa) = phys::alloc_on(piece, align, Some(self.numa)) {
                return Ok((pa, piece));
            }
            let smaller = if piece > LARGE { align_down(piece / 2, LARGE) } else { 0 };
            if smaller < LARGE.max(g) || smaller == piece {
                return Err(ENOMEM);
            }
            piece = smaller;
        }
    }

    /// Make this (new, empty) address space a copy of `parent`'s: same
    /// VMAs, heap and stack, and a copy of every backed byte (fork). The
    /// bytes are copied by the calling thread's proxy.
    pub fn copy_from(&mut self, parent: &AddressSpace) -> Result<(), Errno> {
        self.vmas = parent.vmas.clone();
        // Pages of private file mappings the parent never backed are read
        // from the file when the child first touches them, as the parent's.
        self.files = parent.files.fork();
        self.brk_start = parent.brk_start;
        self.brk = parent.brk;
        self.brk_end = parent.brk_end;
        self.heap_ext = parent.heap_ext;
        self.stack_top = parent.stack_top;
        self.stack_limit = parent.stack_limit;
        self.shares = parent.shares.fork();
        for (&va, x) in &parent.backing {
            if x.shared {
                super::pagecache::get(x.pa);
                self.backing.insert(va, *x);
                self.backed_bytes += x.len;
                continue;
            }
            let end = va + x.len;
            let mut v = va;
            while v < end {
                let (pa, piece) = self.alloc_piece(v, end)?;
                super::bulk::copy_phys(pa, x.pa + (v - va), piece)?;
                self.backing.insert(v, Extent { len: piece, pa, shared: false });
                self.backed_bytes += piece;
                v += piece;
            }
        }
        self.map_pages(USER_START, USER_END)?;
        self.publish()
    }

    /// Map the accessible pages of VMAs in `[start, end)` onto their backing.
    fn map_pages(&mut self, start: u64, end: u64) -> Result<(), Errno> {
        let mut vs: Vec<(u64, Vma)> = Vec::new();
        if let Some((s, v)) = self.vma_at(start) {
            vs.push((s, v));
        }
        vs.extend(self.vmas.range(start..end).filter(|(&k, _)| k != start).map(|(&k, &v)| (k, v)));
        for (vs_, v) in vs {
            if v.perm.is_none() {
                continue;
            }
            let (a, b) = (vs_.max(start), v.end.min(end));
            if v.kind == VmaKind::Shared {
                let pieces: Vec<(u64, Piece)> = self.shares.iter().filter(|(s, p)| *s < b && p.end > a).collect();
                for (ps, p) in pieces {
                    let (ms, me) = (ps.max(a), p.end.min(b));
                    let perm = Perm { write: v.perm.write && p.writable, ..v.perm };
                    self.pt.map(ms, p.gpa + (ms - ps), me - ms, perm).map_err(|_| ENOMEM)?;
                }
                continue;
            }
            let mut exts: Vec<(u64, Extent)> = Vec::new();
            if let Some((&va, &x)) = self.backing.range(..a).next_back() {
                exts.push((va, x));
            }
            exts.extend(self.backing.range(a..b).map(|(&k, &x)| (k, x)));
            for (va, x) in exts {
                let (ms, me) = (va.max(a), (va + x.len).min(b));
                if ms < me {
                    self.pt.map(ms, x.pa + (ms - va), me - ms, v.perm).map_err(|_| ENOMEM)?;
                }
            }
        }
        Ok(())
    }

    /// Free backing blocks in `[start, end)` that no VMA touches.
    fn release_unused(&mut self, start: u64, end: u64) {
        let g = self.granule;
        let (s, e) = (align_down(start, g), align_up(end, g));
        let mut used = Vec::new();
        if let Some((&vs, v)) = self.vmas.range(..s).next_back() {
            if v.end > s && v.kind != VmaKind::Shared {
                used.push((align_down(vs, g), align_up(v.end, g)));
            }
        }
        for (&vs, v) in self.vmas.range(s..e) {
            if v.kind != VmaKind::Shared {
                used.push((align_down(vs, g), align_up(v.end, g)));
            }
        }
        for (fs, fe) in subtract(s, e, &used) {
            self.release_backing(fs, fe);
        }
    }

    /// Drop the backing of `[s, e)` (granule aligned), splitting extents.
    fn release_backing(&mut self, s: u64, e: u64) {
        let mut keys: Vec<u64> = Vec::new();
        if let Some((&va, x)) = self.backing.range(..s).next_back() {
            if va + x.len > s {
                keys.push(va);
            }
        }
        keys.extend(self.backing.range(s..e).map(|(&k, _)| k));
        for va in keys {
            let x = self.backing.remove(&va).unwrap();
            let (xs, xe) = (va, va + x.len);
            let (cs, ce) = (xs.max(s), xe.min(e));
            // A shared granule is released whole (releases are granule aligned).
            if xs < cs {
                self.backing.insert(xs, Extent { len: cs - xs, pa: x.pa, shared: x.shared });
            }
            if ce < xe {
                self.backing.insert(ce, Extent { len: xe - ce, pa: x.pa + (ce - xs), shared: x.shared });
            }
            self.backed_bytes -= ce - cs;
            self.deferred.push((x.pa + (cs - xs), ce - cs, x.shared));
        }
        self.flush_deferred();
    }

    /// Give deferred frees back when no offload is in flight.
    pub fn flush_deferred(&mut self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            for (pa, len, shared) in self.deferred.drain(..) {
                free_block(pa, len, shared);
            }
        }
    }

    /// Rewrite the map table from the backing (seqlock: odd while writing).
    fn publish(&mut self) -> Result<(), Errno> {
        let mut merged: Vec<MapEntry> = Vec::new();
        for (&va, x) in &self.backing {
            // Shared granules are mirrored read-only (a proxy's write, e.g.
            // a read() into them, would reach every process).
            let flags = if x.shared { MAP_ENTRY_READONLY } else { 0 };
            if let Some(last) = merged.last_mut() {
                if last.va + last.len == va && last.gpa + last.len == x.pa && last.flags == flags {
                    last.len += x.len;
                    continue;
                }
            }
            merged.push(MapEntry { va, len: x.len, gpa: x.pa, flags });
        }
        // Window pieces: mcexec mirrors them with its own mapping of the file.
        for (va, p) in self.shares.iter() {
            let flags = MAP_ENTRY_WINDOW | if p.writable { MAP_ENTRY_WRITE } else { 0 };
            merged.push(MapEntry { va, len: p.end - va, gpa: p.gpa, flags });
        }
        merged.sort_unstable_by_key(|m| m.va);
        if merged.len() > self.map.capacity as usize {
            crate::printk!(
                "process: {} mirrored ranges exceed the map table ({}); offloaded calls may fail",
                merged.len(),
                self.map.capacity
            );
            return Err(ENOMEM);
        }
        // SAFETY: the header and entries live in this process's proxy area;
        // the LWK is the only writer (under the address-space lock) and
        // mcexec reads under the sequence counter.
        let h = unsafe { &*self.map.header };
        h.map_seq.fetch_add(1, Ordering::AcqRel);
        for (i, m) in merged.iter().enumerate() {
            // SAFETY: i < capacity (checked above).
            unsafe { core::ptr::write_volatile(self.map.entries.add(i), *m) };
        }
        h.map_count.store(merged.len() as u32, Ordering::Release);
        h.map_seq.fetch_add(1, Ordering::Release);
        Ok(())
    }

    // ----- operations ---------------------------------------------------

    /// Create a VMA over free space and populate it unless lazy/PROT_NONE.
    pub fn map_new(&mut self, start: u64, len: u64, perm: Perm, kind: VmaKind, lazy: bool) -> Result<(), Errno> {
        let end = start.checked_add(len).ok_or(ENOMEM)?;
        if start < USER_START || end > USER_END || start % PAGE != 0 || len % PAGE != 0 || len == 0 {
            return Err(EINVAL);
        }
        if self.overlaps(start, end) {
            return Err(EEXIST);
        }
        self.insert_vma(start, Vma { end, perm, kind, lazy });
        if lazy || perm.is_none() {
            return Ok(());
        }
        let r = self.populate(start, end).and_then(|_| self.map_pages(start, end)).and_then(|_| self.publish());
        if r.is_err() {
            let _ = self.unmap(start, len);
        }
        r
    }

    /// munmap.
    pub fn unmap(&mut self, start: u64, len: u64) -> Result<(), Errno> {
        let end = align_up(start.checked_add(len).ok_or(EINVAL)?, PAGE);
        if start % PAGE != 0 || len == 0 || start < USER_START || end > USER_END {
            return Err(EINVAL);
        }
        self.files.remove(start, end);
        let removed = self.remove_vmas(start, end);
        if removed.is_empty() {
            return Ok(());
        }
        self.pt.unmap(start, end - start).map_err(|_| ENOMEM)?;
        // No CPU maps the pieces any more (the unmap shot the TLBs down).
        for base in self.shares.remove(start, end) {
            window::put(base);
        }
        self.release_unused(start, end);
        // A shared file granule still partly mapped gets a private copy
        // before anything in it may change.
        self.unshare_range(start, end)?;
        // Blocks shared with a neighbouring VMA stay backed: clear what the
        // removed VMAs held, so a later mapping there starts zeroed.
        for (s, v) in removed {
            if v.kind != VmaKind::Shared {
                self.zero_backed(s, v.end);
            }
        }
        self.publish()
    }

    /// Map a piece of a share window at `start` (free space, placed by
    /// [`AddressSpace::find_free_share`] or checked by
    /// [`AddressSpace::share_fits`]): `len` bytes, of which the first
    /// `covered` map the window from `w.gpa` (the rest lies past the end of
    /// the file: a fault there is SIGSEGV). The piece takes `w` over; on an
    /// error the reference is given back.
    pub fn map_share(&mut self, start: u64, len: u64, covered: u64, perm: Perm, w: window::WindowRef) -> Result<(), Errno> {
        let end = start.checked_add(len).ok_or(ENOMEM)?;
        if self.overlaps(start, end) {
            return Err(EEXIST);
        }
        if start < USER_START || end > USER_END || start % PAGE != 0 || len % PAGE != 0 || len == 0 || covered == 0 || covered > len {
            return Err(EINVAL);
        }
        self.insert_vma(start, Vma { end, perm, kind: VmaKind::Shared, lazy: false });
        self.shares.insert(start, w.into_piece(start + covered));
        let r = self.map_pages(start, end).and_then(|_| self.publish());
        if r.is_err() {
            let _ = self.unmap(start, len);
        }
        r
    }

    /// Zero the backed parts of `[start, end)`.
    fn zero_backed(&mut self, start: u64, end: u64) {
        let mut exts: Vec<(u64, Extent)> = Vec::new();
        if let Some((&va, &x)) = self.backing.range(..start).next_back() {
            exts.push((va, x));
        }
        exts.extend(self.backing.range(start..end).map(|(&k, &x)| (k, x)));
        for (va, x) in exts {
            let (s, e) = (va.max(start), (va + x.len).min(end));
            if s < e {
                super::bulk::zero_user(x.pa + (s - va), e - s);
            }
        }
    }

    /// mprotect.
    pub fn protect(&mut self, start: u64, len: u64, perm: Perm) -> Result<(), Errno> {
        let end = align_up(start.checked_add(len).ok_or(ENOMEM)?, PAGE);
        if start % PAGE != 0 {
            return Err(EINVAL);
        }
        // Every page must be mapped (Linux: ENOMEM otherwise), and a shared
        // mapping of a file opened read-only cannot become writable.
        let mut cur = start;
        while cur < end {
            let (_, v) = self.vma_at(cur).ok_or(ENOMEM)?;
            if v.kind == VmaKind::Shared && perm.write && self.shares.at(cur).is_some_and(|(_, p)| !p.writable) {
                return Err(EACCES);
            }
            cur = v.end;
        }
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(&k, _)| k).collect();
        let mut newly_accessible = false;
        for k in keys {
            let v = self.vmas.get_mut(&k).unwrap();
            if v.perm.is_none() && !perm.is_none() && !v.lazy && v.kind != VmaKind::Shared {
                newly_accessible = true;
            }
            v.perm = perm;
        }
        if perm.is_none() {
            self.pt.unmap(start, end - start).map_err(|_| ENOMEM)?;
            return Ok(());
        }
        if perm.write {
            self.unshare_range(start, end)?;
        }
        if newly_accessible {
            let private: Vec<(u64, u64)> = self
                .vmas
                .range(start..end)
                .filter(|(_, v)| v.kind != VmaKind::Shared)
                .map(|(&s, v)| (s, v.end))
                .collect();
            for (s, e) in private {
                self.populate(s, e)?;
            }
            self.publish()?;
        }
        self.map_pages(start, end)?;
        super::pagetable::flush_range(start, end - start);
        super::pagetable::shootdown(self.pt.root());
        Ok(())
    }

    /// Set up the heap after the image: `brk_start` page aligned.
    pub fn init_brk(&mut self, brk_start: u64, heap_ext: u64) {
        self.brk_start = brk_start;
        self.brk = brk_start;
        self.brk_end = brk_start;
        self.heap_ext = heap_ext.max(PAGE).next_power_of_two();
    }

    /// brk(2): returns the new (or unchanged) break.
    pub fn set_brk(&mut self, req: u64) -> u64 {
        if req < self.brk_start {
            return self.brk;
        }
        if req <= self.brk_end {
            self.brk = req;
            return self.brk;
        }
        let new_end = align_up(req, self.heap_ext);
        if new_end > MMAP_TOP || self.overlaps(self.brk_end, new_end) {
            return self.brk;
        }
        let old_end = self.brk_end;
        // Extend (or create) the heap VMA.
        let perm = Perm { read: true, write: true, exec: false };
        match self.vma_at(old_end.saturating_sub(1)) {
            Some((s, v)) if v.kind == VmaKind::Heap && v.end == old_end => {
                self.vmas.insert(s, Vma { end: new_end, ..v });
            }
            _ => self.insert_vma(old_end, Vma { end: new_end, perm, kind: VmaKind::Heap, lazy: false }),
        }
        let r = self.populate(old_end, new_end).and_then(|_| self.map_pages(old_end, new_end)).and_then(|_| self.publish());
        if r.is_err() {
            let _ = self.remove_vmas(old_end, new_end);
            let _ = self.pt.unmap(old_end, new_end - old_end);
            self.release_unused(old_end, new_end);
            let _ = self.publish();
            return self.brk;
        }
        self.brk_end = new_end;
        self.brk = req;
        self.brk
    }

    /// The initial stack: `[top - premap, top)` populated, growth down to
    /// `top - max` on faults.
    pub fn init_stack(&mut self, top: u64, premap: u64, max: u64) -> Result<(), Errno> {
        let premap = align_up(premap.max(PAGE), PAGE);
        let max = align_up(max.max(premap), PAGE);
        self.stack_top = top;
        self.stack_limit = top - max;
        let perm = Perm { read: true, write: true, exec: false };
        self.map_new(top - premap, premap, perm, VmaKind::Stack, false)
    }

    /// Bytes of the stack VMA (premapped plus grown).
    pub fn stack_bytes(&self) -> u64 {
        self.vmas
            .range(..self.stack_top)
            .rev()
            .find(|(_, v)| v.kind == VmaKind::Stack)
            .map_or(0, |(&s, _)| self.stack_top - s)
    }

    /// Grow the stack VMA down to cover `addr` (page fault or before an
    /// offloaded call whose buffers may lie below the touched stack).
    pub fn grow_stack(&mut self, addr: u64) -> bool {
        if addr < self.stack_limit || addr >= self.stack_top {
            return false;
        }
        let Some((s, v)) = self.vmas.range(..self.stack_top).find(|(_, v)| v.kind == VmaKind::Stack).map(|(&s, &v)| (s, v))
        else {
            return false;
        };
        if addr >= s {
            return true;
        }
        // Whole granule blocks get backed anyway: cover them.
        let new_start = align_down(addr, self.granule).max(self.stack_limit);
        if self.overlaps(new_start, s) {
            return false;
        }
        self.vmas.remove(&s);
        self.vmas.insert(new_start, v);
        if self.populate(new_start, s).and_then(|_| self.map_pages(new_start, s)).and_then(|_| self.publish()).is_err() {
            self.vmas.remove(&new_start);
            self.vmas.insert(s, v);
            self.release_unused(new_start, s);
            return false;
        }
        true
    }

    /// Resolve a user page fault at `addr`; false means SIGSEGV.
    pub fn fault(&mut self, addr: u64, write: bool, exec: bool) -> bool {
        match self.vma_at(addr) {
            Some((s, v)) => {
                let allowed = if write { v.perm.write } else if exec { v.perm.exec } else { v.perm.read || v.perm.write };
                if !allowed {
                    return false;
                }
                // Already mapped with the right rights: a stale TLB entry.
                if let Some((_, w)) = self.pt.translate(addr) {
                    if w || !write {
                        super::pagetable::flush_range(addr, PAGE);
                        return true;
                    }
                }
                if v.kind == VmaKind::Shared {
                    // Window pages are mapped from the start; past the
                    // window (beyond the end of the file) is a fault.
                    return false;
                }
                // A chunk at a time: a kernel entry per page fault is costly
                // (docs/pvm.md); file pages come in FILE_CHUNK pieces.
                let chunk = if v.lazy { self.granule.max(FILE_CHUNK) } else { self.granule };
                if v.lazy {
                    self.try_share(addr);
                }
                let (bs, be) = (align_down(addr, chunk).max(s), align_up(addr + 1, chunk).min(v.end));
                self.populate(bs, be).and_then(|_| self.map_pages(bs, be)).and_then(|_| self.publish()).is_ok()
            }
            None => self.grow_stack(addr),
        }
    }

    /// mremap(2).
    /// mremap: `fixed` is MREMAP_FIXED's new address (the move is then
    /// made there, whatever `[fixed, fixed+new_len)` held being unmapped
    /// first, as Linux does).
    pub fn remap(&mut self, old: u64, old_len: u64, new_len: u64, may_move: bool, fixed: Option<u64>) -> Result<u64, Errno> {
        if old % PAGE != 0 || new_len == 0 {
            return Err(EINVAL);
        }
        let mut old_len = align_up(old_len, PAGE);
        let new_len = align_up(new_len, PAGE);
        if let Some(dst) = fixed {
            let end = dst.checked_add(new_len).ok_or(EINVAL)?;
            if !may_move || dst % PAGE != 0 || dst < USER_START || end > USER_END {
                return Err(EINVAL);
            }
            if dst < old.saturating_add(old_len) && old < end {
                return Err(EINVAL);
            }
        }
        let (s, mut v) = self.vma_at(old).ok_or(EFAULT)?;
        // Pieces split by mprotect and made alike again are one mapping (a
        // Linux VMA merge), as far as the range reaches.
        while old + old_len > v.end && v.kind != VmaKind::Shared {
            match self.vmas.get(&v.end).copied() {
                Some(n) if n.perm == v.perm && n.kind == v.kind && n.lazy == v.lazy && self.files.continues(v.end) => {
                    self.vmas.remove(&v.end);
                    v.end = n.end;
                    self.vmas.insert(s, v);
                }
                _ => break,
            }
        }
        if old + old_len > v.end || old_len == 0 {
            return Err(EFAULT);
        }
        if let Some(dst) = fixed {
            if v.kind == VmaKind::Shared {
                // A share window stays where the host placed it.
                return Err(EINVAL);
            }
            self.unmap(dst, new_len)?;
            if new_len < old_len {
                self.unmap(old + new_len, old_len - new_len)?;
                old_len = new_len;
            }
            return self.move_to(old, old_len, new_len, v, dst);
        }
        if new_len <= old_len {
            if new_len < old_len {
                self.unmap(old + new_len, old_len - new_len)?;
            }
            return Ok(old);
        }
        if v.kind == VmaKind::Shared {
            // Growing a window would need a new one from the host.
            return Err(ENOMEM);
        }
        let grow_end = old + new_len;
        if old + old_len == v.end && grow_end <= MMAP_TOP && !self.overlaps(v.end, grow_end) {
            let from = v.end;
            self.vmas.insert(s, Vma { end: grow_end, ..v });
            // A file mapping grows over the file's next pages (those in
            // granules already backed are read now).
            self.files.grow(from, grow_end);
            if let Err(e) = self.fill_backed(from, grow_end) {
                self.vmas.insert(s, v);
                return Err(e);
            }
            if !v.lazy && !v.perm.is_none() {
                if let Err(e) = self.populate(from, grow_end).and_then(|_| self.map_pages(from, grow_end)).and_then(|_| self.publish()) {
                    self.vmas.insert(s, v);
                    self.release_unused(from, grow_end);
                    return Err(e);
                }
            }
            return Ok(old);
        }
        if !may_move {
            return Err(ENOMEM);
        }
        let dst = self.find_free(new_len, 0).ok_or(ENOMEM)?;
        self.move_to(old, old_len, new_len, v, dst)
    }

    /// The moving part of mremap: `[old, old+old_len)` (inside VMA `v`)
    /// becomes `[dst, dst+new_len)`, which is free.
    fn move_to(&mut self, old: u64, old_len: u64, new_len: u64, v: Vma, dst: u64) -> Result<u64, Errno> {
        self.map_new(dst, new_len, v.perm, v.kind, v.lazy)?;
        // The file range moves along: pages never backed still come from
        // the file (its kept file stays used, so it is not dropped).
        if let Some((fs, m)) = self.files.at(old) {
            let m = super::filemap::FileMap { end: dst + new_len, off: m.off + (old - fs), ..m.clone() };
            self.files.insert(dst, m);
            if let Err(e) = self.fill_backed(dst, dst + new_len) {
                let _ = self.unmap(dst, new_len);
                return Err(e);
            }
        }
        if v.lazy {
            // Back the destination where the source is backed, so the
            // copy below keeps every page the program has.
            let mut off = 0;
            while off < old_len {
                if self.pt.translate(old + off).is_some() && self.pt.translate(dst + off).is_none() {
                    let e = (dst + off + PAGE).min(dst + new_len);
                    self.populate(dst + off, e).and_then(|_| self.map_pages(dst + off, e))?;
                }
                off += PAGE;
            }
            self.publish()?;
        }
        self.copy_user_range(old, dst, old_len);
        self.unmap(old, old_len)?;
        Ok(dst)
    }

    /// Copy mapped user memory (pages without mapping are skipped).
    fn copy_user_range(&mut self, src: u64, dst: u64, len: u64) {
        let mut off = 0;
        while off < len {
            if let (Some((ps, _)), Some((pd, _))) = (self.pt.translate(src + off), self.pt.translate(dst + off)) {
                // SAFETY: both are user pages of this process in the direct map.
                unsafe { core::ptr::copy_nonoverlapping(phys::to_virt(ps), phys::to_virt(pd), PAGE as usize) };
            }
            off += PAGE;
        }
    }

    /// Drop every mapping (execve): the address space starts empty.
    pub fn reset(&mut self) {
        self.files.clear();
        self.vmas.clear();
        self.pt.clear_user();
        for base in self.shares.clear() {
            window::put(base);
        }
        let all: Vec<(u64, u64)> = self.backing.iter().map(|(&va, x)| (va, va + x.len)).collect();
        for (s, e) in all {
            self.release_backing(s, e);
        }
        self.brk_start = 0;
        self.brk = 0;
        self.brk_end = 0;
        self.stack_top = 0;
        self.stack_limit = 0;
        let _ = self.publish();
    }

    /// Free everything (the process is gone and so is its proxy).
    pub fn teardown(&mut self) {
        self.vmas.clear();
        // The process's threads are gone: nothing maps the windows through
        // this page table any more.
        for base in self.shares.clear() {
            window::put(base);
        }
        let all: Vec<(u64, u64)> = self.backing.iter().map(|(&va, x)| (va, va + x.len)).collect();
        for (s, e) in all {
            self.release_backing(s, e);
        }
        for (pa, len, shared) in self.deferred.drain(..) {
            free_block(pa, len, shared);
        }
    }

    // ----- access from the kernel -----------------------------------------

    /// Physical address of user address `va`, faulting the page in as an
    /// access from user mode would (futex words).
    pub fn user_pa(&mut self, va: u64, write: bool) -> Result<u64, Errno> {
        let ok = |m: Option<(u64, bool)>| m.filter(|&(_, w)| w || !write).map(|(pa, _)| pa);
        if let Some(pa) = ok(self.pt.translate(va)) {
            return Ok(pa);
        }
        if !self.fault(va, write, false) {
            return Err(EFAULT);
        }
        ok(self.pt.translate(va)).ok_or(EFAULT)
    }

    /// The page of `va` mapped (readable, or writable with `write`),
    /// backing an on-demand page as a user access would: its translation.
    fn resolve(&mut self, va: u64, write: bool) -> Result<(u64, bool), Errno> {
        match self.pt.translate(va) {
            Some((pa, w)) if w || !write => Ok((pa, w)),
            _ => {
                let lazy = self.vma_at(va).is_some_and(|(_, v)| v.lazy && v.kind != VmaKind::Shared);
                if !lazy || !self.fault(va, write, false) {
                    return Err(EFAULT);
                }
                self.pt.translate(va).ok_or(EFAULT)
            }
        }
    }

    /// Copy `buf.len()` bytes from user address `va` (on-demand pages are
    /// backed on the way).
    pub fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.checked_add(done as u64).ok_or(EFAULT)?;
            let (pa, _) = self.resolve(a, false)?;
            let n = ((PAGE - a % PAGE) as usize).min(buf.len() - done);
            // SAFETY: `pa..pa+n` is inside one user page of this process.
            unsafe { core::ptr::copy_nonoverlapping(phys::to_virt(pa), buf[done..].as_mut_ptr(), n) };
            done += n;
        }
        Ok(())
    }

    /// Copy `data` to user address `va` (pages must be writable).
    pub fn write(&mut self, va: u64, data: &[u8]) -> Result<(), Errno> {
        let mut done = 0usize;
        while done < data.len() {
            let a = va.checked_add(done as u64).ok_or(EFAULT)?;
            let (pa, w) = self.resolve(a, true)?;
            if !w {
                return Err(EFAULT);
            }
            let n = ((PAGE - a % PAGE) as usize).min(data.len() - done);
            // SAFETY: as in `read`.
            unsafe { core::ptr::copy_nonoverlapping(data[done..].as_ptr(), phys::to_virt(pa), n) };
            done += n;
        }
        Ok(())
    }

    /// Write through the kernel regardless of the page's write permission
    /// (ELF loading into read-only segments).
    pub fn write_force(&self, va: u64, data: &[u8]) -> Result<(), Errno> {
        let mut done = 0usize;
        while done < data.len() {
            let a = va + done as u64;
            let (pa, _) = self.pt.translate(a).ok_or(EFAULT)?;
            let n = ((PAGE - a % PAGE) as usize).min(data.len() - done);
            // SAFETY: as in `read`.
            unsafe { core::ptr::copy_nonoverlapping(data[done..].as_ptr(), phys::to_virt(pa), n) };
            done += n;
        }
        Ok(())
    }

    pub fn read_u64(&mut self, va: u64) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn write_u64(&mut self, va: u64, v: u64) -> Result<(), Errno> {
        self.write(va, &v.to_le_bytes())
    }

    pub fn write_u32(&mut self, va: u64, v: u32) -> Result<(), Errno> {
        self.write(va, &v.to_le_bytes())
    }

    /// Whether the page of `va` is mapped in the page table right now (so
    /// it is backed and in the proxy's mirror). A walk of the table: much
    /// shorter than a VMA lookup where kernel code is emulated (docs/pvm.md).
    pub fn is_mapped_now(&self, va: u64) -> bool {
        self.pt.translate(va).is_some()
    }

    /// Is every page of `[va, va+len)` mapped in the page table now? Memory
    /// is backed a granule at a time, so one page of each granule (and of
    /// each VMA) stands for it; `None` when that would take more than
    /// `max_checks` walks (the caller then just faults the range in).
    pub fn is_backed_now(&self, va: u64, len: u64, max_checks: u32) -> Option<bool> {
        let end = va.saturating_add(len.max(1));
        let mut cur = va;
        let mut checks = 0;
        while cur < end {
            checks += 1;
            if checks > max_checks {
                return None;
            }
            if self.pt.translate(cur).is_none() {
                return Some(false);
            }
            let next_granule = align_down(cur, self.granule).saturating_add(self.granule);
            let vma_end = self.vma_at(cur).map_or(next_granule, |(_, v)| v.end);
            cur = next_granule.min(vma_end).max(cur + PAGE);
        }
        Some(true)
    }

    /// Is `[va, va+len)` entirely inside accessible VMAs?
    pub fn range_mapped(&self, va: u64, len: u64) -> bool {
        let mut cur = va;
        let end = match va.checked_add(len) {
            Some(e) => e,
            None => return false,
        };
        while cur < end {
            match self.vma_at(cur) {
                Some((_, v)) if !v.perm.is_none() => cur = v.end,
                _ => return false,
            }
        }
        true
    }
}

/// Free a block given back: a shared file granule's reference is put (the
/// block is freed with the last).
fn free_block(pa: u64, len: u64, shared: bool) {
    if !shared {
        phys::free(pa, len);
    } else if let Some((pa, len)) = super::pagecache::put(pa) {
        phys::free(pa, len);
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        self.teardown();
    }
}
