//! The TSC as the kernel's clock: frequency from the boot parameters.

use core::sync::atomic::{AtomicU64, Ordering};

static TSC_KHZ: AtomicU64 = AtomicU64::new(0);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static BOOT_REALTIME_NS: AtomicU64 = AtomicU64::new(0);

/// `khz` and the host's (TSC, realtime) pair from the boot parameters (the
/// host makes the guest TSC equal to its own).
pub fn init(khz: u64, boot_tsc: u64, boot_realtime_ns: u64) {
    TSC_KHZ.store(khz.max(1), Ordering::Relaxed);
    BOOT_TSC.store(boot_tsc, Ordering::Relaxed);
    BOOT_REALTIME_NS.store(boot_realtime_ns, Ordering::Relaxed);
}

/// Wall-clock time (ns since the Unix epoch) at TSC value `tsc`.
pub fn realtime_ns(tsc: u64) -> u64 {
    let khz = TSC_KHZ.load(Ordering::Relaxed).max(1) as u128;
    let delta = tsc.wrapping_sub(BOOT_TSC.load(Ordering::Relaxed)) as i64 as i128;
    let ns = delta * 1_000_000 / khz as i128;
    (BOOT_REALTIME_NS.load(Ordering::Relaxed) as i128 + ns).max(0) as u64
}

pub fn now() -> u64 {
    // SAFETY: rdtsc has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks in `ms` milliseconds.
pub fn ms_to_ticks(ms: u64) -> u64 {
    ms.saturating_mul(TSC_KHZ.load(Ordering::Relaxed))
}

/// TSC ticks in `us` microseconds.
pub fn us_to_ticks(us: u64) -> u64 {
    us.saturating_mul(TSC_KHZ.load(Ordering::Relaxed)) / 1000
}

/// TSC ticks in `ns` nanoseconds.
pub fn ns_to_ticks(ns: u64) -> u64 {
    (ns as u128 * TSC_KHZ.load(Ordering::Relaxed) as u128 / 1_000_000).min(u64::MAX as u128) as u64
}

/// TSC value at wall-clock time `ns` (ns since the epoch); `now` if past.
pub fn tsc_at_realtime(ns: u64) -> u64 {
    let now = now();
    let cur = realtime_ns(now);
    now.saturating_add(ns_to_ticks(ns.saturating_sub(cur)))
}
