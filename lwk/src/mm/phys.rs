//! Physical memory for processes: the kernel's direct map of guest memory,
//! aligned contiguous allocation on top of the frame allocator (`mm::frame`),
//! and zeroing.
//!
//! The direct map: the boot page tables identity-map guest memory in the
//! lower half (specification Fig. 2.2), which is where user space lives once
//! a process runs. [`init_direct_map`] gives the kernel a second view of the
//! same memory at `DIRECT_MAP_BASE` (PML4 entries 256.. share the identity
//! map's lower-level tables, so it costs no memory), and kernel code that may
//! run while a process's page table is loaded reaches physical memory only
//! through [`to_virt`].

use core::sync::atomic::{AtomicBool, Ordering};

pub const PAGE: u64 = 4096;
// The direct map's address arithmetic is the arch layer's (boot-time
// modules below `mm/` use it too).
pub use crate::arch::x86_64::direct_map::{to_phys, to_virt};

static NX: AtomicBool = AtomicBool::new(false);
static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Build the direct map in the current (boot) page table. BSP, first thing
/// at boot, while the identity map is all there is; the APs share the table.
pub fn init_direct_map() {
    let root = super::pagetable::current_root();
    // SAFETY: at this point the identity map covers the page-table pages
    // (they are guest memory), and no other CPU is editing the PML4.
    let pml4 = unsafe { &mut *(root as *mut [u64; 512]) };
    for i in 0..255 {
        if pml4[i] & 1 != 0 {
            assert!(pml4[256 + i] & 1 == 0, "direct map: PML4 slot {} already used", 256 + i);
            pml4[256 + i] = pml4[i];
        }
    }
    super::pagetable::flush_all();
    KERNEL_ROOT.store(root, Ordering::Release);
    // EFER.NXE: the host enables it when the CPU has NX.
    let efer = crate::arch::x86_64::rdmsr(0xc000_0080);
    NX.store(efer & (1 << 11) != 0, Ordering::Release);
}

/// The kernel's page table (CR3 of idle CPUs).
pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(Ordering::Acquire)
}

pub fn nx_enabled() -> bool {
    NX.load(Ordering::Relaxed)
}

/// `size` bytes (multiple of 4 KiB) of contiguous memory aligned to `align`
/// (power of two), from NUMA node `numa` first, then any node.
pub fn alloc_on(size: u64, align: u64, numa: Option<u32>) -> Option<u64> {
    debug_assert!(size % PAGE == 0 && align.is_power_of_two());
    let pages = size / PAGE;
    let try_node = |n: Option<u32>| -> Option<u64> {
        if align <= PAGE {
            return crate::mm::frame::alloc_pages(pages, n);
        }
        // Over-allocate, keep the aligned part, give back head and tail.
        let extra = align / PAGE - 1;
        let pa = crate::mm::frame::alloc_pages(pages + extra, n)?;
        let start = (pa + align - 1) & !(align - 1);
        let head = (start - pa) / PAGE;
        if head > 0 {
            crate::mm::frame::free_pages(pa, head);
        }
        let tail = extra - head;
        if tail > 0 {
            crate::mm::frame::free_pages(start + size, tail);
        }
        Some(start)
    };
    match numa {
        Some(n) => try_node(Some(n)).or_else(|| try_node(None)),
        None => try_node(None),
    }
}

/// As [`alloc_on`] near the calling CPU.
pub fn alloc(size: u64, align: u64) -> Option<u64> {
    alloc_on(size, align, Some(local_numa()))
}

/// As [`alloc`], zero-filled.
pub fn alloc_zeroed(size: u64, align: u64) -> Option<u64> {
    let pa = alloc(size, align)?;
    zero(pa, size);
    Some(pa)
}

pub fn free(pa: u64, size: u64) {
    crate::mm::frame::free_pages(pa, size / PAGE);
}

/// Zero `[pa, pa+size)`.
pub fn zero(pa: u64, size: u64) {
    // SAFETY: the caller owns the range (just allocated); the direct map
    // covers all guest memory.
    unsafe { core::ptr::write_bytes(to_virt(pa), 0, size as usize) };
}

/// LWK NUMA node of the calling CPU.
pub fn local_numa() -> u32 {
    let bp = crate::boot_params::get();
    bp.cores().get(crate::smp::cpu_id() as usize).map_or(0, |c| c.numa_id)
}
