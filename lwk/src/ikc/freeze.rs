//! Freezing every CPU for `ihk_os_freeze` / `ihk_os_thaw` (§1.2.2.32-33).
//!
//! The host sends `MSG_FREEZE` on the master channel (and always raises the
//! master interrupt, so a BSP running a thread takes it at once). The BSP
//! sets [`FROZEN`], sends `FREEZE_VECTOR` to every other CPU and freezes
//! itself. A frozen CPU marks itself `Frozen` in the monitor page and halts
//! with interrupts on until the flag clears: it runs no thread and returns
//! to no user code meanwhile (its state says FROZEN: not hung). The BSP keeps serving the master channel while frozen, so
//! `MSG_THAW` (clear the flag, wake the others) and `MSG_SHUTDOWN` work.
//! Every CPU then continues exactly where it was interrupted.
//!
//! A CPU spinning with interrupts off never takes the IPI and never shows
//! `Frozen`: the host then stays at FREEZING, as the specification expects.

use crate::arch::x86_64::{self as cpu, x2apic};
use crate::monitor;
use core::sync::atomic::{AtomicBool, Ordering};
use ihk_abi::boot_params::MAX_CPUS;
use ihk_abi::doorbell::{FREEZE_VECTOR, WAKEUP_VECTOR};
use ihk_abi::CpuState;

/// Set while the host wants the LWK frozen.
static FROZEN: AtomicBool = AtomicBool::new(false);
/// Per CPU: already inside [`enter`] (a nested IPI returns at once).
static INSIDE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// `MSG_FREEZE` (BSP, interrupts off): stop every CPU, this one last.
pub fn request() {
    if !FROZEN.swap(true, Ordering::SeqCst) {
        crate::printk!("Freeze requested by the host; stopping all CPUs.");
        ipi_others(FREEZE_VECTOR);
    }
    enter();
}

/// `MSG_THAW` (BSP, interrupts off): let every CPU go on.
pub fn release() {
    if FROZEN.swap(false, Ordering::SeqCst) {
        ipi_others(WAKEUP_VECTOR);
        crate::printk!("Thaw requested by the host; all CPUs resume.");
    }
}

fn ipi_others(vector: u8) {
    let me = crate::smp::cpu_id();
    for c in crate::boot_params::get().cores() {
        if c.lwk_id != me {
            x2apic::send_ipi(c.apic_id, vector);
        }
    }
}

/// Stay here while frozen (`FREEZE_VECTOR` handler, or the BSP's request).
/// Entered and left with interrupts off; the state shown afterwards is
/// RunningKernel (the idle loop or the return to user mode sets its own).
pub fn enter() {
    let me = crate::smp::cpu_id() as usize;
    let Some(inside) = INSIDE.get(me) else { return };
    if inside.swap(true, Ordering::SeqCst) {
        return;
    }
    let bsp = me == 0;
    monitor::set_cpu_state(CpuState::Frozen);
    loop {
        cpu::interrupts_off();
        if bsp {
            super::master::poll();
        }
        if !FROZEN.load(Ordering::SeqCst) {
            break;
        }
        if bsp && !super::master::prepare_sleep() {
            continue;
        }
        // `sti; hlt` is atomic: a wake-up or thaw packet that arrived after
        // the checks above still ends the halt.
        cpu::enable_interrupts_and_halt();
        cpu::interrupts_off();
        if bsp {
            super::master::awake();
        }
    }
    monitor::set_cpu_state(CpuState::RunningKernel);
    inside.store(false, Ordering::SeqCst);
}
