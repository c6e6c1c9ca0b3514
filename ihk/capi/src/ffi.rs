//! The C types of `ihklib.h`, `#[repr(C)]`, with their layout checked in
//! the tests (and against the header by the C test).

use std::os::raw::{c_int, c_ulong};

pub const IHK_MAX_NUM_NUMA_NODES: usize = 1024;
pub const IHK_MAX_NUM_CPUS: usize = 1024;
pub const IHK_MAX_NUM_PGSIZES: usize = 8;
pub const IHK_OS_PGSIZE_4KB: usize = 0;
pub const IHKLIB_ERR_MSG_SIZE: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IhkMemChunk {
    pub size: c_ulong,
    pub numa_node_number: c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IhkIkcCpuMap {
    pub src_cpu: c_int,
    pub dst_cpu: c_int,
}

#[repr(C)]
pub struct IhkOsRusage {
    pub memory_stat_rss: [c_ulong; IHK_MAX_NUM_PGSIZES],
    pub memory_stat_mapped_file: [c_ulong; IHK_MAX_NUM_PGSIZES],
    pub memory_max_usage: c_ulong,
    pub memory_kmem_usage: c_ulong,
    pub memory_kmem_max_usage: c_ulong,
    pub memory_numa_stat: [c_ulong; IHK_MAX_NUM_NUMA_NODES],
    pub cpuacct_stat_system: c_ulong,
    pub cpuacct_stat_user: c_ulong,
    pub cpuacct_usage: c_ulong,
    pub cpuacct_usage_percpu: [c_ulong; IHK_MAX_NUM_CPUS],
    pub num_threads: c_int,
    pub max_num_threads: c_int,
}

/// `enum ihklib_os_status` value of a status string.
pub fn status_number(s: &str) -> Option<c_int> {
    Some(match s {
        "INACTIVE" => 0,
        "BOOTING" => 1,
        "RUNNING" => 2,
        "SHUTDOWN" => 3,
        "PANIC" => 4,
        "HUNGUP" => 5,
        "FREEZING" => 6,
        "FROZEN" => 7,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_ihklib_h() {
        assert_eq!(size_of::<IhkMemChunk>(), 16);
        assert_eq!(size_of::<IhkIkcCpuMap>(), 8);
        assert_eq!(offset_of!(IhkOsRusage, memory_max_usage), 128);
        assert_eq!(offset_of!(IhkOsRusage, memory_numa_stat), 152);
        assert_eq!(offset_of!(IhkOsRusage, cpuacct_stat_system), 152 + 8 * 1024);
        assert_eq!(
            offset_of!(IhkOsRusage, cpuacct_usage_percpu),
            176 + 8 * 1024
        );
        assert_eq!(offset_of!(IhkOsRusage, num_threads), 176 + 16 * 1024);
        assert_eq!(size_of::<IhkOsRusage>(), 184 + 16 * 1024);
        assert_eq!(status_number("FROZEN"), Some(7));
        assert_eq!(status_number("x"), None);
    }
}
