//! Long-mode register state at LWK entry: paging on with the initial tables,
//! flat segments from the host GDT, interrupts off, and the arguments of the
//! boot protocol: `rdi` = GPA of the boot parameters, `rsi` = GPA of the
//! kernel text, `rdx` = LWK CPU id, `rsp` = top of the CPU's boot stack.

use super::gdt::{gdt_entries, gdt_limit, segment, CODE_SELECTOR, DATA_SELECTOR, TSS_SELECTOR};
use ihk_abi::layout::GDT_GPA;
use kvm_bindings::{kvm_regs, kvm_sregs};

pub const CR0_PE: u64 = 1 << 0;
pub const CR0_MP: u64 = 1 << 1;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_AM: u64 = 1 << 18;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_PAE: u64 = 1 << 5;
pub const CR4_PGE: u64 = 1 << 7;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub const EFER_SCE: u64 = 1 << 0;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_NXE: u64 = 1 << 11;

/// Special registers for long mode (starting from KVM's reset values).
pub fn long_mode_sregs(mut s: kvm_sregs, cr3: u64, nx: bool) -> kvm_sregs {
    let gdt = gdt_entries();
    let code = segment(gdt[1], CODE_SELECTOR);
    let data = segment(gdt[2], DATA_SELECTOR);
    s.cs = code;
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = segment(gdt[3], TSS_SELECTOR);
    s.gdt.base = GDT_GPA;
    s.gdt.limit = gdt_limit();
    // No IDT until the LWK loads one: an early fault is a triple fault, which
    // the host reports as a panic.
    s.idt.base = 0;
    s.idt.limit = 0;
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    s.cr3 = cr3;
    s.cr4 = CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    s.efer = EFER_LME | EFER_LMA | EFER_SCE | if nx { EFER_NXE } else { 0 };
    s
}

/// General registers at entry.
pub fn entry_regs(
    entry: u64,
    boot_params: u64,
    kernel_phys: u64,
    cpu: u32,
    stack_top: u64,
) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rdi: boot_params,
        rsi: kernel_phys,
        rdx: cpu as u64,
        rsp: stack_top,
        rbp: 0,
        rflags: 0x2,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_bits() {
        let s = long_mode_sregs(kvm_sregs::default(), 0x10_0000, true);
        assert_eq!(s.cr3, 0x10_0000);
        assert_ne!(s.cr0 & CR0_PG, 0);
        assert_ne!(s.cr4 & CR4_PAE, 0);
        assert_eq!(
            s.efer & (EFER_LME | EFER_LMA | EFER_NXE),
            EFER_LME | EFER_LMA | EFER_NXE
        );
        assert_eq!(s.cs.l, 1);
        assert_eq!(s.cs.selector, CODE_SELECTOR);
        assert_eq!(s.ss.selector, DATA_SELECTOR);
        let r = entry_regs(0xffff_ffff_8000_0000, 0x1000, 0x20_0000, 3, 0x50_0000);
        assert_eq!(
            (r.rdi, r.rsi, r.rdx, r.rsp, r.rflags),
            (0x1000, 0x20_0000, 3, 0x50_0000, 2)
        );
    }
}
