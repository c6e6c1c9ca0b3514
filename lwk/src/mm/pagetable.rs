//! A process's x86-64 4-level page table. The user half (PML4 entries
//! 0..256) is the process's own; the kernel half (256..512: the direct map
//! of guest memory and the kernel image) is copied from the kernel's table
//! so kernel code keeps running after the switch.
//!
//! Table pages come from the frame allocator and are reached through the
//! direct map. The frames that user pages map are not owned here (the
//! address space's backing owns them).

use super::phys::{self, PAGE};

pub const PTE_P: u64 = 1 << 0;
pub const PTE_W: u64 = 1 << 1;
pub const PTE_U: u64 = 1 << 2;
pub const PTE_A: u64 = 1 << 5;
pub const PTE_D: u64 = 1 << 6;
pub const PTE_PS: u64 = 1 << 7;
pub const PTE_NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
const ADDR_2M: u64 = 0x000f_ffff_ffe0_0000;
pub const LARGE: u64 = 2 << 20;

/// Permissions of a user page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Perm {
    pub fn from_prot(prot: u64) -> Perm {
        Perm { read: prot & 1 != 0, write: prot & 2 != 0, exec: prot & 4 != 0 }
    }

    pub fn is_none(self) -> bool {
        !self.read && !self.write && !self.exec
    }

    /// Leaf flags (without the address and PS). PROT_NONE pages are not
    /// mapped at all, so this is only used for accessible pages.
    fn flags(self) -> u64 {
        let mut f = PTE_P | PTE_U | PTE_A;
        if self.write {
            f |= PTE_W | PTE_D;
        }
        if !self.exec && phys::nx_enabled() {
            f |= PTE_NX;
        }
        f
    }
}

/// Out of memory for page-table pages.
#[derive(Debug)]
pub struct NoMem;

pub struct PageTable {
    root: u64,
}

fn table(pa: u64) -> &'static mut [u64; 512] {
    // SAFETY: `pa` is a page-table page owned by this PageTable (or the
    // kernel root, read only for copying), reached through the direct map.
    unsafe { &mut *(phys::to_virt(pa) as *mut [u64; 512]) }
}

fn idx(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

impl PageTable {
    /// A new table sharing the kernel half of `kernel_root`.
    pub fn new(kernel_root: u64) -> Result<PageTable, NoMem> {
        let root = phys::alloc_zeroed(PAGE, PAGE).ok_or(NoMem)?;
        let k = table(kernel_root);
        let t = table(root);
        t[256..].copy_from_slice(&k[256..]);
        Ok(PageTable { root })
    }

    /// Physical address for CR3.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The entry for `va` at `level` (1 = PT, 2 = PD), creating tables.
    fn walk_create(&mut self, va: u64, level: u32) -> Result<&'static mut u64, NoMem> {
        let mut t = table(self.root);
        for l in (level + 1..=3).rev() {
            let e = &mut t[idx(va, l)];
            if *e & PTE_P == 0 {
                let pa = phys::alloc_zeroed(PAGE, PAGE).ok_or(NoMem)?;
                *e = pa | PTE_P | PTE_W | PTE_U;
            } else if *e & PTE_PS != 0 {
                // A 2 MiB leaf where we need a table: split it.
                debug_assert_eq!(l, 1);
                self.split(e)?;
            }
            t = table(*e & ADDR);
        }
        Ok(&mut t[idx(va, level)])
    }

    /// Replace a 2 MiB leaf `e` by a page table mapping the same pages.
    fn split(&mut self, e: &mut u64) -> Result<(), NoMem> {
        let pt = phys::alloc_zeroed(PAGE, PAGE).ok_or(NoMem)?;
        let base = *e & ADDR_2M;
        let flags = *e & !(ADDR_2M | PTE_PS) & !(1 << 12 /* PAT of a large page */);
        let t = table(pt);
        for (i, pte) in t.iter_mut().enumerate() {
            *pte = (base + i as u64 * PAGE) | flags;
        }
        *e = pt | PTE_P | PTE_W | PTE_U;
        Ok(())
    }

    /// The leaf entry for `va` if a table path exists: (entry, page size).
    fn walk(&self, va: u64) -> Option<(&'static mut u64, u64)> {
        let mut t = table(self.root);
        for l in (1..=3).rev() {
            let e = &mut t[idx(va, l)];
            if *e & PTE_P == 0 {
                return None;
            }
            if l == 1 && *e & PTE_PS != 0 {
                return Some((e, LARGE));
            }
            t = table(*e & ADDR);
        }
        Some((&mut t[idx(va, 0)], PAGE))
    }

    /// Map `[va, va+len)` to `[pa, pa+len)` with `perm`, using 2 MiB pages
    /// where both addresses and the span allow. Replaces existing entries.
    pub fn map(&mut self, va: u64, pa: u64, len: u64, perm: Perm) -> Result<(), NoMem> {
        let mut off = 0;
        while off < len {
            let (v, p) = (va + off, pa + off);
            if v % LARGE == 0 && p % LARGE == 0 && len - off >= LARGE {
                let e = self.walk_create(v, 1)?;
                if *e & PTE_P != 0 && *e & PTE_PS == 0 {
                    // Replacing a page table by a large page: free the table.
                    phys::free(*e & ADDR, PAGE);
                }
                *e = p | perm.flags() | PTE_PS;
                off += LARGE;
            } else {
                // 4 KiB pages: one walk per page table, then its entries in a
                // row up to the table's end (a 2 MiB boundary, where a large
                // page may start). Each walk is dozens of instructions, each
                // emulated on KVM PVM hosts (docs/pvm.md).
                let first = idx(v, 0) as u64;
                let n = (512 - first).min((len - off) / PAGE).max(1);
                let e: *mut u64 = self.walk_create(v, 0)?;
                for i in 0..n {
                    // SAFETY: entries first..first+n of the page table that
                    // holds `e` (first + n <= 512).
                    unsafe { *e.add(i as usize) = (p + i * PAGE) | perm.flags() };
                }
                off += n * PAGE;
            }
        }
        Ok(())
    }

    /// Remove the mappings of `[va, va+len)` (4 KiB aligned). Splits large
    /// pages that are only partly covered.
    pub fn unmap(&mut self, va: u64, len: u64) -> Result<(), NoMem> {
        let end = va + len;
        let mut v = va;
        while v < end {
            match self.walk(v) {
                None => v = (v | (LARGE - 1)) + 1, // no table: skip this 2 MiB span
                Some((e, LARGE)) => {
                    if v % LARGE == 0 && end - v >= LARGE {
                        *e = 0;
                        v += LARGE;
                    } else {
                        self.split(e)?;
                    }
                }
                Some((e, _)) => {
                    *e = 0;
                    v += PAGE;
                }
            }
        }
        flush_range(va, len);
        shootdown(self.root);
        Ok(())
    }

    /// Physical address and writability of user address `va`, if mapped
    /// user-accessible.
    pub fn translate(&self, va: u64) -> Option<(u64, bool)> {
        let (e, size) = self.walk(va)?;
        if *e & (PTE_P | PTE_U) != (PTE_P | PTE_U) {
            return None;
        }
        let base = if size == LARGE { *e & ADDR_2M } else { *e & ADDR };
        Some((base + (va & (size - 1)), *e & PTE_W != 0))
    }

    /// Remove every user mapping and free the user half's tables.
    pub fn clear_user(&mut self) {
        let t = table(self.root);
        let mut freed = alloc::vec::Vec::new();
        for e in t[..256].iter_mut() {
            if *e & PTE_P != 0 {
                freed.push(*e & ADDR);
                *e = 0;
            }
        }
        flush_all();
        // No CPU may walk the tables any more before they are freed.
        shootdown(self.root);
        for pa in freed {
            Self::free_tables(pa, 2);
        }
    }

    /// Free every table page of the user half.
    fn free_tables(pa: u64, level: u32) {
        if level > 0 {
            for &e in table(pa).iter() {
                if e & PTE_P != 0 && e & PTE_PS == 0 {
                    Self::free_tables(e & ADDR, level - 1);
                }
            }
        }
        phys::free(pa, PAGE);
    }
}

impl Drop for PageTable {
    fn drop(&mut self) {
        let t = table(self.root);
        for &e in t[..256].iter() {
            if e & PTE_P != 0 {
                Self::free_tables(e & ADDR, 2);
            }
        }
        phys::free(self.root, PAGE);
    }
}

/// Invalidate this CPU's TLB entries for a range (whole TLB if large).
pub fn flush_range(va: u64, len: u64) {
    if len > 64 * PAGE {
        flush_all();
        return;
    }
    let mut v = va & !(PAGE - 1);
    while v < va + len {
        // SAFETY: invlpg has no memory effects beyond the TLB.
        unsafe { core::arch::asm!("invlpg [{}]", in(reg) v, options(nostack, preserves_flags)) };
        v += PAGE;
    }
}

/// After this CPU flushed its own entries: make the other CPUs running
/// page table `root` drop theirs (`arch::x86_64::tlb`).
pub fn shootdown(root: u64) {
    let cores = crate::boot_params::get().cores();
    crate::arch::x86_64::tlb::shootdown(root, cores.len(), |c| cores[c].apic_id);
}

/// Reload CR3 (flushes non-global TLB entries).
pub fn flush_all() {
    // SAFETY: writing back the current CR3 only flushes the TLB.
    unsafe {
        core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack, preserves_flags));
    }
}

/// Current CR3.
pub fn current_root() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v & ADDR
}
