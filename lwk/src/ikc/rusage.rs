//! The rusage page the host reads for `ihk_os_get_rusage` (§1.2.2.28),
//! updated at every heartbeat tick.
//!
//! CPU time is sampled as Linux's tick-based accounting does: each tick
//! charges the time since the previous tick of its CPU to user time when it
//! interrupted user mode, to system time when it interrupted kernel code,
//! and to neither when the CPU was idle or frozen. CPU 0 also refreshes the
//! memory figures: user memory and threads summed over the processes,
//! kernel memory = frames in use (frame allocator) minus user memory, per
//! NUMA node the frames in use, and the peaks.

use core::sync::atomic::{AtomicU64, Ordering};
use ihk_abi::boot_params::{MAX_CPUS, MAX_NUMA_NODES};
use ihk_abi::meminfo::MemInfoPage;
use ihk_abi::monitor::MonitorPage;
use ihk_abi::rusage::{RusagePage, RUSAGE_MAGIC};
use ihk_abi::CpuState;

use crate::arch::x86_64::tsc;

/// TSC of each CPU's previous sample (0: none yet).
static LAST: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

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

/// Timer interrupt of this CPU; `from_user`: it interrupted user mode.
pub fn sample(from_user: bool) {
    let Some(r) = rusage() else { return };
    let me = crate::smp::cpu_id() as usize;
    if me >= MAX_CPUS {
        return;
    }
    let now = tsc::now();
    let last = LAST[me].swap(now, Ordering::Relaxed);
    if last != 0 && now > last {
        let ns = ticks_to_ns(now - last);
        let bp = crate::boot_params::get();
        let mon: &MonitorPage = page(bp.monitor.phys);
        let state = mon.cpu(me).map_or(CpuState::Offline, |s| s.state());
        if from_user {
            r.cpu_user_ns[me].fetch_add(ns, Ordering::Relaxed);
        } else if !matches!(state, CpuState::Idle | CpuState::Frozen) {
            r.cpu_system_ns[me].fetch_add(ns, Ordering::Relaxed);
        }
    }
    if me == 0 {
        memory(r);
    }
}

fn ticks_to_ns(ticks: u64) -> u64 {
    let khz = crate::boot_params::get().tsc_khz.max(1) as u128;
    (ticks as u128 * 1_000_000 / khz) as u64
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
        // Never wait in the timer interrupt: an address space being
        // changed right now is left out of this tick's figure.
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
