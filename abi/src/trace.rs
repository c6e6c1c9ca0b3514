//! The noise trace: per LWK CPU, a ring of its kernel entries from user
//! mode (interrupt, exception, system call) with TSC start, duration and
//! cause, and KVM's steal-time record of that CPU (host preemption), in
//! one block of guest memory the host reads (`ihkosctl <n> trace`).
//!
//! The LWK allocates `nr_cpus` blocks of [`TRACE_CPU_BYTES`], contiguous
//! and page aligned, and publishes the first one's guest-physical address
//! in the monitor page (`MonitorPage::trace_phys`); CPU `i`'s block is at
//! `trace_phys + i * TRACE_CPU_BYTES`. Only the LWK (and KVM, for the
//! steal-time record) writes; the host reads with atomics.
//!
//! Ring protocol: the CPU writes record `written % TRACE_RECORDS`, then
//! increments `written` (Release). A reader loads `written`, copies the
//! last `min(written, TRACE_RECORDS)` records, loads `written` again and
//! drops the records the writer may have overwritten meanwhile
//! ([`valid_range`]).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// "IHKTRACE".
pub const TRACE_MAGIC: u64 = u64::from_le_bytes(*b"IHKTRACE");
/// Bytes of one CPU's block.
pub const TRACE_CPU_BYTES: u64 = 16 << 10;
/// Records in one CPU's ring.
pub const TRACE_RECORDS: usize = (TRACE_CPU_BYTES as usize - 128) / 16;

/// `MSR_KVM_STEAL_TIME`: guest-physical address of a [`KvmStealTime`]
/// (64-byte aligned) | [`KVM_MSR_ENABLED`].
pub const MSR_KVM_STEAL_TIME: u32 = 0x4b56_4d03;
pub const KVM_MSR_ENABLED: u64 = 1;
/// CPUID 0x4000_0001 EAX bit: KVM offers steal time.
pub const KVM_FEATURE_STEAL_TIME: u32 = 1 << 5;

/// Cause of a system call (its number is the record's `detail`); below
/// 256 the cause is the interrupt or exception vector.
pub const CAUSE_SYSCALL: u16 = 0x100;

/// KVM's `struct kvm_steal_time` (Documentation/virt/kvm/x86/msr.rst).
#[repr(C, align(64))]
pub struct KvmStealTime {
    /// Nanoseconds the vCPU was runnable but not running (host preemption).
    pub steal: AtomicU64,
    /// Odd while KVM updates the record.
    pub version: AtomicU32,
    pub flags: AtomicU32,
    pub preempted: u8,
    pub _pad: [u8; 3],
    pub _pad2: [u32; 11],
}

impl KvmStealTime {
    /// A consistent read of `steal` (retries while KVM writes).
    pub fn read_ns(&self) -> u64 {
        loop {
            let v = self.version.load(Ordering::Acquire);
            let s = self.steal.load(Ordering::Acquire);
            if v & 1 == 0 && self.version.load(Ordering::Acquire) == v {
                return s;
            }
            core::hint::spin_loop();
        }
    }
}

/// One kernel entry, packed in two words: the TSC when it began, and
/// `ticks | cause << 32 | detail << 48`.
#[repr(C)]
pub struct TraceRecord {
    pub tsc: AtomicU64,
    pub info: AtomicU64,
}

/// A decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// TSC at entry.
    pub tsc: u64,
    /// Time in the kernel until the return to user mode (TSC ticks).
    pub ticks: u32,
    /// Vector (< 256) or [`CAUSE_SYSCALL`].
    pub cause: u16,
    /// System-call number (truncated to 16 bits); 0 for interrupts.
    pub detail: u16,
}

impl Entry {
    pub const fn pack(&self) -> u64 {
        self.ticks as u64 | (self.cause as u64) << 32 | (self.detail as u64) << 48
    }

    pub const fn unpack(tsc: u64, info: u64) -> Entry {
        Entry {
            tsc,
            ticks: info as u32,
            cause: (info >> 32) as u16,
            detail: (info >> 48) as u16,
        }
    }
}

/// One CPU's block.
#[repr(C, align(64))]
pub struct TraceCpu {
    /// Written by KVM once the LWK enabled `MSR_KVM_STEAL_TIME` here.
    pub steal: KvmStealTime,
    pub magic: AtomicU64,
    /// Records ever written (the next goes to `written % TRACE_RECORDS`).
    pub written: AtomicU64,
    /// 1 when KVM accepted the steal-time record (steal is meaningful).
    pub steal_enabled: AtomicU32,
    pub _pad: [u32; 11],
    pub records: [TraceRecord; TRACE_RECORDS],
}

/// Indices (since boot) of the records still valid after a reader saw
/// `before` written when it started copying and `after` when it finished.
pub fn valid_range(before: u64, after: u64) -> core::ops::Range<u64> {
    let first = after.saturating_sub(TRACE_RECORDS as u64);
    first.max(before.saturating_sub(TRACE_RECORDS as u64))..before
}

/// Short name of a cause, as `ihkosctl <n> trace` prints it.
pub fn cause_name(cause: u16) -> &'static str {
    use crate::doorbell::*;
    match cause {
        CAUSE_SYSCALL => "syscall",
        14 => "page-fault",
        0..=31 => "exception",
        c if c == TIMER_VECTOR as u16 => "timer",
        c if c == WAKEUP_VECTOR as u16 => "wakeup-ipi",
        c if c == STOP_VECTOR as u16 => "stop-ipi",
        c if c == FREEZE_VECTOR as u16 => "freeze-ipi",
        c if c == IKC_MASTER_VECTOR as u16 => "ikc-master",
        c if c == SPURIOUS_VECTOR as u16 => "spurious",
        c if c == crate::offload::OFFLOAD_VECTOR as u16 => "offload-doorbell",
        c if c == TLB_VECTOR as u16 => "tlb-ipi",
        c if c == IKC_PERCPU_VECTOR as u16 => "ikc-doorbell",
        _ => "interrupt",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<KvmStealTime>(), 64);
        assert_eq!(offset_of!(TraceCpu, magic), 64);
        assert_eq!(offset_of!(TraceCpu, records), 128);
        assert_eq!(size_of::<TraceCpu>() as u64, TRACE_CPU_BYTES);
    }

    #[test]
    fn entries_pack_and_unpack() {
        let e = Entry { tsc: 7, ticks: 0xdead_beef, cause: CAUSE_SYSCALL, detail: 39 };
        assert_eq!(Entry::unpack(7, e.pack()), e);
    }

    #[test]
    fn a_reader_drops_records_overwritten_while_it_copied() {
        let n = TRACE_RECORDS as u64;
        assert_eq!(valid_range(5, 5), 0..5);
        assert_eq!(valid_range(n + 10, n + 10), 10..n + 10);
        // The writer moved 3 records on meanwhile: the 3 oldest are gone.
        assert_eq!(valid_range(n + 10, n + 13), 13..n + 10);
        // Moved past everything: nothing is valid.
        assert!(valid_range(n + 10, 3 * n).is_empty());
    }
}
