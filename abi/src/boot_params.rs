//! Boot parameters: what the LWK-side functions of the specification
//! (§1.2.3, `ihk_mc_get_*`, `ihk_get_kargs`, `ihk_get_kmsg_buf`) return.
//!
//! The host writes one [`BootParams`] at [`crate::layout::BOOT_PARAMS_GPA`]
//! and enters every vCPU with `rdi` = its guest-physical address. The LWK
//! only reads it. NUMA ids inside (`MemChunk::numa_id`, `CoreInfo::numa_id`)
//! are LWK NUMA ids: indexes into `numa_nodes`, whose entries carry the Linux
//! NUMA id.

/// "IHKBOOT\0" little-endian.
pub const BOOT_PARAMS_MAGIC: u64 = u64::from_le_bytes(*b"IHKBOOT\0");
/// Bumped on any layout change of a struct in this crate.
pub const BOOT_PARAMS_VERSION: u32 = 1;

pub const MAX_NUMA_NODES: usize = 64;
pub const MAX_CHUNKS: usize = 128;
pub const MAX_CPUS: usize = 1024;
/// Kernel argument buffer, including the terminating NUL.
pub const KARGS_MAX: usize = 4096;

/// Memory type of a NUMA node (`type` of `ihk_mc_get_numa_node`).
pub const NUMA_TYPE_DRAM: u32 = 1;

/// A guest-physical region.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRegion {
    pub phys: u64,
    pub size: u64,
}

impl PhysRegion {
    pub const fn end(&self) -> u64 {
        self.phys + self.size
    }
}

/// One NUMA node of the partition (`ihk_mc_get_numa_node`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NumaNode {
    pub linux_id: u32,
    pub mem_type: u32,
}

/// One memory chunk (`ihk_mc_get_memory_chunk`): `[start, end)` guest-physical.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemChunk {
    pub start: u64,
    pub end: u64,
    /// LWK NUMA id (index into `BootParams::numa_nodes`).
    pub numa_id: u32,
    pub _pad: u32,
}

/// One CPU core (`ihk_mc_get_core`, `ihk_mc_get_ikc_cpu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreInfo {
    /// LWK CPU id (== index in `BootParams::cores`, also passed in `rdx`).
    pub lwk_id: u32,
    pub linux_cpu: u32,
    /// x2APIC id of the vCPU (the host uses the Linux CPU's APIC id).
    pub apic_id: u32,
    /// LWK NUMA id.
    pub numa_id: u32,
    /// Linux CPU that receives this CPU's IKC messages.
    pub ikc_dest_linux_cpu: u32,
    pub _pad: u32,
}

/// Boot parameters, at `rdi` on entry.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BootParams {
    pub magic: u64,
    pub version: u32,
    /// `size_of::<BootParams>()` as the host built it.
    pub size: u32,
    pub nr_numa_nodes: u32,
    pub nr_chunks: u32,
    pub nr_cores: u32,
    /// Length of the kernel argument string without the NUL.
    pub kargs_len: u32,
    /// TSC frequency in kHz (the guest TSC runs at the host TSC's rate).
    pub tsc_khz: u64,
    /// Host CLOCK_REALTIME in ns at `boot_tsc`.
    pub boot_realtime_ns: u64,
    /// TSC value (as the guest reads it) at `boot_realtime_ns`.
    pub boot_tsc: u64,
    /// Where the image was loaded: physical address of `KERNEL_VIRT_BASE`
    /// (also in `rsi` on entry) and the mapped span.
    pub kernel: PhysRegion,
    /// Boot area in chunk 0 (boot params, tables, image, stacks): `[0, end)`.
    /// Memory of the chunks outside it is free for the LWK.
    pub boot_area: PhysRegion,
    pub kmsg: PhysRegion,
    pub monitor: PhysRegion,
    pub meminfo: PhysRegion,
    pub rusage: PhysRegion,
    pub ikc_master_to_host: PhysRegion,
    pub ikc_master_to_lwk: PhysRegion,
    /// Per-CPU boot stacks: CPU n's stack is
    /// `[stacks.phys + n * stack_size, + stack_size)`.
    pub stacks: PhysRegion,
    pub stack_size: u64,
    pub page_tables: PhysRegion,
    pub numa_nodes: [NumaNode; MAX_NUMA_NODES],
    /// Distance matrix, `numa_distance[i * MAX_NUMA_NODES + j]` (§1.2.3.4).
    pub numa_distance: [u8; MAX_NUMA_NODES * MAX_NUMA_NODES],
    pub chunks: [MemChunk; MAX_CHUNKS],
    pub cores: [CoreInfo; MAX_CPUS],
    /// NUL-terminated kernel arguments (`ihk_get_kargs`).
    pub kargs: [u8; KARGS_MAX],
}

impl BootParams {
    /// An empty, valid-magic parameter block.
    pub const fn empty() -> BootParams {
        BootParams {
            magic: BOOT_PARAMS_MAGIC,
            version: BOOT_PARAMS_VERSION,
            size: core::mem::size_of::<BootParams>() as u32,
            nr_numa_nodes: 0,
            nr_chunks: 0,
            nr_cores: 0,
            kargs_len: 0,
            tsc_khz: 0,
            boot_realtime_ns: 0,
            boot_tsc: 0,
            kernel: PhysRegion { phys: 0, size: 0 },
            boot_area: PhysRegion { phys: 0, size: 0 },
            kmsg: PhysRegion { phys: 0, size: 0 },
            monitor: PhysRegion { phys: 0, size: 0 },
            meminfo: PhysRegion { phys: 0, size: 0 },
            rusage: PhysRegion { phys: 0, size: 0 },
            ikc_master_to_host: PhysRegion { phys: 0, size: 0 },
            ikc_master_to_lwk: PhysRegion { phys: 0, size: 0 },
            stacks: PhysRegion { phys: 0, size: 0 },
            stack_size: 0,
            page_tables: PhysRegion { phys: 0, size: 0 },
            numa_nodes: [NumaNode {
                linux_id: 0,
                mem_type: 0,
            }; MAX_NUMA_NODES],
            numa_distance: [0; MAX_NUMA_NODES * MAX_NUMA_NODES],
            chunks: [MemChunk {
                start: 0,
                end: 0,
                numa_id: 0,
                _pad: 0,
            }; MAX_CHUNKS],
            cores: [CoreInfo {
                lwk_id: 0,
                linux_cpu: 0,
                apic_id: 0,
                numa_id: 0,
                ikc_dest_linux_cpu: 0,
                _pad: 0,
            }; MAX_CPUS],
            kargs: [0; KARGS_MAX],
        }
    }

    /// True when magic, version and size match this crate.
    pub fn is_valid(&self) -> bool {
        self.magic == BOOT_PARAMS_MAGIC
            && self.version == BOOT_PARAMS_VERSION
            && self.size as usize == core::mem::size_of::<BootParams>()
            && self.nr_numa_nodes as usize <= MAX_NUMA_NODES
            && self.nr_chunks as usize <= MAX_CHUNKS
            && self.nr_cores as usize <= MAX_CPUS
            && (self.kargs_len as usize) < KARGS_MAX
    }

    pub fn numa_nodes(&self) -> &[NumaNode] {
        &self.numa_nodes[..(self.nr_numa_nodes as usize).min(MAX_NUMA_NODES)]
    }

    pub fn chunks(&self) -> &[MemChunk] {
        &self.chunks[..(self.nr_chunks as usize).min(MAX_CHUNKS)]
    }

    pub fn cores(&self) -> &[CoreInfo] {
        &self.cores[..(self.nr_cores as usize).min(MAX_CPUS)]
    }

    /// Kernel arguments as bytes (no NUL).
    pub fn kargs_bytes(&self) -> &[u8] {
        &self.kargs[..(self.kargs_len as usize).min(KARGS_MAX - 1)]
    }

    /// Kernel arguments as text (`ihk_get_kargs`); `None` if not UTF-8.
    pub fn kargs_str(&self) -> Option<&str> {
        core::str::from_utf8(self.kargs_bytes()).ok()
    }

    /// Distance between LWK NUMA nodes `i` and `j`.
    pub fn numa_distance(&self, i: usize, j: usize) -> Option<u8> {
        let n = self.nr_numa_nodes as usize;
        if i < n && j < n {
            Some(self.numa_distance[i * MAX_NUMA_NODES + j])
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::BOOT_PARAMS_MAX_SIZE;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<PhysRegion>(), 16);
        assert_eq!(size_of::<NumaNode>(), 8);
        assert_eq!(size_of::<MemChunk>(), 24);
        assert_eq!(size_of::<CoreInfo>(), 24);
        assert_eq!(offset_of!(BootParams, magic), 0);
        assert_eq!(offset_of!(BootParams, version), 8);
        assert_eq!(offset_of!(BootParams, size), 12);
        assert_eq!(offset_of!(BootParams, nr_numa_nodes), 16);
        assert_eq!(offset_of!(BootParams, kargs_len), 28);
        assert_eq!(offset_of!(BootParams, tsc_khz), 32);
        assert_eq!(offset_of!(BootParams, boot_realtime_ns), 40);
        assert_eq!(offset_of!(BootParams, boot_tsc), 48);
        assert_eq!(offset_of!(BootParams, kernel), 56);
        assert_eq!(offset_of!(BootParams, boot_area), 72);
        assert_eq!(offset_of!(BootParams, kmsg), 88);
        assert_eq!(offset_of!(BootParams, monitor), 104);
        assert_eq!(offset_of!(BootParams, meminfo), 120);
        assert_eq!(offset_of!(BootParams, rusage), 136);
        assert_eq!(offset_of!(BootParams, ikc_master_to_host), 152);
        assert_eq!(offset_of!(BootParams, ikc_master_to_lwk), 168);
        assert_eq!(offset_of!(BootParams, stacks), 184);
        assert_eq!(offset_of!(BootParams, stack_size), 200);
        assert_eq!(offset_of!(BootParams, page_tables), 208);
        assert_eq!(offset_of!(BootParams, numa_nodes), 224);
        assert_eq!(
            offset_of!(BootParams, numa_distance),
            224 + 8 * MAX_NUMA_NODES
        );
        let chunks = 224 + 8 * MAX_NUMA_NODES + MAX_NUMA_NODES * MAX_NUMA_NODES;
        assert_eq!(offset_of!(BootParams, chunks), chunks);
        let cores = chunks + 24 * MAX_CHUNKS;
        assert_eq!(offset_of!(BootParams, cores), cores);
        let kargs = cores + 24 * MAX_CPUS;
        assert_eq!(offset_of!(BootParams, kargs), kargs);
        assert_eq!(size_of::<BootParams>(), kargs + KARGS_MAX);
        assert!(size_of::<BootParams>() as u64 <= BOOT_PARAMS_MAX_SIZE);
    }

    #[test]
    fn accessors_clamp_counts() {
        let mut bp = BootParams::empty();
        assert!(bp.is_valid());
        bp.nr_numa_nodes = 2;
        bp.numa_distance[1] = 20;
        assert_eq!(bp.numa_distance(0, 1), Some(20));
        assert_eq!(bp.numa_distance(0, 2), None);
        bp.nr_cores = MAX_CPUS as u32 + 5;
        assert!(!bp.is_valid());
        assert_eq!(bp.cores().len(), MAX_CPUS);
    }
}
