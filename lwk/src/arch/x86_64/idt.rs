//! The IDT (shared by all CPUs), the 256 entry stubs, and dispatch.
//!
//! Every vector has a 16-byte stub at `isr_stubs + 16 * vector` that pushes
//! a zero error code (when the CPU does not push one) and the vector, then
//! jumps to `isr_common`, which saves the general registers into a
//! [`TrapFrame`] and calls [`interrupt_dispatch`]. Kernel code uses no
//! SSE, so no FPU state is saved. Dispatch reaches the kernel only through
//! the registered handlers (`hooks`).

use super::gdt::{IST_CRITICAL, KERNEL_CS};
use core::cell::UnsafeCell;
use ihk_abi::doorbell::*;
use ihk_abi::trace::CAUSE_SYSCALL;

core::arch::global_asm!(
    r#"
    .section .text
    .balign 16
    .global isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call {dispatch}
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
"#,
    dispatch = sym interrupt_dispatch,
    options(att_syntax)
);

extern "C" {
    static isr_stubs: u8;
}

/// Registers saved on interrupt entry (lowest address first).
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// The six argument registers of a system call.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    _reserved: u32,
}

const EMPTY_GATE: Gate = Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    _reserved: 0,
};

#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);
// SAFETY: written once by the BSP before any AP loads it (smp publishes
// IDT-ready with Release after `init_shared`), read-only afterwards.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([EMPTY_GATE; 256]));

/// Fill the IDT (BSP, once, before any other CPU loads it).
pub fn init_shared() {
    // SAFETY: isr_stubs is defined in the global_asm above.
    let base = unsafe { &isr_stubs as *const u8 as u64 };
    // SAFETY: called once by the BSP before the IDT is shared (see `Idt`).
    let idt = unsafe { &mut *IDT.0.get() };
    for (v, g) in idt.iter_mut().enumerate() {
        let addr = base + 16 * v as u64;
        let ist = match v {
            2 | 8 | 18 => IST_CRITICAL,
            _ => 0,
        };
        *g = Gate {
            offset_low: addr as u16,
            selector: KERNEL_CS,
            ist,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            _reserved: 0,
        };
    }
}

/// Load the shared IDT on this CPU.
pub fn load() {
    let ptr = x86_64::structures::DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: x86_64::VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: the IDT is static, fully initialised (init_shared ran before
    // any CPU gets here) and its gates point at the stubs above.
    unsafe { x86_64::instructions::tables::lidt(&ptr) };
}

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range exceeded",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack-segment fault",
    "#GP general protection fault",
    "#PF page fault",
    "reserved 15",
    "#MF x87 floating-point error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating-point error",
    "#VE virtualization exception",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security exception",
    "reserved 31",
];

extern "C" fn interrupt_dispatch(f: &mut TrapFrame) {
    let v = f.vector as u8;
    // Exceptions raised by user code belong to its process (process/trap.rs).
    let from_user = f.cs & 3 == 3;
    let h = super::hooks::get();
    if from_user {
        // The noise trace: this entry, its cause and its time in the
        // kernel until the return to user mode.
        let start = super::tsc::now();
        let (cause, detail, stepped) = if super::entry::is_emulated_syscall(f) {
            (CAUSE_SYSCALL, f.rax as u16, super::stepcount::begin(f.rax))
        } else {
            (v as u16, 0, false)
        };
        super::tlb::entered_kernel();
        (h.entered_from_user)();
        dispatch(f, v, h);
        (h.return_to_user)(f);
        super::trace::record(start, cause, detail);
        if stepped {
            super::stepcount::end();
        }
    } else if v != 1 || !super::stepcount::on_debug(f.rip) {
        dispatch(f, v, h);
    }
}

fn dispatch(f: &mut TrapFrame, v: u8, h: &super::hooks::Hooks) {
    let from_user = f.cs & 3 == 3;
    if from_user && v < 32 && v != 2 && v != 18 {
        (h.user_exception)(f);
        return;
    }
    match v {
        2 => (h.nmi)(),
        0..=31 => {
            let name = EXCEPTION_NAMES[v as usize];
            if v == 14 {
                panic!(
                    "Fatal exception {} ({}) at rip {:#x}, address {:#x}, error code {:#x}",
                    v,
                    name,
                    f.rip,
                    super::read_cr2(),
                    f.error_code
                );
            }
            panic!(
                "Fatal exception {} ({}) at rip {:#x}, error code {:#x}",
                v, name, f.rip, f.error_code
            );
        }
        TIMER_VECTOR => {
            super::x2apic::eoi();
            (h.timer)(from_user);
        }
        super::tlb::TLB_VECTOR => {
            super::x2apic::eoi();
            super::tlb::on_ipi();
        }
        // Another CPU put work on this CPU's queues.
        WAKEUP_VECTOR => {
            super::x2apic::eoi();
            (h.resched)();
        }
        STOP_VECTOR => (h.stop)(),
        // ihk_os_freeze / thaw (ikc/freeze.rs).
        FREEZE_VECTOR => {
            super::x2apic::eoi();
            (h.freeze)();
        }
        IKC_MASTER_VECTOR => {
            super::x2apic::eoi();
            (h.ikc_master)();
        }
        SPURIOUS_VECTOR => {}
        // mcexec rang this CPU (process/trap.rs).
        ihk_abi::offload::OFFLOAD_VECTOR => {
            super::x2apic::eoi();
            (h.offload_doorbell)();
        }
        // IKC doorbells and wake-ups: the interrupted idle loop does the work.
        _ => super::x2apic::eoi(),
    }
}
