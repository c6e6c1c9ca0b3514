//! Share windows, LWK side (`docs/shared-memory.md`): host files that
//! processes map `MAP_SHARED` (and `MAP_SHARED|MAP_ANONYMOUS` memory, a
//! host memfd) appear as guest-physical memory in
//! [`SHARE_WINDOW_GPA`] .. (+[`SHARE_WINDOW_SIZE`]), one window per file
//! range, backed by the file's own host pages (a KVM memslot the host adds
//! at our request). Every process that maps the window maps the same
//! guest-physical pages, so stores are seen at once by the other LWK
//! processes, by mcexec and by Linux processes mapping the file, and a
//! futex in it (keyed by guest-physical address) works across processes.
//!
//! Owns: the allocation of window addresses (next-fit, so a released
//! range is not reused while the host may still be removing it), the
//! registry of windows with the number of mapped pieces that use each
//! (`ShareMaps` of the address spaces), and the kernel's direct map of the
//! window range. When the last piece goes, the host is told to remove the
//! window (a hook the IKC layer registers at boot).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use ihk_abi::layout::{SHARE_WINDOW_ALIGN, SHARE_WINDOW_GPA, SHARE_WINDOW_SIZE};

use super::pagetable::{PTE_NX, PTE_P, PTE_PS, PTE_W};
use super::phys::{self, PAGE};
use super::vma::align_up;

/// One window of the registry.
#[derive(Clone, Copy, Debug)]
struct Window {
    len: u64,
    /// The host file (device, inode) and the file offset of the first
    /// byte; dev = ino = 0 for anonymous memory (never looked up).
    dev: u64,
    ino: u64,
    off: u64,
    writable: bool,
    /// The host confirmed the window (until then lookups skip it).
    ready: bool,
    /// Mapped pieces using it (plus one while being created).
    refs: u32,
}

struct Registry {
    map: BTreeMap<u64, Window>,
    /// Next-fit cursor (offset from SHARE_WINDOW_GPA).
    cursor: u64,
}

static REG: spin::Mutex<Registry> = spin::Mutex::new(Registry { map: BTreeMap::new(), cursor: 0 });
static AVAILABLE: AtomicBool = AtomicBool::new(false);
static RELEASE: spin::Once<fn(u64, u64)> = spin::Once::new();

/// Map the window range into the kernel's direct map (BSP, at boot, before
/// any process page table copies the kernel half). Windows stay off when
/// the guest's physical address width cannot reach them.
pub fn init() {
    // SAFETY: CPUID is always available in long mode.
    let ext = unsafe { core::arch::x86_64::__cpuid(0x8000_0000) }.eax;
    if ext < 0x8000_0008 {
        crate::printk!("share windows: off (no CPUID leaf 0x80000008)");
        return;
    }
    let bits = unsafe { core::arch::x86_64::__cpuid(0x8000_0008) }.eax & 0xff;
    if SHARE_WINDOW_GPA + SHARE_WINDOW_SIZE > 1u64 << bits {
        crate::printk!("share windows: off ({bits} physical address bits); MAP_SHARED mappings are private copies");
        return;
    }
    let gb = unsafe { core::arch::x86_64::__cpuid(0x8000_0001) }.edx & (1 << 26) != 0;
    if map_direct(gb).is_none() {
        crate::printk!("share windows: off (no memory for their page tables)");
        return;
    }
    AVAILABLE.store(true, Ordering::Release);
    crate::printk!(
        "share windows: {:#x} - {:#x} ({} GiB, {} pages)",
        SHARE_WINDOW_GPA,
        SHARE_WINDOW_GPA + SHARE_WINDOW_SIZE,
        SHARE_WINDOW_SIZE >> 30,
        if gb { "1 GiB" } else { "2 MiB" }
    );
}

/// Direct-map `[SHARE_WINDOW_GPA, +SHARE_WINDOW_SIZE)` in the kernel root.
fn map_direct(gb: bool) -> Option<()> {
    const GIB: u64 = 1 << 30;
    let root = phys::kernel_root();
    let va = phys::to_virt(SHARE_WINDOW_GPA) as u64;
    let nx = if phys::nx_enabled() { PTE_NX } else { 0 };
    // SAFETY: page-table pages of the kernel root (or new ones), reached
    // through the direct map; no process exists yet, and the APs only read.
    unsafe {
        let pml4 = &mut *(phys::to_virt(root) as *mut [u64; 512]);
        let i4 = ((va >> 39) & 0x1ff) as usize;
        if pml4[i4] & PTE_P == 0 {
            pml4[i4] = phys::alloc_zeroed(PAGE, PAGE)? | PTE_P | PTE_W;
        }
        let pdpt = &mut *(phys::to_virt(pml4[i4] & 0x000f_ffff_ffff_f000) as *mut [u64; 512]);
        let mut gpa = SHARE_WINDOW_GPA;
        while gpa < SHARE_WINDOW_GPA + SHARE_WINDOW_SIZE {
            let i3 = (((va + (gpa - SHARE_WINDOW_GPA)) >> 30) & 0x1ff) as usize;
            if gb {
                pdpt[i3] = gpa | PTE_P | PTE_W | PTE_PS | nx;
            } else {
                let pd = phys::alloc_zeroed(PAGE, PAGE)?;
                let t = &mut *(phys::to_virt(pd) as *mut [u64; 512]);
                for (j, e) in t.iter_mut().enumerate() {
                    *e = (gpa + j as u64 * (2 << 20)) | PTE_P | PTE_W | PTE_PS | nx;
                }
                pdpt[i3] = pd | PTE_P | PTE_W;
            }
            gpa += GIB;
        }
    }
    super::pagetable::flush_all();
    Some(())
}

/// Whether share windows can be used (else shared mappings are copies).
pub fn available() -> bool {
    AVAILABLE.load(Ordering::Acquire)
}

/// Register how the host is told that a window is no longer used
/// (`ikc::master`; BSP, once, at boot).
pub fn register_release(f: fn(u64, u64)) {
    RELEASE.call_once(|| f);
}

/// A ready window of file (dev, ino) that covers `[off, off+len)` with at
/// least the access asked for: takes a reference and returns (window base,
/// guest-physical address of `off`).
pub fn lookup(dev: u64, ino: u64, off: u64, len: u64, writable: bool) -> Option<(u64, u64)> {
    if dev == 0 && ino == 0 {
        return None;
    }
    let mut r = REG.lock();
    let (&base, w) = r.map.iter_mut().find(|(_, w)| {
        w.ready && w.dev == dev && w.ino == ino && w.off <= off && off + len <= w.off + w.len && (w.writable || !writable)
    })?;
    w.refs += 1;
    Some((base, base + (off - w.off)))
}

/// Reserve guest-physical space for a new window of `len` bytes (one
/// reference, not ready): the caller asks the host to create it, then
/// calls [`ready`] or [`put`].
pub fn reserve(len: u64, dev: u64, ino: u64, off: u64, writable: bool) -> Option<u64> {
    if !available() || len == 0 {
        return None;
    }
    let span = align_up(len, SHARE_WINDOW_ALIGN);
    if span > SHARE_WINDOW_SIZE {
        return None;
    }
    let mut r = REG.lock();
    // Next fit from the cursor, wrapping once.
    let free_at = |r: &Registry, o: u64| -> Option<u64> {
        let (s, e) = (SHARE_WINDOW_GPA + o, SHARE_WINDOW_GPA + o + span);
        if o + span > SHARE_WINDOW_SIZE {
            return None;
        }
        // The window below must end before s, and none may start in [s, e).
        if let Some((&b, w)) = r.map.range(..s).next_back() {
            if b + align_up(w.len, SHARE_WINDOW_ALIGN) > s {
                return Some(b + align_up(w.len, SHARE_WINDOW_ALIGN) - SHARE_WINDOW_GPA);
            }
        }
        if let Some((&b, w)) = r.map.range(s..e).next() {
            return Some(b + align_up(w.len, SHARE_WINDOW_ALIGN) - SHARE_WINDOW_GPA);
        }
        Some(u64::MAX) // free
    };
    let mut o = r.cursor;
    let mut wrapped = false;
    loop {
        match free_at(&r, o) {
            Some(u64::MAX) => break,
            Some(next) => o = next,
            None if !wrapped => {
                wrapped = true;
                o = 0;
            }
            None => return None,
        }
        if wrapped && o >= r.cursor {
            return None;
        }
    }
    r.cursor = o + span;
    let base = SHARE_WINDOW_GPA + o;
    r.map.insert(base, Window { len, dev, ino, off, writable, ready: false, refs: 1 });
    Some(base)
}

/// The host created the window at `base`: later lookups may share it.
pub fn ready(base: u64) {
    if let Some(w) = REG.lock().map.get_mut(&base) {
        w.ready = true;
    }
}

/// One more piece maps the window at `base` (a split, a fork).
pub fn get(base: u64) {
    if let Some(w) = REG.lock().map.get_mut(&base) {
        w.refs += 1;
    }
}

/// A piece no longer maps the window at `base` (its page-table entries
/// are gone on every CPU): the last one tells the host to remove it.
pub fn put(base: u64) {
    let gone = {
        let mut r = REG.lock();
        match r.map.get_mut(&base) {
            Some(w) if w.refs > 1 => {
                w.refs -= 1;
                None
            }
            Some(_) => r.map.remove(&base),
            None => None,
        }
    };
    if let (Some(w), Some(f)) = (gone, RELEASE.get()) {
        f(base, w.len);
    }
}

/// One reference to a window, for a mapping to take over
/// ([`WindowRef::into_piece`]); given back when dropped, so an error on the
/// way to the mapping releases it.
pub struct WindowRef {
    pub base: u64,
    /// Guest-physical address of the mapping's first byte.
    pub gpa: u64,
    pub writable: bool,
}

impl WindowRef {
    /// The piece `[.., end)` that now holds this reference.
    pub fn into_piece(self, end: u64) -> Piece {
        let p = Piece { end, gpa: self.gpa, base: self.base, writable: self.writable };
        core::mem::forget(self);
        p
    }
}

impl Drop for WindowRef {
    fn drop(&mut self) {
        put(self.base);
    }
}

/// One mapped piece of a window in an address space: `[start, end)` maps
/// the window's guest-physical `gpa ..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub end: u64,
    pub gpa: u64,
    /// The window (registry key).
    pub base: u64,
    pub writable: bool,
}

/// The window pieces of one address space by start address. Each piece
/// holds one registry reference.
#[derive(Default)]
pub struct ShareMaps {
    map: BTreeMap<u64, Piece>,
}

impl ShareMaps {
    pub const fn new() -> ShareMaps {
        ShareMaps { map: BTreeMap::new() }
    }

    /// Record a piece over a range that has none (its reference is the
    /// caller's).
    pub fn insert(&mut self, start: u64, p: Piece) {
        self.map.insert(start, p);
    }

    /// The piece containing `addr`.
    pub fn at(&self, addr: u64) -> Option<(u64, Piece)> {
        let (&s, &p) = self.map.range(..=addr).next_back()?;
        (addr < p.end).then_some((s, p))
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, Piece)> + '_ {
        self.map.iter().map(|(&s, &p)| (s, p))
    }

    /// Forget `[start, end)`, splitting pieces at its edges; the dropped
    /// pieces' references are returned to the caller (window bases), to be
    /// put once their page-table entries are gone.
    pub fn remove(&mut self, start: u64, end: u64) -> Vec<u64> {
        let mut keys: Vec<u64> = Vec::new();
        if let Some((&s, p)) = self.map.range(..start).next_back() {
            if p.end > start {
                keys.push(s);
            }
        }
        keys.extend(self.map.range(start..end).map(|(&k, _)| k));
        let mut dropped = Vec::new();
        for k in keys {
            let p = self.map.remove(&k).unwrap();
            let mut kept = 0;
            if k < start {
                self.map.insert(k, Piece { end: start, ..p });
                kept += 1;
            }
            if p.end > end {
                self.map.insert(end, Piece { gpa: p.gpa + (end - k), ..p });
                kept += 1;
            }
            match kept {
                0 => dropped.push(p.base),
                2 => get(p.base),
                _ => {}
            }
        }
        dropped
    }

    /// A copy for a fork child (one more reference per piece).
    pub fn fork(&self) -> ShareMaps {
        for p in self.map.values() {
            get(p.base);
        }
        ShareMaps { map: self.map.clone() }
    }

    /// Forget everything; returns the references to put.
    pub fn clear(&mut self) -> Vec<u64> {
        core::mem::take(&mut self.map).into_values().map(|p| p.base).collect()
    }
}
