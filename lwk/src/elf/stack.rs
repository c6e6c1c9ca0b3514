//! Writing the Linux initial process stack (its layout is `layout`) into
//! the new program's address space.

use alloc::vec::Vec;

use super::layout::{self, AuxInfo};
use super::Loaded;
use crate::errno::*;
use crate::process::Thread;

/// Write the initial stack of `t`'s process; returns the user rsp.
pub fn build(t: &Thread, blob: &[u8], argc: usize, envc: usize, prog: &Loaded, interp: Option<&Loaded>, vdso: u64) -> Result<u64, Errno> {
    let p = &t.process;
    let sp_params = &p.start;
    let mut a = p.aspace.lock();
    let top = a.stack_top;
    // Strings: the blob verbatim at the top (8 bytes of zero above it).
    let (strings, platform, random) = layout::string_area(top, blob.len());
    a.write(strings, blob)?;
    a.write(platform, b"x86_64\0\0")?;
    a.write(random, &sp_params.random)?;
    let hwcap = core::arch::x86_64::__cpuid(1).edx as u64;
    let aux = AuxInfo {
        phdr: prog.phdr,
        phnum: prog.phnum,
        base: interp.map_or(0, |i| i.bias),
        entry: prog.entry,
        uid: sp_params.uid as u64,
        euid: sp_params.euid as u64,
        gid: sp_params.gid as u64,
        egid: sp_params.egid as u64,
        hwcap,
        minsigstksz: crate::process::signal::min_sigstack_size(),
        sysinfo_ehdr: vdso,
    };
    let l = layout::compute(top, blob, argc, envc, &aux)?;
    let sp = l.sp;
    if sp < top - a.stack_bytes() {
        return Err(E2BIG); // does not fit the premapped stack
    }
    let bytes: Vec<u8> = l.words.iter().flat_map(|w| w.to_le_bytes()).collect();
    a.write(sp, &bytes)?;
    Ok(sp)
}
