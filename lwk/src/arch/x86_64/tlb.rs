//! TLB shootdown: after a change that removes or restricts user mappings
//! (munmap, mprotect, mremap, execve), no other CPU may keep a stale TLB
//! entry for the page table that changed.
//!
//! The kernel reaches user memory only through the direct map, so a stale
//! entry matters only while a CPU runs user code. Each CPU publishes the
//! page-table root it runs (`ACTIVE_ROOT`, set by the scheduler) and
//! whether it is in user mode (`IN_USER`: set as the last kernel step before
//! returning to user mode, cleared first thing on kernel entry). The
//! changing CPU bumps the flush request of every CPU running the same root,
//! sends an IPI ([`TLB_VECTOR`]) to those in user mode and waits until each
//! has flushed or left user mode; a CPU flushes pending requests on the way
//! back to user mode, so one that was in the kernel never returns to user
//! mode with a stale entry. No lock is held across the wait by design: the
//! callers keep their address-space lock, and a CPU in the kernel is never
//! waited for (it may be spinning on that very lock).

use core::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

use ihk_abi::boot_params::MAX_CPUS;
pub use ihk_abi::doorbell::TLB_VECTOR;

static ACTIVE_ROOT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static IN_USER: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static REQUESTED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static DONE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn me() -> usize {
    super::percpu::cpu_id() as usize
}

/// The scheduler switches this CPU to page table `root` (0: the kernel's).
pub fn set_active_root(root: u64) {
    ACTIVE_ROOT[me()].store(root, Ordering::SeqCst);
}

/// First step of every kernel entry from user mode.
pub fn entered_kernel() {
    IN_USER[me()].store(false, Ordering::Release);
}

/// Last step before returning to user mode.
pub fn leaving_for_user() {
    let c = me();
    IN_USER[c].store(true, Ordering::SeqCst);
    flush_if_requested(c);
}

/// The TLB shootdown IPI arrived (from user mode or idle).
pub fn on_ipi() {
    flush_if_requested(me());
}

fn flush_if_requested(c: usize) {
    let r = REQUESTED[c].load(Ordering::SeqCst);
    if DONE[c].load(Ordering::Relaxed) < r {
        super::flush_tlb();
        DONE[c].store(r, Ordering::Release);
    }
}

/// Make every other CPU that runs page table `root` drop its TLB entries
/// (the caller flushed its own). `ncpus` CPUs; `apic_id(c)` of CPU `c`.
pub fn shootdown(root: u64, ncpus: usize, apic_id: impl Fn(usize) -> u32) {
    let me = me();
    let mut targets: [(u16, u64); 64] = [(0, 0); 64];
    let mut n = 0;
    let mut overflow = false;
    for c in 0..ncpus {
        if c == me || ACTIVE_ROOT[c].load(Ordering::SeqCst) != root {
            continue;
        }
        let r = REQUESTED[c].fetch_add(1, Ordering::SeqCst) + 1;
        if n < targets.len() {
            targets[n] = (c as u16, r);
            n += 1;
        } else {
            overflow = true;
        }
    }
    fence(Ordering::SeqCst);
    for &(c, _) in &targets[..n] {
        if IN_USER[c as usize].load(Ordering::SeqCst) {
            super::x2apic::send_ipi(apic_id(c as usize), TLB_VECTOR);
        }
    }
    for &(c, r) in &targets[..n] {
        let c = c as usize;
        while DONE[c].load(Ordering::Acquire) < r
            && IN_USER[c].load(Ordering::Acquire)
            && ACTIVE_ROOT[c].load(Ordering::Acquire) == root
        {
            core::hint::spin_loop();
        }
    }
    if overflow {
        // More than 64 CPUs run this table: wait for the rest one by one.
        for c in 0..ncpus {
            if c == me || ACTIVE_ROOT[c].load(Ordering::SeqCst) != root {
                continue;
            }
            let r = REQUESTED[c].load(Ordering::SeqCst);
            if IN_USER[c].load(Ordering::SeqCst) {
                super::x2apic::send_ipi(apic_id(c), TLB_VECTOR);
            }
            while DONE[c].load(Ordering::Acquire) < r
                && IN_USER[c].load(Ordering::Acquire)
                && ACTIVE_ROOT[c].load(Ordering::Acquire) == root
            {
                core::hint::spin_loop();
            }
        }
    }
}
