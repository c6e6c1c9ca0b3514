//! What the caller hands in to boot a partition.

use std::os::fd::RawFd;

/// One reserved memory chunk.
///
/// `host_addr` is a `MAP_SHARED` mapping of `memfd` at `memfd_offset`,
/// already populated and locked by the caller; it must stay mapped until the
/// [`crate::Partition`] is dropped. `size` must be a multiple of 2 MiB and
/// `host_addr` 2 MiB aligned is recommended (huge pages stay huge in the
/// guest).
#[derive(Clone, Debug)]
pub struct ChunkSpec {
    pub host_addr: *mut u8,
    pub size: u64,
    /// Linux NUMA node of the memory.
    pub numa_id: u32,
    pub memfd: RawFd,
    /// Offset of `host_addr`'s first byte in `memfd`.
    pub memfd_offset: u64,
}

// SAFETY: the chunk is shared memory owned by the caller for the partition's
// lifetime (see the type's contract); the pointer is only dereferenced through
// bounds-checked guest-memory accessors.
unsafe impl Send for ChunkSpec {}
unsafe impl Sync for ChunkSpec {}

/// One CPU assigned to the partition (LWK CPU ids follow the order given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuSpec {
    /// Host CPU the vCPU thread is pinned to.
    pub linux_cpu: u32,
    /// Linux NUMA node of that CPU.
    pub numa_id: u32,
    /// Linux CPU that serves this CPU's IKC messages (IKC map).
    pub ikc_dest_linux_cpu: u32,
}

/// Everything needed to boot one OS instance.
#[derive(Clone, Debug)]
pub struct BootSpec {
    /// The LWK ELF image (see [`crate::validate_image`]).
    pub image: Vec<u8>,
    /// Kernel arguments; must contain the word `hidos`.
    pub kargs: String,
    pub cpus: Vec<CpuSpec>,
    pub chunks: Vec<ChunkSpec>,
}
