//! The per-CPU block that GS points at: the CPU's id, and the two words the
//! SYSCALL entry (`entry`) uses. Set up by `smp::init_this_cpu`.

use core::arch::asm;
use ihk_abi::boot_params::MAX_CPUS;

/// Per-CPU data; GS base points at this CPU's entry, `id` first.
#[repr(C, align(64))]
pub struct PerCpu {
    id: u64,
    apic_id: u64,
    /// SYSCALL entry (arch/x86_64/entry.rs, offsets 16 and 24): the current
    /// thread's kernel stack top, and a scratch word for the user rsp.
    syscall_rsp0: u64,
    syscall_user_rsp: u64,
}

struct PerCpuArray(core::cell::UnsafeCell<[PerCpu; MAX_CPUS]>);
// SAFETY: CPU n writes entry n once, in init_this_cpu, before using it.
unsafe impl Sync for PerCpuArray {}
const PERCPU_INIT: PerCpu = PerCpu { id: 0, apic_id: 0, syscall_rsp0: 0, syscall_user_rsp: 0 };
static PERCPU: PerCpuArray = PerCpuArray(core::cell::UnsafeCell::new([PERCPU_INIT; MAX_CPUS]));

const IA32_GS_BASE: u32 = 0xc000_0101;

/// Point GS at CPU `id`'s block (called once on that CPU).
pub fn init_this_cpu(id: u32, apic_id: u64) {
    // SAFETY: entry `id` belongs to this CPU (see PerCpuArray).
    let pc = unsafe { &mut (*PERCPU.0.get())[id as usize] };
    pc.id = id as u64;
    pc.apic_id = apic_id;
    super::wrmsr(IA32_GS_BASE, pc as *mut PerCpu as u64);
}

/// Kernel stack for SYSCALL entry on this CPU (process/sched.rs sets it
/// when a thread starts running).
pub fn set_syscall_stack(top: u64) {
    // SAFETY: GS points at this CPU's PerCpu; offset 16 is syscall_rsp0.
    unsafe { asm!("mov gs:[16], {}", in(reg) top, options(nostack, preserves_flags)) };
}

/// LWK id of the calling CPU.
pub fn cpu_id() -> u32 {
    let id: u64;
    // SAFETY: GS base points at this CPU's PerCpu (init_this_cpu runs
    // before anything that calls this); `id` is at offset 0.
    unsafe { asm!("mov {}, gs:[0]", out(reg) id, options(nostack, readonly, preserves_flags)) };
    id as u32
}
