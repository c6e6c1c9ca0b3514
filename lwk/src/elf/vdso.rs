//! The vDSO every program gets (`AT_SYSINFO_EHDR`): the image built from
//! `lwk/vdso/` by `build.rs` (clock_gettime, gettimeofday, time,
//! clock_getres, getcpu; glibc finds them as `__vdso_*@LINUX_2.6`), and
//! below it one read-only data page, [`Vvar`], from which the image reads
//! the LWK's clock in user mode: realtime = `boot_realtime_ns` + (TSC -
//! `boot_tsc`) * `mult` >> `shift`, and the process's MONOTONIC and
//! BOOTTIME offsets. The clock never changes after boot, so the page is
//! written once, when a program is loaded; both pages are ordinary process
//! memory (fork copies them, mcexec's mirror shows them, munmap removes
//! them), named `[vvar]` and `[vdso]` in /proc/self/maps.

use crate::errno::*;
use crate::mm::pagetable::Perm;
use crate::mm::phys::PAGE;
use crate::mm::vma::VmaKind;
use crate::process::Thread;

/// The vDSO image (an ELF shared object: one R+X PT_LOAD from address 0,
/// no relocations).
static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// `struct lwk_vvar` of `lwk/vdso/vdso.c`, field for field.
#[repr(C)]
struct Vvar {
    magic: u64,
    boot_tsc: u64,
    boot_realtime_ns: u64,
    mult: u64,
    shift: u64,
    monotonic_offset_ns: i64,
    boottime_offset_ns: i64,
    flags: u64,
}

const VVAR_MAGIC: u64 = 0x4c57_4b56_7676_6172; // "LWKVvvar"
/// ns = ticks * mult >> SHIFT: 40 bits keep the error under 1 us a day.
const SHIFT: u64 = 40;

impl Vvar {
    fn bytes(&self) -> &[u8] {
        // SAFETY: repr(C) of u64/i64 fields only: no padding, any bytes valid.
        unsafe { core::slice::from_raw_parts(self as *const Vvar as *const u8, core::mem::size_of::<Vvar>()) }
    }
}

/// Map the data page and the image into `t`'s process (top-down in the
/// mmap area); returns the image's address for `AT_SYSINFO_EHDR`.
pub fn map(t: &Thread) -> Result<u64, Errno> {
    let bp = crate::boot_params::get();
    let sp = &t.process.start;
    let vvar = Vvar {
        magic: VVAR_MAGIC,
        boot_tsc: bp.boot_tsc,
        boot_realtime_ns: bp.boot_realtime_ns,
        mult: ((1_000_000u128 << SHIFT) / bp.tsc_khz.max(1) as u128) as u64,
        shift: SHIFT,
        monotonic_offset_ns: sp.monotonic_offset_ns,
        // mcexec read the two offsets at two instants: BOOTTIME must not
        // fall below MONOTONIC because of that (as in syscall::time).
        boottime_offset_ns: sp.boottime_offset_ns.max(sp.monotonic_offset_ns),
        flags: 0,
    };
    let image_len = (IMAGE.len() as u64).div_ceil(PAGE) * PAGE;
    let mut a = t.process.aspace.lock();
    let start = a.find_free(PAGE + image_len, 0).ok_or(ENOMEM)?;
    let ro = Perm { read: true, write: false, exec: false };
    a.map_new(start, PAGE, ro, VmaKind::Vdso, false)?;
    a.map_new(start + PAGE, image_len, Perm { exec: true, ..ro }, VmaKind::Vdso, false)?;
    a.write_force(start, vvar.bytes())?;
    a.write_force(start + PAGE, IMAGE)?;
    Ok(start + PAGE)
}
