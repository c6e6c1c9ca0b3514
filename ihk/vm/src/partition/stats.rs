//! What libihk and ihkmond read from a running partition besides status
//! and kmsg: the rusage page (`ihk_os_get_rusage`), the heartbeat period,
//! and kmsg by position (so ihkmond forwards each line once).

use super::Partition;
use ihk_abi::layout::RUSAGE_GPA;
use ihk_abi::rusage::{RusagePage, RUSAGE_MAGIC};
use std::sync::atomic::Ordering;

/// Resource usage as the LWK publishes it (see `lwk/src/ikc/rusage.rs`):
/// the record `ihk_os_get_rusage` replies with, defined once in the
/// protocol (`ihk-client`), filled here.
pub use ihk_client::proto::libihk::RusageInfo as Rusage;

/// Kernel messages from a position on (see [`Partition::kmsg_since`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KmsgChunk {
    pub text: Vec<u8>,
    /// Position to ask from next time.
    pub next: u64,
    /// Bytes after the asked position already overwritten in the ring.
    pub lost: u64,
}

impl Partition {
    /// The rusage page (CPU times grow at the LWK CPUs' changes of state;
    /// memory figures are refreshed before a CPU halts and, while programs
    /// run, at most every 100 ms).
    pub fn rusage(&self) -> Rusage {
        // SAFETY: the rusage page lies in chunk 0 (host_ptr checks it); it
        // holds the magic and atomics only, valid for any bit pattern, and
        // stays mapped as long as `self`.
        let Ok(page) = (unsafe { self.inner.mem.shared::<RusagePage>(RUSAGE_GPA) }) else {
            return Rusage::default();
        };
        if page.magic != RUSAGE_MAGIC {
            return Rusage::default();
        }
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let ncpus = self.inner.cpus.len();
        Rusage {
            memory_usage: ld(&page.memory_usage),
            memory_max_usage: ld(&page.memory_max_usage),
            memory_kmem_usage: ld(&page.memory_kmem_usage),
            memory_kmem_max_usage: ld(&page.memory_kmem_max_usage),
            memory_numa: self
                .inner
                .numa_linux
                .iter()
                .enumerate()
                .map(|(i, &linux)| (linux, ld(&page.memory_numa_stat[i])))
                .collect(),
            num_threads: ld(&page.num_threads),
            max_num_threads: ld(&page.max_num_threads),
            cpu_user_ns: page.cpu_user_ns[..ncpus].iter().map(ld).collect(),
            cpu_system_ns: page.cpu_system_ns[..ncpus].iter().map(ld).collect(),
        }
    }

    /// The shortest hang-detection window the LWK asks for, in
    /// microseconds (`ihk_heartbeat_ms`; 0 before it booted).
    pub fn heartbeat_period_us(&self) -> u64 {
        self.inner.monitor.heartbeat_period_us()
    }

    /// Kernel messages written from byte position `from` on (positions count
    /// every byte since boot; `clear_kmsg` does not affect them).
    pub fn kmsg_since(&self, from: u64) -> KmsgChunk {
        let (text, next, lost) = self.inner.kmsg.read_since(from);
        KmsgChunk { text, next, lost }
    }

    /// (bytes assigned, bytes the LWK's allocator has free) over all nodes;
    /// None until the allocator is up.
    pub fn memory_totals(&self) -> Option<(u64, u64)> {
        let free = self.free_mem();
        if free.is_empty() {
            return None;
        }
        let assigned = self.inner.mem.regions().iter().map(|r| r.size).sum();
        Some((assigned, free.iter().map(|&(_, b)| b).sum()))
    }
}
