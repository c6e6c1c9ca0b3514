//! Per-CPU GDT and TSS. Layout (selectors) is the one `syscall`/`sysret`
//! need later: kernel code, kernel data, user code32, user data, user code64,
//! then the TSS. The TSS's IST1 stack (double fault, NMI, machine check) is
//! the bottom 16 KiB of the CPU's boot stack; the rest above it is the
//! kernel stack the host entered us on.

use core::arch::asm;
use core::cell::UnsafeCell;
use ihk_abi::boot_params::MAX_CPUS;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const TSS_SEL: u16 = 0x30;
/// IST index (1-based, as in the IDT) for double fault / NMI / #MC.
pub const IST_CRITICAL: u8 = 1;
/// Bytes of the boot stack used as the IST stack.
pub const IST_STACK_SIZE: u64 = 16 * 1024;

#[repr(C, packed)]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

const TSS_SIZE: usize = core::mem::size_of::<Tss>();

#[repr(C, align(16))]
struct CpuTables {
    gdt: [u64; 8],
    tss: Tss,
}

struct PerCpuTables(UnsafeCell<[CpuTables; MAX_CPUS]>);
// SAFETY: CPU n only ever touches entry n (see `init`).
unsafe impl Sync for PerCpuTables {}

const EMPTY: CpuTables = CpuTables {
    gdt: [0; 8],
    tss: Tss {
        _reserved0: 0,
        rsp: [0; 3],
        _reserved1: 0,
        ist: [0; 7],
        _reserved2: 0,
        _reserved3: 0,
        iomap_base: TSS_SIZE as u16,
    },
};
static TABLES: PerCpuTables = PerCpuTables(UnsafeCell::new([EMPTY; MAX_CPUS]));

const fn descriptor(flags: u64) -> u64 {
    // Base 0, limit 0xfffff; `flags` holds access byte and G/D/L bits.
    (flags << 40) | 0x000f_0000_0000_ffff
}

/// Set the stack the CPU switches to on an interrupt from user mode
/// (TSS.RSP0 of the calling CPU; process/sched.rs sets it per thread).
pub fn set_kernel_stack(top: u64) {
    let cpu = super::percpu::cpu_id() as usize;
    // SAFETY: entry `cpu` belongs to the calling CPU; the TSS field is
    // only read by the CPU itself on privilege changes.
    unsafe {
        let t = &mut (*TABLES.0.get())[cpu];
        core::ptr::write_unaligned(core::ptr::addr_of_mut!(t.tss.rsp[0]), top);
    }
}

/// Load this CPU's GDT and TSS; `stack_bottom` is the lowest address of its
/// boot stack.
pub fn init(cpu: u32, stack_bottom: u64) {
    let cpu = cpu as usize;
    assert!(cpu < MAX_CPUS);
    // SAFETY: entry `cpu` is used by this CPU only, and only here.
    let t = unsafe { &mut (*TABLES.0.get())[cpu] };
    t.tss.ist[(IST_CRITICAL - 1) as usize] = stack_bottom + IST_STACK_SIZE;
    let tss_base = &t.tss as *const Tss as u64;
    t.gdt = [
        0,
        descriptor(0xa09b), // kernel code64
        descriptor(0xc093), // kernel data
        descriptor(0xc0fb), // user code32 (placeholder for sysret)
        descriptor(0xc0f3), // user data
        descriptor(0xa0fb), // user code64
        ((tss_base & 0xff00_0000) << 32)
            | (0x89u64 << 40)
            | ((tss_base & 0x00ff_ffff) << 16)
            | (TSS_SIZE as u64 - 1),
        tss_base >> 32,
    ];
    let ptr = x86_64::structures::DescriptorTablePointer {
        limit: (core::mem::size_of::<[u64; 8]>() - 1) as u16,
        base: x86_64::VirtAddr::new(t.gdt.as_ptr() as u64),
    };
    // SAFETY: the GDT is static and well formed; the far return reloads CS
    // with the kernel code selector of the new table, then data segments and
    // TR are loaded with descriptors that exist in it.
    unsafe {
        x86_64::instructions::tables::lgdt(&ptr);
        asm!(
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ss, {ds:x}",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "ltr {tss:x}",
            cs = const KERNEL_CS as u64,
            tmp = out(reg) _,
            ds = in(reg) KERNEL_DS as u64,
            tss = in(reg) TSS_SEL as u64,
        );
    }
}
