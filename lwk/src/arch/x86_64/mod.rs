//! x86-64: descriptor tables (`gdt`), interrupts and exceptions (`idt`),
//! the SYSCALL entry and the way back to user mode (`entry`), the per-CPU
//! block GS points at (`percpu`), the direct map's address arithmetic
//! (`direct_map`), the local APIC in x2APIC mode (`x2apic`), the TSC
//! (`tsc`), the noise trace and steal time (`trace`), single-stepping one
//! system call for the `pvm_profile` experiment (`stepcount`), and a few
//! instructions.
//!
//! The bottom layer of the LWK: it imports nothing above it. Interrupts,
//! exceptions and system calls reach the kernel through the handlers the
//! upper layers register at boot (`hooks`).

pub mod deadline;
pub mod direct_map;
pub mod entry;
pub mod gdt;
pub mod hooks;
pub mod idt;
pub mod percpu;
pub mod stepcount;
pub mod tlb;
pub mod trace;
pub mod tsc;
pub mod x2apic;

use core::arch::asm;

pub fn interrupts_off() {
    x86_64::instructions::interrupts::disable();
}

/// `sti; hlt`: returns after the next interrupt has been handled.
pub fn enable_interrupts_and_halt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Stop this CPU for good (interrupts off; only NMI/INIT can wake it, and
/// the NMI handler comes back here).
pub fn halt_forever() -> ! {
    loop {
        interrupts_off();
        x86_64::instructions::hlt();
    }
}

/// 32-bit `out`: doorbells to the host.
pub fn outl(port: u16, value: u32) {
    // SAFETY: port I/O to the host's doorbell ports has no effect on guest
    // memory; the host defines their meaning (ihk_abi::doorbell).
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// 8-bit `out` (early debug console).
pub fn outb(port: u16, value: u8) {
    // SAFETY: as outl.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

pub fn rdmsr(msr: u32) -> u64 {
    // SAFETY: callers only read architectural MSRs that exist under KVM.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).read() }
}

pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: callers only write architectural MSRs with valid values; none
    // of them changes memory safety (APIC, TSC deadline, GS base).
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(value) };
}

/// Reload CR3: drops this CPU's non-global TLB entries.
pub fn flush_tlb() {
    // SAFETY: writing back the current CR3 only flushes the TLB.
    unsafe {
        asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack, preserves_flags));
    }
}

pub fn read_cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// CPUID leaf `leaf`, subleaf 0: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}
