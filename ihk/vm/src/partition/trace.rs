//! The LWK's noise trace (`ihk_abi::trace`): each CPU's ring of kernel
//! entries from user mode and its KVM steal time, read from guest memory
//! where the monitor page says the LWK put them.

use super::Partition;
use ihk_abi::layout::BOOT_PARAMS_GPA;
use ihk_abi::trace::{valid_range, Entry, TraceCpu, TRACE_CPU_BYTES, TRACE_MAGIC, TRACE_RECORDS};
use ihk_abi::BootParams;
use std::sync::atomic::Ordering;

pub use ihk_client::proto::libihk::{CpuTrace, TraceEntry, TraceInfo};

impl Partition {
    /// Every CPU's trace (no CPUs before the LWK published its blocks).
    pub fn trace(&self) -> TraceInfo {
        // SAFETY: the boot parameters lie in chunk 0 (host_ptr checks it);
        // the host wrote them before boot and nobody changes tsc_khz.
        let tsc_khz = unsafe { self.inner.mem.shared::<BootParams>(BOOT_PARAMS_GPA) }
            .map_or(0, |bp| bp.tsc_khz);
        let base = self.inner.monitor.trace_phys();
        let cpus = if base == 0 {
            Vec::new()
        } else {
            (0..self.inner.cpus.len())
                // The LWK wrote `base`: an address near 2^64 ends the list
                // instead of overflowing.
                .map_while(|i| {
                    base.checked_add(i as u64 * TRACE_CPU_BYTES)
                        .and_then(|gpa| self.cpu_trace(i, gpa))
                })
                .collect()
        };
        TraceInfo { tsc_khz, cpus }
    }

    fn cpu_trace(&self, i: usize, gpa: u64) -> Option<CpuTrace> {
        // SAFETY: host_ptr checks that the block lies in guest memory; it
        // holds atomics only (valid for any bit pattern) and stays mapped as
        // long as `self`.
        let b = unsafe { self.inner.mem.shared::<TraceCpu>(gpa) }.ok()?;
        if b.magic.load(Ordering::Acquire) != TRACE_MAGIC {
            return None;
        }
        let before = b.written.load(Ordering::Acquire);
        let first = before.saturating_sub(TRACE_RECORDS as u64);
        let copied: Vec<(u64, u64)> = (first..before)
            .map(|n| {
                let r = &b.records[(n % TRACE_RECORDS as u64) as usize];
                (r.tsc.load(Ordering::Relaxed), r.info.load(Ordering::Relaxed))
            })
            .collect();
        let after = b.written.load(Ordering::Acquire);
        let keep = valid_range(before, after);
        let records = copied
            .into_iter()
            .zip(first..before)
            .filter(|(_, n)| keep.contains(n))
            .map(|((tsc, info), _)| {
                let e = Entry::unpack(tsc, info);
                TraceEntry { tsc: e.tsc, ticks: e.ticks, cause: e.cause, detail: e.detail }
            })
            .collect();
        Some(CpuTrace {
            lwk_cpu: i as u32,
            linux_cpu: self.inner.cpus[i].0,
            entries: before,
            steal_ns: (b.steal_enabled.load(Ordering::Acquire) != 0).then(|| b.steal.read_ns()),
            records,
        })
    }
}
