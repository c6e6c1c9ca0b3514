//! The Linux initial process stack (System V x86-64 ABI §3.4.1, and what
//! Linux's `create_elf_tables` writes), from the top down:
//!
//! ```text
//!   execfn, argv and envp strings   (the blob from mcexec, as is)
//!   "x86_64\0"                      AT_PLATFORM
//!   16 random bytes                 AT_RANDOM
//!   (padding to 16 bytes)
//!   auxv pairs, AT_NULL last
//!   NULL, envp[envc-1] .. envp[0]
//!   NULL, argv[argc-1] .. argv[0]
//!   argc                            <- rsp at entry, 16-byte aligned
//! ```

use alloc::vec::Vec;

use super::Loaded;
use crate::process::Thread;
use crate::errno::*;

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;
const AT_MINSIGSTKSZ: u64 = 51;

/// Write the initial stack of `t`'s process; returns the user rsp.
pub fn build(t: &Thread, blob: &[u8], argc: usize, envc: usize, prog: &Loaded, interp: Option<&Loaded>) -> Result<u64, Errno> {
    let p = &t.process;
    let sp_params = &p.start;
    let a = p.aspace.lock();
    let top = a.stack_top;
    // Strings: the blob verbatim at the top (8 bytes of zero above it).
    let strings = (top - 8 - blob.len() as u64) & !7;
    a.write(strings, blob)?;
    let platform = strings - 8;
    a.write(platform, b"x86_64\0\0")?;
    let random = platform - 16;
    a.write(random, &sp_params.random)?;
    // String addresses: execfn, then argc + envc strings.
    let mut addrs: Vec<u64> = Vec::new();
    let mut off = 0usize;
    while off < blob.len() {
        addrs.push(strings + off as u64);
        let n = blob[off..].iter().position(|&b| b == 0).ok_or(EINVAL)?;
        off += n + 1;
    }
    if addrs.len() != 1 + argc + envc {
        return Err(EINVAL);
    }
    let execfn = addrs[0];
    let argv = &addrs[1..1 + argc];
    let envp = &addrs[1 + argc..];
    let hwcap = core::arch::x86_64::__cpuid(1).edx as u64;
    let auxv: [(u64, u64); 19] = [
        (AT_PHDR, prog.phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, prog.phnum),
        (AT_PAGESZ, 4096),
        (AT_BASE, interp.map_or(0, |i| i.bias)),
        (AT_FLAGS, 0),
        (AT_ENTRY, prog.entry),
        (AT_UID, sp_params.uid as u64),
        (AT_EUID, sp_params.euid as u64),
        (AT_GID, sp_params.gid as u64),
        (AT_EGID, sp_params.egid as u64),
        (AT_PLATFORM, platform),
        (AT_HWCAP, hwcap),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_RANDOM, random),
        (AT_HWCAP2, 0),
        (AT_EXECFN, execfn),
        (AT_MINSIGSTKSZ, crate::process::signal::min_sigstack_size()),
    ];
    // Words below `random`: argc, argv.., 0, envp.., 0, auxv pairs, AT_NULL pair.
    let mut words: Vec<u64> = Vec::with_capacity(3 + argc + envc + 2 * (auxv.len() + 1));
    words.push(argc as u64);
    words.extend_from_slice(argv);
    words.push(0);
    words.extend_from_slice(envp);
    words.push(0);
    for (k, v) in auxv {
        words.push(k);
        words.push(v);
    }
    words.push(AT_NULL);
    words.push(0);
    let sp = (random - words.len() as u64 * 8) & !15;
    if sp < top - a.stack_bytes() {
        return Err(Errno(7)); // E2BIG: does not fit the premapped stack
    }
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    a.write(sp, &bytes)?;
    Ok(sp)
}
