//! The noise trace (`ihk_abi::trace`): every entry into the kernel from
//! user mode is recorded in this CPU's ring with its TSC, its time in the
//! kernel and its cause, where the host reads it (`ihkosctl <n> trace`).
//! Also KVM's steal time of this CPU (`MSR_KVM_STEAL_TIME`), kept in the
//! same block: time the host did not run this vCPU.
//!
//! The blocks are given once at boot ([`init`], from memory the upper
//! layers allocated); until then recording does nothing.

use core::sync::atomic::{AtomicU64, Ordering};

use ihk_abi::trace::{Entry, TraceCpu, KVM_FEATURE_STEAL_TIME, KVM_MSR_ENABLED, MSR_KVM_STEAL_TIME, TRACE_CPU_BYTES, TRACE_MAGIC, TRACE_RECORDS};

/// Kernel-virtual address of CPU 0's block (0: none yet).
static BASE: AtomicU64 = AtomicU64::new(0);
/// Guest-physical address of CPU 0's block.
static BASE_PHYS: AtomicU64 = AtomicU64::new(0);
static NR_CPUS: AtomicU64 = AtomicU64::new(0);

/// Use `nr_cpus` zeroed blocks at `virt` (guest-physical `phys`), one per
/// CPU (BSP, before any other CPU starts).
pub fn init(virt: u64, phys: u64, nr_cpus: u64) {
    BASE_PHYS.store(phys, Ordering::Relaxed);
    NR_CPUS.store(nr_cpus, Ordering::Relaxed);
    BASE.store(virt, Ordering::Release);
}

fn block(cpu: u32) -> Option<&'static TraceCpu> {
    let base = BASE.load(Ordering::Acquire);
    if base == 0 || cpu as u64 >= NR_CPUS.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: `init` got `nr_cpus` blocks of TRACE_CPU_BYTES that live for
    // the kernel's life; the block holds atomics only (any bit pattern).
    Some(unsafe { &*((base + cpu as u64 * TRACE_CPU_BYTES) as *const TraceCpu) })
}

fn this_cpu() -> Option<&'static TraceCpu> {
    block(super::percpu::cpu_id())
}

/// Whether the hypervisor is KVM and offers steal time (CPUID 0x4000_0000
/// signature "KVMKVMKVM", 0x4000_0001 EAX bit 5).
fn kvm_steal_time_offered() -> bool {
    let (_, _, ecx, _) = super::cpuid(1);
    if ecx & (1 << 31) == 0 {
        return false;
    }
    let (max, b, c, d) = super::cpuid(0x4000_0000);
    let sig = [b.to_le_bytes(), c.to_le_bytes(), d.to_le_bytes()];
    if sig.concat() != *b"KVMKVMKVM\0\0\0" || max < 0x4000_0001 {
        return false;
    }
    super::cpuid(0x4000_0001).0 & KVM_FEATURE_STEAL_TIME != 0
}

/// Mark this CPU's block valid and ask KVM for its steal time there.
/// Returns whether steal time is on.
pub fn start_this_cpu() -> bool {
    let Some(b) = this_cpu() else { return false };
    b.magic.store(TRACE_MAGIC, Ordering::Release);
    if !kvm_steal_time_offered() {
        return false;
    }
    let phys = BASE_PHYS.load(Ordering::Relaxed) + super::percpu::cpu_id() as u64 * TRACE_CPU_BYTES;
    super::wrmsr(MSR_KVM_STEAL_TIME, phys | KVM_MSR_ENABLED);
    b.steal_enabled.store(1, Ordering::Release);
    true
}

/// Record a kernel entry of this CPU that began at TSC `start` and ends now.
pub fn record(start: u64, cause: u16, detail: u16) {
    let Some(b) = this_cpu() else { return };
    let ticks = super::tsc::now().saturating_sub(start).min(u32::MAX as u64) as u32;
    let n = b.written.load(Ordering::Relaxed);
    let r = &b.records[(n % TRACE_RECORDS as u64) as usize];
    r.tsc.store(start, Ordering::Relaxed);
    r.info.store(Entry { tsc: start, ticks, cause, detail }.pack(), Ordering::Relaxed);
    b.written.store(n + 1, Ordering::Release);
}

/// Steal time of LWK CPU `cpu` in nanoseconds (0 without KVM's steal time).
pub fn steal_ns(cpu: u32) -> u64 {
    match block(cpu) {
        Some(b) if b.steal_enabled.load(Ordering::Acquire) != 0 => b.steal.read_ns(),
        _ => 0,
    }
}
