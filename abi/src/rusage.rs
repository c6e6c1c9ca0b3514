//! Rusage pages: resource usage the LWK publishes for `ihk_os_getrusage`
//! (§1.2.2.28). Counters only grow or are overwritten by the LWK; the host
//! reads them with atomics.

use crate::boot_params::{MAX_CPUS, MAX_NUMA_NODES};
use core::sync::atomic::AtomicU64;

pub const RUSAGE_MAGIC: u64 = u64::from_le_bytes(*b"IHKRUSG\0");

#[repr(C)]
pub struct RusagePage {
    pub magic: u64,
    /// Bytes the kernel itself allocated (page tables, stacks, structures).
    pub memory_kmem_usage: AtomicU64,
    /// Bytes currently allocated for user memory.
    pub memory_usage: AtomicU64,
    /// Peak of `memory_usage`.
    pub memory_max_usage: AtomicU64,
    pub num_threads: AtomicU64,
    pub max_num_threads: AtomicU64,
    /// Bytes allocated per LWK NUMA node.
    pub memory_numa_stat: [AtomicU64; MAX_NUMA_NODES],
    /// Nanoseconds each CPU spent in kernel code.
    pub cpu_system_ns: [AtomicU64; MAX_CPUS],
    /// Nanoseconds each CPU spent in user code.
    pub cpu_user_ns: [AtomicU64; MAX_CPUS],
    /// Peak of `memory_kmem_usage`.
    pub memory_kmem_max_usage: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::RUSAGE_SIZE;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(offset_of!(RusagePage, memory_numa_stat), 48);
        assert_eq!(
            offset_of!(RusagePage, cpu_system_ns),
            48 + 8 * MAX_NUMA_NODES
        );
        assert_eq!(
            offset_of!(RusagePage, memory_kmem_max_usage),
            48 + 8 * MAX_NUMA_NODES + 16 * MAX_CPUS
        );
        assert!(size_of::<RusagePage>() as u64 <= RUSAGE_SIZE);
    }
}
