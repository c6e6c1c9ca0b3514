//! The local APIC in x2APIC mode (MSR interface): enable, EOI, IPIs, and
//! the timer in TSC-deadline mode.

use super::{cpuid, rdmsr, wrmsr};
use ihk_abi::doorbell::{SPURIOUS_VECTOR, TIMER_VECTOR};

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_EXTD: u64 = 1 << 10;
const APIC_BASE_EN: u64 = 1 << 11;
const MSR_TPR: u32 = 0x808;
const MSR_EOI: u32 = 0x80b;
const MSR_SVR: u32 = 0x80f;
const MSR_ICR: u32 = 0x830;
const MSR_LVT_TIMER: u32 = 0x832;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const LVT_TIMER_TSC_DEADLINE: u64 = 2 << 17;
const ICR_NMI: u64 = 4 << 8;
const ICR_ALL_EXCLUDING_SELF: u64 = 3 << 18;

/// Switch this CPU's LAPIC to x2APIC mode and software-enable it.
pub fn enable() {
    let (_, _, ecx, _) = cpuid(1);
    if ecx & (1 << 21) == 0 {
        panic!("CPU lacks x2APIC (CPUID.1:ECX[21])");
    }
    let base = rdmsr(IA32_APIC_BASE);
    wrmsr(IA32_APIC_BASE, base | APIC_BASE_EN);
    wrmsr(IA32_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
    wrmsr(MSR_TPR, 0);
    wrmsr(MSR_SVR, 0x100 | SPURIOUS_VECTOR as u64);
}

pub fn eoi() {
    wrmsr(MSR_EOI, 0);
}

/// Fixed-delivery IPI with `vector` to the CPU with x2APIC id `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    wrmsr(MSR_ICR, ((apic_id as u64) << 32) | vector as u64);
}

/// NMI to every other CPU.
pub fn nmi_all_others() {
    wrmsr(MSR_ICR, ICR_ALL_EXCLUDING_SELF | ICR_NMI);
}

/// Whether this CPU's LAPIC is already in x2APIC mode.
pub fn is_enabled() -> bool {
    rdmsr(IA32_APIC_BASE) & (APIC_BASE_EN | APIC_BASE_EXTD) == (APIC_BASE_EN | APIC_BASE_EXTD)
}

/// Put the timer in TSC-deadline mode on [`TIMER_VECTOR`].
pub fn timer_init() {
    let (_, _, ecx, _) = cpuid(1);
    if ecx & (1 << 24) == 0 {
        panic!("CPU lacks the TSC-deadline timer (CPUID.1:ECX[24])");
    }
    wrmsr(MSR_LVT_TIMER, LVT_TIMER_TSC_DEADLINE | TIMER_VECTOR as u64);
}

/// Fire the timer interrupt when the TSC reaches `tsc`.
pub fn set_deadline(tsc: u64) {
    wrmsr(IA32_TSC_DEADLINE, tsc);
}
