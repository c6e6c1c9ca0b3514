//! Types of the requests that only libihk and ihkmond use (the commands do
//! not): memory-reservation settings (and their checks, which libihk runs
//! before sending and ihkd applies), monitoring eventfds and events, the
//! rusage and dump results, and ihkmond's periodic view of an instance.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{IhkError, IhkResult};

/// `ihk_reserve_mem_conf` keys (§1.2.1.6), numbered as in `ihklib.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemConfKey {
    /// Non-zero: spread the reservation evenly over the NUMA nodes.
    BalancedEnable = 0,
    /// Non-zero: reserve what is available up to the requested total.
    BalancedBestEffort = 1,
    /// Largest mean deviation from the average, in % of the average.
    BalancedVarianceLimit = 2,
    /// Smallest physically contiguous piece requested, in bytes.
    MinChunkSize = 3,
    /// Share of free memory that `ALL` / -1 and balanced mode use, 1-98 %.
    MaxSizeRatioAll = 4,
    /// Seconds a reservation may take.
    Timeout = 5,
}

impl MemConfKey {
    pub fn from_c(key: i32) -> Option<MemConfKey> {
        use MemConfKey::*;
        Some(match key {
            0 => BalancedEnable,
            1 => BalancedBestEffort,
            2 => BalancedVarianceLimit,
            3 => MinChunkSize,
            4 => MaxSizeRatioAll,
            5 => Timeout,
            _ => return None,
        })
    }

    /// The `KEY=VAL` name of `ihk_reserve_mem_conf_str` (§1.2.1.7; the
    /// specification's table spells the last one `..._MEM_TIMEOUT`, and
    /// both spellings are accepted).
    pub fn from_env_name(name: &str) -> Option<MemConfKey> {
        use MemConfKey::*;
        Some(match name {
            "IHK_RESERVE_MEM_BALANCED_ENABLE" => BalancedEnable,
            "IHK_RESERVE_MEM_BALANCED_BEST_EFFORT" => BalancedBestEffort,
            "IHK_RESERVE_MEM_BALANCED_VARIANCE_LIMIT" => BalancedVarianceLimit,
            "IHK_RESERVE_MEM_MIN_CHUNK_SIZE" => MinChunkSize,
            "IHK_RESERVE_MEM_MAX_SIZE_RATIO_ALL" => MaxSizeRatioAll,
            "IHK_RESERVE_MEM_TIMEOUT" | "IHK_RESERVE_MEM_MEM_TIMEOUT" => Timeout,
            _ => return None,
        })
    }
}

/// The settings; `Default` is the specification's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemConf {
    pub balanced: bool,
    pub best_effort: bool,
    /// Percent; `None`: no limit.
    pub variance_limit: Option<u64>,
    /// Bytes.
    pub min_chunk_size: u64,
    /// Percent of free memory for ALL and balanced mode.
    pub max_size_ratio_all: u64,
    pub timeout: Duration,
}

impl Default for MemConf {
    fn default() -> Self {
        MemConf {
            balanced: false,
            best_effort: false,
            variance_limit: None,
            min_chunk_size: 4096,
            max_size_ratio_all: 98,
            timeout: Duration::from_secs(30),
        }
    }
}

impl MemConf {
    /// Apply one setting; a bad value is EINVAL and changes nothing.
    pub fn set(&mut self, key: MemConfKey, value: i64) -> IhkResult<()> {
        let bad = |expected: &str| {
            Err(IhkError::inval(format!(
                "{key:?} = {value}: expected {expected}"
            )))
        };
        match key {
            MemConfKey::BalancedEnable => self.balanced = value != 0,
            MemConfKey::BalancedBestEffort => self.best_effort = value != 0,
            MemConfKey::BalancedVarianceLimit => {
                if value < 0 {
                    return bad("a percentage of 0 or more");
                }
                self.variance_limit = Some(value as u64);
            }
            MemConfKey::MinChunkSize => {
                if value < 4096 {
                    return bad("a size of at least 4096 bytes");
                }
                self.min_chunk_size = value as u64;
            }
            MemConfKey::MaxSizeRatioAll => {
                if !(1..=98).contains(&value) {
                    return bad("a percentage from 1 to 98");
                }
                self.max_size_ratio_all = value as u64;
            }
            MemConfKey::Timeout => {
                if value <= 0 {
                    return bad("a positive number of seconds");
                }
                self.timeout = Duration::from_secs(value as u64);
            }
        }
        Ok(())
    }

    /// Smallest page size (KiB) a reservation may use.
    pub fn min_page_kb(&self) -> u64 {
        if self.min_chunk_size > 2 << 20 {
            1 << 20
        } else if self.min_chunk_size > 4096 {
            2 << 10
        } else {
            4
        }
    }
}

/// `ihk_os_get_eventfd` types (§1.2.2.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// 0: kernel + user memory exceeded (assigned - 2 MiB).
    Memory,
    /// 2: the OS hung up or panicked.
    Status,
}

impl EventType {
    pub fn from_c(t: i32) -> Option<EventType> {
        match t {
            0 => Some(EventType::Memory),
            2 => Some(EventType::Status),
            _ => None,
        }
    }
}

/// What ihkmond found (it reports, ihkd records it and signals eventfds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorEvent {
    /// A CPU stayed in the kernel with its heartbeat stopped: status HUNGUP.
    Hangup { lwk_cpu: u32 },
    /// The LWK panicked (status PANIC already).
    Panic,
    /// Memory in use exceeded (assigned - 2 MiB).
    MemoryThreshold,
}

/// One LWK CPU as ihkmond sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuWatch {
    pub lwk_cpu: u32,
    pub linux_cpu: u32,
    pub heartbeat: u64,
    /// An `ihk_abi::CpuState` value.
    pub state: u32,
}

/// ihkmond's periodic view of one instance (reply to `os_watch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchInfo {
    /// Counts boots of this instance; events name the boot they are about.
    pub boot: u64,
    pub status: String,
    pub heartbeat_period_us: u64,
    pub cpus: Vec<CpuWatch>,
    /// Kernel messages from the asked position (when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kmsg: Option<KmsgPiece>,
    /// (bytes assigned, bytes free in the LWK's allocator), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<(u64, u64)>,
}

/// Kernel messages by position (positions count every byte since boot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsgPiece {
    pub text: String,
    pub next: u64,
    /// Bytes overwritten before they could be read.
    pub lost: u64,
}

/// Reply to `os_get_rusage` (the LWK's figures; see `ihk_os_rusage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RusageInfo {
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    pub memory_kmem_usage: u64,
    pub memory_kmem_max_usage: u64,
    /// (Linux NUMA node, bytes in use).
    pub memory_numa: Vec<(u32, u64)>,
    pub num_threads: u64,
    pub max_num_threads: u64,
    /// Per LWK CPU, nanoseconds.
    pub cpu_user_ns: Vec<u64>,
    pub cpu_system_ns: Vec<u64>,
}

/// Reply to `os_info`: NUMA nodes and page sizes of the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    /// Linux NUMA nodes the instance has memory or CPUs on, ascending.
    pub numa_nodes: Vec<u32>,
    /// Page sizes in bytes, ascending.
    pub pagesizes: Vec<u64>,
}

/// Reply to `os_dump`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpInfo {
    pub file_size: u64,
    pub memory_bytes: u64,
    pub segments: u64,
    pub cpus_with_registers: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_numbers() {
        assert_eq!(MemConfKey::from_c(0), Some(MemConfKey::BalancedEnable));
        assert_eq!(MemConfKey::from_c(5), Some(MemConfKey::Timeout));
        assert_eq!(MemConfKey::from_c(6), None);
        assert_eq!(MemConfKey::from_c(-1), None);
        assert_eq!(
            MemConfKey::from_env_name("IHK_RESERVE_MEM_MEM_TIMEOUT"),
            Some(MemConfKey::Timeout)
        );
        assert_eq!(EventType::from_c(0), Some(EventType::Memory));
        assert_eq!(EventType::from_c(2), Some(EventType::Status));
        assert_eq!(EventType::from_c(1), None);
    }
}

/// Reply to `os_trace`: each LWK CPU's noise trace (`ihk_abi::trace`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceInfo {
    /// TSC frequency of the LWK (the host's TSC), to turn ticks into time.
    pub tsc_khz: u64,
    pub cpus: Vec<CpuTrace>,
}

/// One LWK CPU's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTrace {
    pub lwk_cpu: u32,
    pub linux_cpu: u32,
    /// Kernel entries from user mode since boot (the ring keeps the last).
    pub entries: u64,
    /// KVM steal time of the vCPU in ns (None: not offered by the host).
    pub steal_ns: Option<u64>,
    /// The entries still in the ring, oldest first.
    pub records: Vec<TraceEntry>,
}

/// One kernel entry from user mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// TSC at entry.
    pub tsc: u64,
    /// Time in the kernel until the return to user mode, in TSC ticks.
    pub ticks: u32,
    /// Vector (< 256) or `ihk_abi::trace::CAUSE_SYSCALL` (256).
    pub cause: u16,
    /// System-call number for a system call, else 0.
    pub detail: u16,
}
