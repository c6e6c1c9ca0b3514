//! The rusage page the host reads for `ihk_os_get_rusage` (§1.2.2.28):
//! its memory figures.
//!
//! CPU times are charged exactly at each CPU's changes of state
//! (`monitor::set_cpu_state`), not sampled by a tick (there is none).
//! The memory figures are refreshed by a CPU before it halts, and at an
//! entry into the kernel from user mode when the last refresh is older
//! than [`REFRESH_MS`]: user memory and threads summed over the processes,
//! kernel memory = frames in use (frame allocator) minus user memory, per
//! NUMA node the frames in use, and the peaks.

use core::sync::atomic::{AtomicU64, Ordering};
use ihk_abi::boot_params::MAX_NUMA_NODES;
use ihk_abi::meminfo::MemInfoPage;
use ihk_abi::rusage::{RusagePage, RUSAGE_MAGIC};

use crate::arch::x86_64::tsc;

/// Longest age of the memory figures while a program makes system calls.
const REFRESH_MS: u64 = 100;
/// TSC of the last refresh, any CPU.
static LAST: AtomicU64 = AtomicU64::new(0);

fn page<T>(phys: u64) -> &'static T {
    // SAFETY: the boot parameters name pages of the boot area, mapped in the
    // direct map for the kernel's whole life; the host initialised them.
    unsafe { &*(crate::mm::phys::to_virt(phys) as *const T) }
}

fn rusage() -> Option<&'static RusagePage> {
    let bp = crate::boot_params::get();
    let r: &RusagePage = page(bp.rusage.phys);
    (r.magic == RUSAGE_MAGIC).then_some(r)
}

/// Refresh the memory figures now.
pub fn refresh() {
    let Some(r) = rusage() else { return };
    LAST.store(tsc::now(), Ordering::Relaxed);
    memory(r);
}

/// Refresh the memory figures if the last refresh is older than
/// [`REFRESH_MS`].
pub fn refresh_if_due() {
    let now = tsc::now();
    if now.saturating_sub(LAST.load(Ordering::Relaxed)) >= tsc::ms_to_ticks(REFRESH_MS) {
        refresh();
    }
}

fn memory(r: &RusagePage) {
    let bp = crate::boot_params::get();
    let mi: &MemInfoPage = page(bp.meminfo.phys);
    let mut in_use = 0u64;
    for n in 0..mi.nodes().min(MAX_NUMA_NODES) {
        let total = mi.total_bytes[n].load(Ordering::Relaxed);
        let free = mi.free_bytes[n].load(Ordering::Relaxed);
        let used = total.saturating_sub(free);
        r.memory_numa_stat[n].store(used, Ordering::Relaxed);
        in_use += used;
    }
    let (mut user, mut threads) = (0u64, 0u64);
    crate::process::service::for_each_process(|p| {
        threads += p.live_threads.load(Ordering::Relaxed) as u64;
        // Never wait here (an interrupt entry may be refreshing): an
        // address space being changed right now is left out this time.
        if let Some(a) = p.aspace.try_lock() {
            user += a.backed_bytes;
        }
    });
    let kmem = in_use.saturating_sub(user);
    r.memory_usage.store(user, Ordering::Relaxed);
    r.memory_max_usage.fetch_max(user, Ordering::Relaxed);
    r.memory_kmem_usage.store(kmem, Ordering::Relaxed);
    r.memory_kmem_max_usage.fetch_max(kmem, Ordering::Relaxed);
    r.num_threads.store(threads, Ordering::Relaxed);
    r.max_num_threads.fetch_max(threads, Ordering::Relaxed);
}
