//! The per-CPU TSC-deadline timer, armed only when something is due: the
//! scheduler's one deadline per CPU (`arch::x86_64::deadline`: the end of
//! a time slice when threads share the CPU, or the earliest timed wait)
//! and the test-only deadlines (`ihk_test_panic`, `ihk_test_hang`,
//! `ihk_test_fault`). There is no periodic tick, not even for the
//! heartbeat: a CPU that runs one thread takes no timer interrupt at all.
//! The heartbeat moves at the CPU's changes of state (`monitor`), and
//! `ihk_heartbeat_ms` only sets the shortest hang-detection window the
//! host may use.

use crate::arch::x86_64::{self as cpu, deadline, tsc, x2apic};
use crate::kargs::Kargs;
use crate::monitor;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ihk_abi::CpuState;

/// TSC value at which CPU 0 panics (0 = never).
static PANIC_AT: AtomicU64 = AtomicU64::new(0);
/// TSC value at which HANG_CPU hangs (0 = never).
static HANG_AT: AtomicU64 = AtomicU64::new(0);
static HANG_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
/// TSC value at which CPU 0 takes a page fault (0 = never).
static FAULT_AT: AtomicU64 = AtomicU64::new(0);

pub fn init(args: &Kargs) {
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
        // That CPU armed its timer before this deadline existed, and no
        // periodic tick will look again: a timer interrupt sent to it now
        // makes it arm the deadline (`tick`).
        if cpu != crate::smp::cpu_id() {
            let apic_id = crate::boot_params::get().cores()[cpu as usize].apic_id;
            x2apic::send_ipi(apic_id, ihk_abi::doorbell::TIMER_VECTOR);
        }
    }
}

/// Put this CPU's timer in TSC-deadline mode, armed only for a test
/// deadline of this CPU.
pub fn start_this_cpu() {
    x2apic::timer_init();
    monitor::beat();
    deadline::set_kernel(next_deadline());
}

/// This CPU's earliest test deadline (TSC; 0: none).
fn next_deadline() -> u64 {
    let me = crate::smp::cpu_id();
    let mine = [
        (me == 0, PANIC_AT.load(Ordering::Relaxed)),
        (me == 0, FAULT_AT.load(Ordering::Relaxed)),
        (me == HANG_CPU.load(Ordering::Relaxed), HANG_AT.load(Ordering::Relaxed)),
    ];
    mine.iter().filter(|&&(m, at)| m && at != 0).map(|&(_, at)| at).min().unwrap_or(0)
}

/// Which of the process layer's deadlines passed at a timer interrupt.
pub struct Due {
    /// The scheduler's (its queues need a look).
    pub sched: bool,
    /// The POSIX timers armed from this CPU.
    pub timers: bool,
    /// The running thread's CPU-time timers (checked on the way back to
    /// user mode, after the entry charged its user time).
    pub cputime: bool,
}

/// Timer interrupt (EOI already sent): the test deadlines, and which of
/// the process layer's deadlines passed.
pub fn tick() -> Due {
    let now = tsc::now();
    let me = crate::smp::cpu_id();
    let due = Due {
        sched: deadline::take_sched_due(now),
        timers: deadline::take_due(deadline::User::Timers, now),
        cputime: deadline::take_due(deadline::User::CpuTime, now),
    };
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
    deadline::set_kernel(next_deadline());
    due
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
