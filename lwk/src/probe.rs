//! `pvm_probe` (kernel argument, docs/pvm.md): times short instruction
//! sequences in the LWK's kernel mode at boot and prints one kmsg line per
//! case (`pvm_probe: <case> n=<iterations> ticks/iter=<t> ns/iter=<ns>`),
//! so that a host whose `/dev/kvm` runs guest kernel code in an instruction
//! emulator (KVM PVM) shows what one kernel instruction costs and which
//! guest conditions, if any, let kernel code run natively: loop length,
//! interrupt flag, right after `hlt`, a pending timer, CR0/CR4/EFER bits,
//! the virtual address the code runs at (kernel image, direct map, the
//! lower-half identity map), and the privileged instructions the entry and
//! exit paths use. On hardware virtualization every plain case is about one
//! TSC tick per iteration.
//!
//! Also logs the single-step profile of `pvm_profile=<nr>`
//! (`arch::x86_64::stepcount`) once the profiled call is done.
//!
//! Owns nothing after boot: the page it copies code into is freed, every
//! control register it changes is restored, and no deadline is left armed.

use crate::arch::x86_64::{self as cpu, deadline, tsc};
use crate::mm::phys;

core::arch::global_asm!(
    r#"
    .macro PROBE_T0
    lfence
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r8, rax
    .endm
    .macro PROBE_T1
    lfence
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, r8
    ret
    .endm

    .section .text
    /* Every probe: rdi = iterations (>= 1), returns elapsed TSC ticks. */
    .balign 64
    .global lwk_probe_loop
lwk_probe_loop:
    PROBE_T0
2:  dec rdi
    jnz 2b
    PROBE_T1
    .global lwk_probe_loop_end
lwk_probe_loop_end:

    .balign 16
lwk_probe_nops:
    PROBE_T0
2:  .rept 32
    nop
    .endr
    dec rdi
    jnz 2b
    PROBE_T1

    .balign 16
lwk_probe_load:
    PROBE_T0
2:  mov rax, [rsp]
    mov rax, [rsp + 8]
    dec rdi
    jnz 2b
    PROBE_T1

    .balign 16
lwk_probe_cpuid:
    push rbx
    PROBE_T0
2:  xor eax, eax
    xor ecx, ecx
    cpuid
    dec rdi
    jnz 2b
    pop rbx
    PROBE_T1

    .balign 16
lwk_probe_rdmsr:
    PROBE_T0
2:  mov ecx, 0xc0000080
    rdmsr
    dec rdi
    jnz 2b
    PROBE_T1

    .balign 16
lwk_probe_rdtsc:
    PROBE_T0
2:  rdtsc
    dec rdi
    jnz 2b
    PROBE_T1

    .balign 16
lwk_probe_cr3:
    PROBE_T0
2:  mov rax, cr3
    mov cr3, rax
    dec rdi
    jnz 2b
    PROBE_T1

    .balign 16
lwk_probe_pushf:
    PROBE_T0
2:  pushfq
    popfq
    dec rdi
    jnz 2b
    PROBE_T1

    .balign 16
lwk_probe_cli_sti:
    PROBE_T0
2:  cli
    sti
    dec rdi
    jnz 2b
    cli
    PROBE_T1

    .balign 16
lwk_probe_gs:
    PROBE_T0
2:  mov rax, gs:[0]
    dec rdi
    jnz 2b
    PROBE_T1
"#
);

extern "C" {
    fn lwk_probe_loop(n: u64) -> u64;
    fn lwk_probe_loop_end();
    fn lwk_probe_nops(n: u64) -> u64;
    fn lwk_probe_load(n: u64) -> u64;
    fn lwk_probe_cpuid(n: u64) -> u64;
    fn lwk_probe_rdmsr(n: u64) -> u64;
    fn lwk_probe_rdtsc(n: u64) -> u64;
    fn lwk_probe_cr3(n: u64) -> u64;
    fn lwk_probe_pushf(n: u64) -> u64;
    fn lwk_probe_cli_sti(n: u64) -> u64;
    fn lwk_probe_gs(n: u64) -> u64;
}

type Probe = unsafe extern "C" fn(u64) -> u64;

/// Fewest ticks of `reps` runs of `probe(n)` (the minimum is the cost
/// without host preemptions).
fn best(probe: Probe, n: u64, reps: u32) -> u64 {
    let mut min = u64::MAX;
    for _ in 0..reps {
        // SAFETY: every probe only reads registers, its own stack and the
        // per-CPU block, or reloads CR3 with its own value; `n` >= 1.
        min = min.min(unsafe { probe(n.max(1)) });
    }
    min
}

fn report(case: &str, n: u64, ticks: u64) {
    let khz = crate::boot_params::get().tsc_khz.max(1) as u128;
    // Picoseconds per iteration, printed as ns with two decimals.
    let ps = ticks as u128 * 1_000_000_000 / khz / n.max(1) as u128;
    let milli_ticks = ticks as u128 * 1000 / n.max(1) as u128;
    crate::printk!(
        "pvm_probe: {} n={} ticks/iter={}.{:03} ns/iter={}.{:02}",
        case,
        n,
        milli_ticks / 1000,
        milli_ticks % 1000,
        ps / 1000,
        (ps % 1000) / 10
    );
    crate::monitor::beat();
}

fn run(case: &str, probe: Probe, n: u64) {
    report(case, n, best(probe, n, 3));
}

/// Runs every case on this CPU (the BSP, after boot, interrupts off).
pub fn run_all() {
    let (cr0, cr4) = (read_cr0(), read_cr4());
    let efer = cpu::rdmsr(IA32_EFER);
    crate::printk!("pvm_probe: start cr0={:#x} cr4={:#x} efer={:#x} kvm-features={:#x}", cr0, cr4, efer, kvm_features());
    // Loop length: a cost per iteration that falls with n would mean the
    // host goes native after a batch of emulated instructions.
    for n in [1u64, 16, 256, 4096, 65536, 262_144] {
        run("loop kernel-image IF=0", lwk_probe_loop, n);
    }
    run("nops32 kernel-image IF=0", lwk_probe_nops, 4096);
    run("load2 kernel-image IF=0", lwk_probe_load, 4096);
    run("gs-load kernel-image IF=0", lwk_probe_gs, 4096);
    run("pushf/popf IF=0", lwk_probe_pushf, 1024);
    run("rdtsc IF=0", lwk_probe_rdtsc, 1024);
    run("cpuid IF=0", lwk_probe_cpuid, 256);
    run("rdmsr(EFER) IF=0", lwk_probe_rdmsr, 256);
    run("mov cr3 IF=0", lwk_probe_cr3, 256);
    run("cli/sti", lwk_probe_cli_sti, 1024);

    // Interrupt flag: IF=1 without and with a timer due later.
    with_interrupts(|| run("loop kernel-image IF=1", lwk_probe_loop, 65536));
    deadline::set_kernel(tsc::now() + tsc::ms_to_ticks(10_000));
    with_interrupts(|| run("loop kernel-image IF=1 timer-armed", lwk_probe_loop, 65536));
    deadline::set_kernel(0);

    // Right after hlt (woken by the timer 200 us later).
    deadline::set_kernel(tsc::now() + tsc::us_to_ticks(200));
    cpu::enable_interrupts_and_halt();
    cpu::interrupts_off();
    run("loop kernel-image after-hlt", lwk_probe_loop, 4096);
    deadline::set_kernel(0);

    // Control-register bits (each restored at once).
    with_cr4(cr4 ^ CR4_PGE, || run("loop CR4.PGE-flipped", lwk_probe_loop, 65536));
    with_cr0(cr0 & !CR0_WP, || run("loop CR0.WP=0", lwk_probe_loop, 65536));
    with_efer(efer & !EFER_SCE, || run("loop EFER.SCE=0", lwk_probe_loop, 65536));

    // The same code at other addresses: the direct map and the lower-half
    // identity map of the same physical page.
    if let Some(pa) = phys::alloc_zeroed(phys::PAGE, phys::PAGE) {
        let start = lwk_probe_loop as *const u8;
        let len = lwk_probe_loop_end as *const u8 as usize - start as usize;
        let dm = phys::to_virt(pa);
        // SAFETY: the page is ours (just allocated), `len` < 4 KiB, and the
        // copied code is position-independent (one relative branch).
        unsafe { core::ptr::copy_nonoverlapping(start, dm, len) };
        // SAFETY: both addresses map the page that now holds a copy of
        // lwk_probe_loop; the identity map and the direct map are
        // executable (the kernel image itself runs from them at boot).
        let (at_dm, at_low): (Probe, Probe) = unsafe { (core::mem::transmute(dm), core::mem::transmute(pa as *const u8)) };
        for n in [256u64, 65536] {
            run("loop direct-map(0xffff8000..) IF=0", at_dm, n);
            run("loop lower-half-identity IF=0", at_low, n);
        }
        with_interrupts(|| run("loop lower-half-identity IF=1", at_low, 65536));
        phys::free(pa, phys::PAGE);
    }
    crate::printk!("pvm_probe: done");
}

/// The single-step profile of `pvm_profile=<nr>`, once it is complete
/// (idle loop): `pvm_profile: rip=<hex> n=<count>` lines in address order,
/// then the total. Sorted first: a search per address would cost minutes
/// of emulated instructions for a long call.
pub fn log_profile() {
    let Some((mut rips, total)) = cpu::stepcount::take_profile() else { return };
    rips.sort_unstable();
    let mut i = 0;
    while i < rips.len() {
        let j = i + rips[i..].iter().take_while(|&&r| r == rips[i]).count();
        crate::printk!("pvm_profile: rip={:x} n={}", rips[i], j - i);
        i = j;
    }
    crate::printk!("pvm_profile: done, {} instructions single-stepped", total);
}

const IA32_EFER: u32 = 0xc000_0080;
const EFER_SCE: u64 = 1;
const CR4_PGE: u64 = 1 << 7;
const CR0_WP: u64 = 1 << 16;

/// KVM paravirtual features (CPUID 0x4000_0001 eax; 0 without KVM).
fn kvm_features() -> u32 {
    let (_, b, c, d) = cpu::cpuid(0x4000_0000);
    if [b.to_le_bytes(), c.to_le_bytes(), d.to_le_bytes()].concat() != *b"KVMKVMKVM\0\0\0" {
        return 0;
    }
    cpu::cpuid(0x4000_0001).0
}

fn with_interrupts(f: impl FnOnce()) {
    x86_64::instructions::interrupts::enable();
    f();
    cpu::interrupts_off();
}

fn read_cr0() -> u64 {
    x86_64::registers::control::Cr0::read_raw()
}

fn read_cr4() -> u64 {
    x86_64::registers::control::Cr4::read_raw()
}

fn with_cr0(v: u64, f: impl FnOnce()) {
    let old = read_cr0();
    // SAFETY: only CR0.WP changes, and back within this function; nothing
    // here writes read-only memory.
    unsafe { core::arch::asm!("mov cr0, {}", in(reg) v) };
    f();
    // SAFETY: restores the value read above.
    unsafe { core::arch::asm!("mov cr0, {}", in(reg) old) };
}

fn with_cr4(v: u64, f: impl FnOnce()) {
    let old = read_cr4();
    // SAFETY: only CR4.PGE flips (a TLB flush), and back within this function.
    unsafe { core::arch::asm!("mov cr4, {}", in(reg) v) };
    f();
    // SAFETY: restores the value read above.
    unsafe { core::arch::asm!("mov cr4, {}", in(reg) old) };
}

fn with_efer(v: u64, f: impl FnOnce()) {
    let old = cpu::rdmsr(IA32_EFER);
    cpu::wrmsr(IA32_EFER, v);
    f();
    cpu::wrmsr(IA32_EFER, old);
}

/// `pvm_avx_probe`: can kernel mode move a whole YMM register to and from
/// memory here (VEX-encoded `vmovdqu`, with CR4.OSXSAVE and XCR0.AVX set)?
/// Logs `pvm_avx_probe: ...` lines and clears CR4.OSXSAVE again (XCR0
/// stays 7; nothing reads it with OSXSAVE off).
pub fn avx_probe() {
    let (_, _, c1, _) = cpu::cpuid(1);
    if c1 & (1 << 28) == 0 {
        crate::printk!("pvm_avx_probe: no AVX");
        return;
    }
    let cr4 = read_cr4();
    let mut src = [0u64; 8];
    let mut dst = [0u64; 8];
    for (i, w) in src.iter_mut().enumerate() {
        *w = 0x1111_1111_1111_1111u64.wrapping_mul(i as u64 + 1);
    }
    // SAFETY: OSXSAVE and XCR0 = x87|SSE|AVX only enable state handling; the
    // kernel keeps no vector values; the buffers are ours and 32+ bytes.
    unsafe {
        core::arch::asm!("mov cr4, {}", in(reg) cr4 | (1 << 18));
        crate::printk!("pvm_avx_probe: OSXSAVE set");
        core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") 7u32, in("edx") 0u32);
        crate::printk!("pvm_avx_probe: xsetbv(7) done");
        let t0 = tsc::now();
        core::arch::asm!("vmovdqu ymm0, [{}]", in(reg) src.as_ptr(), options(nostack));
        let t1 = tsc::now();
        crate::printk!("pvm_avx_probe: vmovdqu load done ({} ticks)", t1 - t0);
        core::arch::asm!("vmovdqu [{}], ymm0", in(reg) dst.as_mut_ptr(), options(nostack));
        crate::printk!("pvm_avx_probe: vmovdqu store done: {:x?}", &dst[..4]);
        core::arch::asm!("vextracti128 [{}], ymm0, 1", in(reg) dst.as_mut_ptr().add(4), options(nostack));
        crate::printk!("pvm_avx_probe: vextracti128 store done: {:x?}", &dst[4..6]);
        core::arch::asm!("mov cr4, {}", in(reg) cr4);
    }
    crate::printk!("pvm_avx_probe: ok={}", dst[..4] == src[..4] && dst[4..6] == src[2..4]);
}
