//! The per-CPU TSC-deadline timer: a low-rate heartbeat
//! (`ihk_heartbeat_ms`, default 100 ms) that advances the CPU's heartbeat
//! in the monitor page, the test-only deadlines (`ihk_test_panic`,
//! `ihk_test_hang`), and the scheduler's one deadline per CPU
//! (`arch::x86_64::deadline`: the end of a time slice when threads share
//! the CPU, or the earliest timed wait). No periodic scheduler tick exists.

use crate::arch::x86_64::{self as cpu, deadline, tsc, x2apic};
use crate::kargs::Kargs;
use crate::monitor;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ihk_abi::boot_params::MAX_CPUS;
use ihk_abi::CpuState;

static PERIOD_TICKS: AtomicU64 = AtomicU64::new(0);
/// TSC value at which CPU 0 panics (0 = never).
static PANIC_AT: AtomicU64 = AtomicU64::new(0);
/// TSC value at which HANG_CPU hangs (0 = never).
static HANG_AT: AtomicU64 = AtomicU64::new(0);
static HANG_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
/// TSC value at which CPU 0 takes a page fault (0 = never).
static FAULT_AT: AtomicU64 = AtomicU64::new(0);
/// Per CPU: when the heartbeat is due next.
static BEAT_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

pub fn init(args: &Kargs) {
    PERIOD_TICKS.store(tsc::ms_to_ticks(args.heartbeat_ms), Ordering::Relaxed);
    monitor::set_heartbeat_period_us(args.heartbeat_ms * 1000);
}

/// Arm the test deadlines, counted from the end of boot.
pub fn boot_completed(args: &Kargs) {
    let now = tsc::now();
    if let Some(ms) = args.test_panic_ms.filter(|&ms| ms > 0) {
        crate::printk!("ihk_test_panic: panicking in {} ms", ms);
        PANIC_AT.store(now + tsc::ms_to_ticks(ms), Ordering::Relaxed);
    }
    if let Some(ms) = args.test_fault_ms {
        crate::printk!("ihk_test_fault: faulting in {} ms", ms);
        FAULT_AT.store(now + tsc::ms_to_ticks(ms), Ordering::Relaxed);
    }
    if let Some(ms) = args.test_hang_ms {
        let n = crate::boot_params::get().cores().len() as u32;
        let cpu = args.test_hang_cpu.filter(|&c| c < n).unwrap_or(n - 1);
        crate::printk!("ihk_test_hang: CPU {} hangs in {} ms", cpu, ms);
        HANG_CPU.store(cpu, Ordering::Relaxed);
        HANG_AT.store(now + tsc::ms_to_ticks(ms), Ordering::Relaxed);
    }
}

/// Start the tick on this CPU.
pub fn start_this_cpu() {
    x2apic::timer_init();
    monitor::beat();
    let now = tsc::now();
    BEAT_AT[crate::smp::cpu_id() as usize].store(now + PERIOD_TICKS.load(Ordering::Relaxed).max(1), Ordering::Relaxed);
    deadline::set_kernel(next_deadline(now));
}

fn next_deadline(now: u64) -> u64 {
    let me = crate::smp::cpu_id();
    let mut next = BEAT_AT[me as usize].load(Ordering::Relaxed);
    if next == 0 {
        next = now + PERIOD_TICKS.load(Ordering::Relaxed).max(1);
    }

    let p = PANIC_AT.load(Ordering::Relaxed);
    if me == 0 && p != 0 {
        next = next.min(p);
    }
    let f = FAULT_AT.load(Ordering::Relaxed);
    if me == 0 && f != 0 {
        next = next.min(f);
    }
    let h = HANG_AT.load(Ordering::Relaxed);
    if me == HANG_CPU.load(Ordering::Relaxed) && h != 0 {
        next = next.min(h);
    }
    next.max(now + 1)
}

/// Timer interrupt (EOI already sent). Returns whether the scheduler's
/// deadline passed (its queues need a look).
pub fn tick() -> bool {
    let now = tsc::now();
    let me = crate::smp::cpu_id();
    let beat = &BEAT_AT[me as usize];
    if now >= beat.load(Ordering::Relaxed) {
        monitor::beat();
        beat.store(now + PERIOD_TICKS.load(Ordering::Relaxed).max(1), Ordering::Relaxed);
    }
    let sched_due = deadline::take_sched_due(now);
    let p = PANIC_AT.load(Ordering::Relaxed);
    if me == 0 && p != 0 && now >= p {
        panic!("ihk_test_panic: panic requested by kernel argument");
    }
    let f = FAULT_AT.load(Ordering::Relaxed);
    if me == 0 && f != 0 && now >= f {
        fault();
    }
    let h = HANG_AT.load(Ordering::Relaxed);
    if me == HANG_CPU.load(Ordering::Relaxed) && h != 0 && now >= h {
        hang();
    }
    deadline::set_kernel(next_deadline(now));
    sched_due
}

/// `ihk_test_fault`: read from the unmapped page 0.
fn fault() {
    // SAFETY: deliberately invalid: page 0 is never mapped, so this read
    // raises #PF, which panics; nothing is read.
    let v = unsafe { core::ptr::read_volatile(0x10 as *const u64) };
    crate::printk!("ihk_test_fault: read {:#x} from page 0?!", v);
}

/// `ihk_test_hang`: spin in the kernel with interrupts off, heartbeat frozen.
fn hang() -> ! {
    cpu::interrupts_off();
    crate::printk!("ihk_test_hang: CPU {} hangs now", crate::smp::cpu_id());
    monitor::set_cpu_state(CpuState::RunningKernel);
    loop {
        core::hint::spin_loop();
    }
}
