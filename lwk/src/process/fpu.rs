//! x87/SSE/AVX state of user threads, saved with XSAVE (FXSAVE on CPUs
//! without it). The kernel itself never uses these registers (soft-float
//! target), so a thread's state stays in the CPU until another thread runs
//! on it (`sched` tracks the owner per CPU).
//!
//! Under a nested hypervisor that runs guest kernel code in an instruction
//! emulator (seen with KVM PVM hosts: kernel code runs ~1000x slower and
//! XSAVE/XRSTOR and VEX instructions cannot be emulated: `pvm_avx_probe`),
//! XSAVE is left disabled and FXSAVE keeps x87/SSE state only. User mode
//! there runs natively and still sees the host's OSXSAVE, AVX and XCR0, so
//! the upper halves of YMM registers are not preserved across a switch to
//! another thread on the CPU or a signal handler; the offload area tells
//! mcexec (`user_fpu_components`), which turns glibc's AVX code off.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::mm::phys::{self, PAGE};

static USE_XSAVE: AtomicBool = AtomicBool::new(false);
/// Bytes of a save area for the enabled components.
static AREA_SIZE: AtomicU64 = AtomicU64::new(512);
/// Enabled components (XCR0): x87|SSE until XSAVE is on, so also what each
/// thread's save area keeps (published to mcexec, `service::publish_user_fpu`).
static XCR0: AtomicU64 = AtomicU64::new(3);

/// Components user programs may use: x87, SSE, AVX, AVX-512 (opmask,
/// ZMM_Hi256, Hi16_ZMM). PKRU and AMX need opt-in Linux APIs we lack.
const USER_COMPONENTS: u64 = 0b1110_0111;

fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Enable FPU/SSE (and XSAVE with the user components the CPU has) on
/// this CPU. CR4.FSGSBASE is cleared: user code must not change GS base
/// (see `arch::x86_64::entry`).
pub fn init_this_cpu() {
    // SAFETY: control-register updates that only enable FPU/SIMD state
    // handling; no memory is affected.
    unsafe {
        let mut cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0);
        cr0 = (cr0 | (1 << 1)) & !((1 << 2) | (1 << 3)); // MP, !EM, !TS
        asm!("mov cr0, {}", in(reg) cr0);
        let mut cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4);
        cr4 |= (1 << 9) | (1 << 10); // OSFXSR, OSXMMEXCPT
        cr4 &= !(1 << 16); // FSGSBASE off
        let (_, _, ecx1, _) = cpuid(1, 0);
        let emulated = kernel_is_emulated();
        if emulated && crate::smp::cpu_id() == 0 {
            crate::printk!(
                "fpu: kernel code runs under instruction emulation (nested hypervisor); XSAVE disabled, user programs use SSE"
            );
        }
        let mut has_xsave = ecx1 & (1 << 26) != 0 && !emulated;
        if has_xsave {
            cr4 |= 1 << 18; // OSXSAVE
        }
        asm!("mov cr4, {}", in(reg) cr4);
        if has_xsave {
            let (eax, _, _, edx) = cpuid(0xd, 0);
            let supported = (eax as u64) | ((edx as u64) << 32);
            let mut xcr0 = supported & USER_COMPONENTS;
            // AVX-512 components only all together, and only with AVX.
            if xcr0 & 0xe0 != 0xe0 || xcr0 & 4 == 0 {
                xcr0 &= !0xe0;
            }
            asm!("xsetbv", in("ecx") 0u32, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32);
            let (_, ebx, _, _) = cpuid(0xd, 0);
            // CPUID exits to the hypervisor. One that did not intercept the
            // XSETBV (QEMU 7.2's TCG for a nested guest: Debian 12) has put its
            // own XCR0 back by now: user programs would see AVX come and go.
            let (lo, hi): (u32, u32);
            asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi);
            let now = (lo as u64) | ((hi as u64) << 32);
            if now == xcr0 {
                XCR0.store(xcr0, Ordering::Relaxed);
                AREA_SIZE.store(ebx as u64, Ordering::Relaxed);
                USE_XSAVE.store(true, Ordering::Relaxed);
            } else {
                if crate::smp::cpu_id() == 0 {
                    crate::printk!("fpu: XCR0 {:#x} became {:#x} after a VM exit (the hypervisor ignored XSETBV)", xcr0, now);
                }
                has_xsave = false;
                asm!("mov cr4, {}", in(reg) cr4 & !(1 << 18));
            }
        }
        if crate::smp::cpu_id() == 0 {
            match has_xsave {
                true => crate::printk!("fpu: XSAVE on (xcr0={:#x}, {} bytes)", xcr0(), area_size()),
                false => crate::printk!("fpu: XSAVE off, FXSAVE (x87/SSE only)"),
            }
        }
        asm!("fninit");
    }
}

/// Does this CPU execute kernel code in an instruction emulator? A short
/// loop takes a few hundred TSC ticks natively and over a hundred
/// thousand when emulated. The fastest of several runs counts: one run can
/// take as long natively when the vCPU is preempted or exits in the middle
/// (seen under nested SVM in QEMU, where it turned XSAVE off for nothing),
/// while an emulator is slow on every run.
fn kernel_is_emulated() -> bool {
    let mut best = u64::MAX;
    for _ in 0..8 {
        let t0 = crate::arch::x86_64::tsc::now();
        let mut x = 0u64;
        for i in 0..64u64 {
            x = core::hint::black_box(x.wrapping_add(i));
        }
        let t1 = crate::arch::x86_64::tsc::now();
        core::hint::black_box(x);
        best = best.min(t1.saturating_sub(t0));
    }
    best > 64 * 2000
}

/// Size of a signal frame's FPU image.
pub fn area_size() -> u64 {
    AREA_SIZE.load(Ordering::Relaxed)
}

/// Enabled components (for the signal frame's xsave header).
pub fn xcr0() -> u64 {
    XCR0.load(Ordering::Relaxed)
}

pub fn uses_xsave() -> bool {
    USE_XSAVE.load(Ordering::Relaxed)
}

/// A thread's saved state (64-byte aligned, in the direct map).
pub struct FpuState {
    pa: u64,
    size: u64,
}

impl FpuState {
    /// Initial state: x87 control word 0x37f, MXCSR 0x1f80, all else clear.
    pub fn new() -> Option<FpuState> {
        let size = area_size().div_ceil(PAGE) * PAGE;
        let pa = phys::alloc_zeroed(size, PAGE)?;
        let s = FpuState { pa, size };
        s.reset();
        Some(s)
    }

    pub fn reset(&self) {
        let p = self.ptr();
        // SAFETY: the area is ours and at least 512 bytes.
        unsafe {
            core::ptr::write_bytes(p, 0, area_size() as usize);
            (p as *mut u16).write(0x037f);
            (p.add(24) as *mut u32).write(0x1f80);
            (p.add(28) as *mut u32).write(0xffff); // MXCSR_MASK (ignored by restore)
        }
    }

    pub fn ptr(&self) -> *mut u8 {
        phys::to_virt(self.pa)
    }

    /// Save the CPU's user FPU state here.
    pub fn save(&self) {
        save_to(self.ptr());
    }

    /// Load this state into the CPU.
    pub fn restore(&self) {
        restore_from(self.ptr());
    }
}

impl Drop for FpuState {
    fn drop(&mut self) {
        phys::free(self.pa, self.size);
    }
}

/// Save the current FPU state to `p` (64-byte aligned, `area_size()` bytes).
pub fn save_to(p: *mut u8) {
    // SAFETY: `p` is a writable, aligned save area of sufficient size.
    unsafe {
        if uses_xsave() {
            asm!("xsave64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
        } else {
            asm!("fxsave64 [{}]", in(reg) p, options(nostack));
        }
    }
}

/// Load FPU state from `p`. The caller has checked the image is valid
/// (XSAVE header reserved bits clear, MXCSR reserved bits clear).
pub fn restore_from(p: *const u8) {
    // SAFETY: `p` is an aligned save area holding a valid image.
    unsafe {
        if uses_xsave() {
            asm!("xrstor64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
        } else {
            asm!("fxrstor64 [{}]", in(reg) p, options(nostack));
        }
    }
}
