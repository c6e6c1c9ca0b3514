//! The boot parameters the host left at `rdi` (specification §1.2.3): the
//! LWK-side `ihk_mc_get_*` queries are methods of [`BootParams`]; this
//! module validates it once and hands out the shared reference.

use crate::arch::x86_64::{halt_forever, outb};
use core::sync::atomic::{AtomicU64, Ordering};
use ihk_abi::doorbell::DEBUGCON_PORT;
pub use ihk_abi::BootParams;

static BOOT_PARAMS: AtomicU64 = AtomicU64::new(0);

/// Validate and publish the boot parameters at physical (= identity-mapped
/// virtual) address `phys`. Before kmsg exists the only way to report a bad
/// block is the debug port, so that is used, and the CPU stops.
pub fn init(phys: u64) -> &'static BootParams {
    if phys == 0 || !phys.is_multiple_of(8) {
        early_fatal("boot parameters: bad address in rdi");
    }
    // SAFETY: the host identity-maps guest memory and placed the block at
    // `phys` (boot protocol); it is only read, and never changes after entry.
    // Through the direct map (mm/phys.rs): valid under any page table.
    let virt = crate::arch::x86_64::direct_map::to_virt(phys) as u64;
    let bp = unsafe { &*(virt as *const BootParams) };
    if !bp.is_valid() {
        early_fatal("boot parameters: bad magic, version or counts");
    }
    if bp.nr_cores == 0 || bp.nr_chunks == 0 || bp.nr_numa_nodes == 0 {
        early_fatal("boot parameters: no CPU, memory chunk or NUMA node");
    }
    BOOT_PARAMS.store(virt, Ordering::Release);
    bp
}

/// The validated boot parameters (after [`init`]).
pub fn get() -> &'static BootParams {
    let p = BOOT_PARAMS.load(Ordering::Acquire);
    assert!(p != 0, "boot parameters used before init");
    // SAFETY: set by init() after validation; see there.
    unsafe { &*(p as *const BootParams) }
}

/// Kernel arguments as text (`ihk_get_kargs`).
pub fn kargs() -> &'static str {
    get().kargs_str().unwrap_or("<invalid UTF-8>")
}

fn early_fatal(msg: &str) -> ! {
    for b in "mckernel: "
        .bytes()
        .chain(msg.bytes())
        .chain(core::iter::once(b'\n'))
    {
        outb(DEBUGCON_PORT, b);
    }
    halt_forever()
}
