//! Memory-information page: free and total bytes per LWK NUMA node, kept up
//! to date by the LWK's frame allocator so the host can answer
//! `ihk_os_query_free_mem` (§1.2.2.25) without asking the LWK.

use crate::boot_params::MAX_NUMA_NODES;
use core::sync::atomic::{AtomicU64, Ordering};

pub const MEMINFO_MAGIC: u64 = u64::from_le_bytes(*b"IHKMEM\0\0");
/// Frame-allocator regions published for memory dumps (more are not listed).
pub const MAX_FRAME_REGIONS: usize = 64;

/// One region of the LWK's frame allocator: `pages` 4 KiB pages from
/// `base_pa`, their allocation bitmap (bit set = allocated, LSB first) at
/// `bitmap_pa`. Read by the host for `ihk_os_makedumpfile` level 24.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameRegion {
    pub bitmap_pa: u64,
    pub base_pa: u64,
    pub pages: u64,
}

#[repr(C)]
pub struct MemInfoPage {
    pub magic: u64,
    /// Number of valid entries; 0 until the LWK's allocator is up.
    pub nr_numa_nodes: AtomicU64,
    pub free_bytes: [AtomicU64; MAX_NUMA_NODES],
    pub total_bytes: [AtomicU64; MAX_NUMA_NODES],
    /// Number of valid `frame_regions`, written once after them (Release).
    pub nr_frame_regions: AtomicU64,
    pub frame_regions: [FrameRegion; MAX_FRAME_REGIONS],
}

impl MemInfoPage {
    pub fn nodes(&self) -> usize {
        (self.nr_numa_nodes.load(Ordering::Acquire) as usize).min(MAX_NUMA_NODES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::MEMINFO_SIZE;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(offset_of!(MemInfoPage, free_bytes), 16);
        assert_eq!(
            offset_of!(MemInfoPage, total_bytes),
            16 + 8 * MAX_NUMA_NODES
        );
        assert_eq!(
            offset_of!(MemInfoPage, nr_frame_regions),
            16 + 16 * MAX_NUMA_NODES
        );
        assert_eq!(size_of::<FrameRegion>(), 24);
        assert!(size_of::<MemInfoPage>() as u64 <= MEMINFO_SIZE);
    }
}
