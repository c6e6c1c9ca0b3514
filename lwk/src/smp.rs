//! CPUs: per-CPU set-up (the GS block itself is `arch::x86_64::percpu`),
//! bring-up handshakes between the BSP and the APs (all entered by the host
//! at once), and stopping CPUs.
//!
//! APs spin (with `pause`) only while the BSP fills the shared IDT, which
//! takes microseconds; after that they halt until the BSP's wake-up IPI.

use crate::arch::x86_64::{self as cpu, direct_map, gdt, percpu, x2apic};
use crate::monitor;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use ihk_abi::doorbell::{CPU_OFF_PORT, STOP_VECTOR, WAKEUP_VECTOR};
use ihk_abi::{BootParams, CpuState};

pub use percpu::{cpu_id, set_syscall_stack};

static IDT_READY: AtomicBool = AtomicBool::new(false);
static GO: AtomicBool = AtomicBool::new(false);
static ONLINE_APS: AtomicU32 = AtomicU32::new(0);
static BSP_READY: AtomicBool = AtomicBool::new(false);

/// Per-CPU setup of CPU `id`: GS base, GDT and TSS.
pub fn init_this_cpu(id: u32) {
    let bp = crate::boot_params::get();
    let core = bp.cores().get(id as usize).copied().unwrap_or_default();
    percpu::init_this_cpu(id, core.apic_id as u64);
    // Through the direct map: the IST stack must be valid under a process's
    // page table too.
    let stack_bottom = direct_map::to_virt(bp.stacks.phys + id as u64 * bp.stack_size) as u64;
    gdt::init(id, stack_bottom);
    if id == 0 {
        BSP_READY.store(true, Ordering::Release);
    }
}

/// For log prefixes: -1 before the BSP's per-CPU setup.
pub fn cpu_id_or_minus_one() -> i64 {
    if BSP_READY.load(Ordering::Acquire) {
        cpu_id() as i64
    } else {
        -1
    }
}

/// The BSP filled the shared IDT (`arch::x86_64::idt::init_shared`).
pub fn publish_shared_idt() {
    IDT_READY.store(true, Ordering::Release);
}

pub fn wait_shared_idt() {
    while !IDT_READY.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
}

/// AP: halt until the BSP says go.
pub fn wait_go() {
    monitor::set_cpu_state(CpuState::Idle);
    loop {
        cpu::interrupts_off();
        if GO.load(Ordering::Acquire) {
            break;
        }
        cpu::enable_interrupts_and_halt();
    }
    monitor::set_cpu_state(CpuState::RunningKernel);
}

pub fn mark_online() {
    ONLINE_APS.fetch_add(1, Ordering::Release);
}

/// BSP: release the APs and wait (up to 2 s) until they are online.
/// Returns how many came up.
pub fn release_aps(bp: &BootParams) -> u32 {
    GO.store(true, Ordering::Release);
    let aps = &bp.cores()[1..];
    for c in aps {
        x2apic::send_ipi(c.apic_id, WAKEUP_VECTOR);
    }
    let deadline = cpu::tsc::now() + cpu::tsc::ms_to_ticks(2000);
    while ONLINE_APS.load(Ordering::Acquire) < aps.len() as u32 && cpu::tsc::now() < deadline {
        core::hint::spin_loop();
    }
    let n = ONLINE_APS.load(Ordering::Acquire);
    if n < aps.len() as u32 {
        crate::printk!("BSP: only {} of {} AP CPUs came online", n, aps.len());
    }
    n
}

/// The last act of a CPU: tell the host, which stops running this vCPU.
pub fn stop_this_cpu() -> ! {
    cpu::interrupts_off();
    monitor::set_cpu_state(CpuState::Halted);
    cpu::outl(CPU_OFF_PORT, cpu_id());
    cpu::halt_forever()
}

/// Shutdown requested by the host: status SHUTDOWN, stop every CPU.
pub fn shutdown_all() -> ! {
    cpu::interrupts_off();
    monitor::set_os_status(ihk_abi::OsStatus::Shutdown);
    crate::printk!("Shutdown requested by the host; stopping all CPUs.");
    let me = cpu_id();
    for c in crate::boot_params::get().cores() {
        if c.lwk_id != me {
            x2apic::send_ipi(c.apic_id, STOP_VECTOR);
        }
    }
    stop_this_cpu()
}
