//! Building the boot parameters block from the boot specification.

use crate::error::VmError;
use crate::memory::GuestRegion;
use crate::spec::CpuSpec;
use ihk_abi::boot_params::{
    BootParams, CoreInfo, MemChunk, NumaNode, PhysRegion, KARGS_MAX, MAX_CHUNKS, MAX_CPUS,
    MAX_NUMA_NODES, NUMA_TYPE_DRAM,
};
use ihk_abi::layout::*;

/// Inputs that are not in the specification itself.
pub struct ParamsInput<'a> {
    pub regions: &'a [GuestRegion],
    pub cpus: &'a [CpuSpec],
    /// APIC id of each CPU (same order as `cpus`).
    pub apic_ids: &'a [u32],
    pub kargs: &'a str,
    pub kernel_span: u64,
    pub tsc_khz: u64,
    pub boot_realtime_ns: u64,
    pub boot_tsc: u64,
    /// Distance between two Linux NUMA nodes.
    pub distance: &'a dyn Fn(u32, u32) -> u8,
}

/// Whitespace- or comma-separated words of a kernel argument string.
pub fn karg_words(kargs: &str) -> impl Iterator<Item = &str> {
    kargs
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
}

/// Check the kernel arguments: printable, shorter than the buffer, and
/// containing `hidos` (McKernel's required argument).
pub fn check_kargs(kargs: &str) -> Result<(), VmError> {
    if kargs.len() >= KARGS_MAX {
        return Err(VmError::invalid(
            "kernel arguments",
            format!("{} bytes; at most {} allowed", kargs.len(), KARGS_MAX - 1),
        ));
    }
    if kargs.bytes().any(|b| b == 0 || (b < 0x20 && b != b'\t')) {
        return Err(VmError::invalid(
            "kernel arguments",
            format!("{kargs:?} contains control characters"),
        ));
    }
    if !karg_words(kargs).any(|w| w == "hidos") {
        return Err(VmError::invalid(
            "kernel arguments",
            format!("{kargs:?} must contain \"hidos\""),
        ));
    }
    Ok(())
}

/// Linux NUMA ids used by the partition, sorted: index = LWK NUMA id.
pub fn numa_nodes(regions: &[GuestRegion], cpus: &[CpuSpec]) -> Vec<u32> {
    let mut ids: Vec<u32> = regions
        .iter()
        .map(|r| r.numa_id)
        .chain(cpus.iter().map(|c| c.numa_id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

pub fn build(inp: &ParamsInput) -> Result<Box<BootParams>, VmError> {
    check_kargs(inp.kargs)?;
    let nodes = numa_nodes(inp.regions, inp.cpus);
    if nodes.len() > MAX_NUMA_NODES {
        return Err(VmError::invalid(
            "NUMA nodes",
            format!("{} nodes; at most {MAX_NUMA_NODES}", nodes.len()),
        ));
    }
    if inp.regions.len() > MAX_CHUNKS {
        return Err(VmError::invalid(
            "memory chunks",
            format!("{} guest regions; at most {MAX_CHUNKS}", inp.regions.len()),
        ));
    }
    if inp.cpus.is_empty() || inp.cpus.len() > MAX_CPUS {
        return Err(VmError::invalid(
            "CPUs",
            format!("{} CPUs; expected 1..={MAX_CPUS}", inp.cpus.len()),
        ));
    }
    let lwk_numa = |linux: u32| nodes.iter().position(|&n| n == linux).unwrap() as u32;

    let mut bp = Box::new(BootParams::empty());
    bp.nr_numa_nodes = nodes.len() as u32;
    for (i, &linux) in nodes.iter().enumerate() {
        bp.numa_nodes[i] = NumaNode {
            linux_id: linux,
            mem_type: NUMA_TYPE_DRAM,
        };
        for (j, &other) in nodes.iter().enumerate() {
            bp.numa_distance[i * MAX_NUMA_NODES + j] = (inp.distance)(linux, other);
        }
    }
    bp.nr_chunks = inp.regions.len() as u32;
    for (i, r) in inp.regions.iter().enumerate() {
        bp.chunks[i] = MemChunk {
            start: r.gpa,
            end: r.end(),
            numa_id: lwk_numa(r.numa_id),
            _pad: 0,
        };
    }
    bp.nr_cores = inp.cpus.len() as u32;
    for (i, c) in inp.cpus.iter().enumerate() {
        bp.cores[i] = CoreInfo {
            lwk_id: i as u32,
            linux_cpu: c.linux_cpu,
            apic_id: inp.apic_ids[i],
            numa_id: lwk_numa(c.numa_id),
            ikc_dest_linux_cpu: c.ikc_dest_linux_cpu,
            _pad: 0,
        };
    }
    bp.kargs_len = inp.kargs.len() as u32;
    bp.kargs[..inp.kargs.len()].copy_from_slice(inp.kargs.as_bytes());
    bp.tsc_khz = inp.tsc_khz;
    bp.boot_realtime_ns = inp.boot_realtime_ns;
    bp.boot_tsc = inp.boot_tsc;

    let nr = inp.cpus.len() as u64;
    let area_end = boot_area_end(inp.kernel_span, nr);
    let first = &inp.regions[0];
    if first.gpa != 0 || first.size < area_end.max(MIN_FIRST_CHUNK_SIZE) {
        return Err(VmError::invalid(
            "memory chunk",
            format!(
                "first chunk is {} MiB; it must hold the boot area ({} MiB) and be at least {} MiB",
                first.size >> 20,
                area_end >> 20,
                MIN_FIRST_CHUNK_SIZE >> 20
            ),
        ));
    }
    bp.kernel = PhysRegion {
        phys: KERNEL_PHYS_BASE,
        size: inp.kernel_span,
    };
    bp.boot_area = PhysRegion {
        phys: 0,
        size: area_end,
    };
    bp.kmsg = PhysRegion {
        phys: KMSG_GPA,
        size: KMSG_SIZE,
    };
    bp.monitor = PhysRegion {
        phys: MONITOR_GPA,
        size: MONITOR_SIZE,
    };
    bp.meminfo = PhysRegion {
        phys: MEMINFO_GPA,
        size: MEMINFO_SIZE,
    };
    bp.rusage = PhysRegion {
        phys: RUSAGE_GPA,
        size: RUSAGE_SIZE,
    };
    bp.ikc_master_to_host = PhysRegion {
        phys: IKC_MASTER_TO_HOST_GPA,
        size: IKC_MASTER_RING_SIZE,
    };
    bp.ikc_master_to_lwk = PhysRegion {
        phys: IKC_MASTER_TO_LWK_GPA,
        size: IKC_MASTER_RING_SIZE,
    };
    bp.stacks = PhysRegion {
        phys: stacks_gpa(inp.kernel_span),
        size: nr * BOOT_STACK_SIZE,
    };
    bp.stack_size = BOOT_STACK_SIZE;
    bp.page_tables = PhysRegion {
        phys: PAGE_TABLES_GPA,
        size: PAGE_TABLES_SIZE,
    };
    Ok(bp)
}

/// Distance between Linux NUMA nodes from sysfs (10 local / 20 remote when
/// the node's distance file cannot be read).
pub fn sysfs_distance(a: u32, b: u32) -> u8 {
    let fallback = if a == b { 10 } else { 20 };
    let Ok(s) = std::fs::read_to_string(format!("/sys/devices/system/node/node{a}/distance"))
    else {
        return fallback;
    };
    s.split_whitespace()
        .nth(b as usize)
        .and_then(|v| v.parse().ok())
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(gpa: u64, size: u64, numa: u32) -> GuestRegion {
        GuestRegion {
            gpa,
            size,
            numa_id: numa,
            chunk: 0,
            memfd: -1,
            memfd_offset: 0,
            host_addr: 0x1000 as *mut u8,
        }
    }

    fn cpu(linux: u32, numa: u32) -> CpuSpec {
        CpuSpec {
            linux_cpu: linux,
            numa_id: numa,
            ikc_dest_linux_cpu: 0,
        }
    }

    #[test]
    fn kargs_rules() {
        assert!(check_kargs("hidos").is_ok());
        assert!(check_kargs("foo=1,hidos,bar").is_ok());
        assert!(check_kargs("hidos ksyslogd=0").is_ok());
        assert!(check_kargs("hidosx")
            .unwrap_err()
            .to_string()
            .contains("must contain"));
        assert!(check_kargs("hidos\n").is_err());
        assert!(check_kargs(&"hidos ".repeat(1000)).is_err());
    }

    #[test]
    fn numa_ids_are_remapped_and_distances_filled() {
        let regions = [region(0, 64 << 20, 3), region(64 << 20, 64 << 20, 1)];
        let cpus = [cpu(4, 1), cpu(5, 3)];
        let inp = ParamsInput {
            regions: &regions,
            cpus: &cpus,
            apic_ids: &[8, 10],
            kargs: "hidos",
            kernel_span: 2 << 20,
            tsc_khz: 2_000_000,
            boot_realtime_ns: 1,
            boot_tsc: 2,
            distance: &|a, b| if a == b { 10 } else { 21 },
        };
        let bp = build(&inp).unwrap();
        assert!(bp.is_valid());
        assert_eq!(
            bp.numa_nodes()
                .iter()
                .map(|n| n.linux_id)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(bp.chunks()[0].numa_id, 1);
        assert_eq!(bp.chunks()[1].numa_id, 0);
        assert_eq!(bp.cores()[1].apic_id, 10);
        assert_eq!(bp.cores()[1].numa_id, 1);
        assert_eq!(bp.numa_distance(0, 1), Some(21));
        assert_eq!(bp.numa_distance(1, 1), Some(10));
        assert_eq!(bp.kargs_bytes(), b"hidos");
        assert_eq!(bp.stacks.phys, 0x40_0000);
        assert_eq!(bp.boot_area.size, 0x60_0000);
    }

    #[test]
    fn first_chunk_too_small() {
        let regions = [region(0, 8 << 20, 0)];
        let cpus = [cpu(1, 0)];
        let inp = ParamsInput {
            regions: &regions,
            cpus: &cpus,
            apic_ids: &[1],
            kargs: "hidos",
            kernel_span: 2 << 20,
            tsc_khz: 1,
            boot_realtime_ns: 0,
            boot_tsc: 0,
            distance: &sysfs_distance,
        };
        let e = build(&inp).err().expect("must fail").to_string();
        assert!(e.contains("first chunk is 8 MiB"), "{e}");
    }
}
