//! Address arithmetic of the kernel's direct map of guest memory (PML4
//! entries 256..; built at boot by `mm::phys::init_direct_map`). Here, below
//! every layer, because the boot-time modules (kmsg, monitor, boot
//! parameters) reach their shared pages through it before `mm/` exists.

/// Virtual address of physical address 0 in the kernel's direct map
/// (shared with the host's memory dumps through the ABI crate).
pub const DIRECT_MAP_BASE: u64 = ihk_abi::layout::DIRECT_MAP_BASE;

/// Kernel-virtual address of physical address `pa`.
#[inline]
pub fn to_virt(pa: u64) -> *mut u8 {
    (pa + DIRECT_MAP_BASE) as *mut u8
}

/// Physical address of a direct-map address.
#[inline]
pub fn to_phys(va: *const u8) -> u64 {
    va as u64 - DIRECT_MAP_BASE
}
