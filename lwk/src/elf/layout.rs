//! Layout of the Linux initial process stack (System V x86-64 ABI §3.4.1,
//! and what Linux's `create_elf_tables` writes), from the top down:
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
//!
//! Pure arithmetic (`stack` writes it into the address space), unit-tested
//! on the host (`lwk/hosttest`).

use alloc::vec::Vec;

use crate::errno::*;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// The auxiliary vector's values that come from outside the stack.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuxInfo {
    pub phdr: u64,
    pub phnum: u64,
    /// Load bias of the interpreter (0 without one).
    pub base: u64,
    pub entry: u64,
    pub uid: u64,
    pub euid: u64,
    pub gid: u64,
    pub egid: u64,
    pub hwcap: u64,
    pub minsigstksz: u64,
    /// The vDSO's ELF header (0: no vDSO, no AT_SYSINFO_EHDR).
    pub sysinfo_ehdr: u64,
}

/// Where everything goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub strings: u64,
    pub platform: u64,
    pub random: u64,
    /// The user rsp at entry (address of `words[0]`, argc).
    pub sp: u64,
    /// argc, argv.., 0, envp.., 0, auxv pairs, AT_NULL pair.
    pub words: Vec<u64>,
}

/// Addresses of the strings blob (`blob_len` bytes, with 8 bytes of zero
/// above it), the platform string and the random bytes below `top`.
pub fn string_area(top: u64, blob_len: usize) -> (u64, u64, u64) {
    let strings = (top - 8 - blob_len as u64) & !7;
    let platform = strings - 8;
    let random = platform - 16;
    (strings, platform, random)
}

/// The stack below `top` for `blob` (`execfn\0`, `argc` argv strings, then
/// `envc` envp strings, each NUL-terminated). EINVAL when the blob does not
/// hold exactly 1 + argc + envc strings.
pub fn compute(top: u64, blob: &[u8], argc: usize, envc: usize, aux: &AuxInfo) -> Result<Layout, Errno> {
    let (strings, platform, random) = string_area(top, blob.len());
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
    let mut auxv: Vec<(u64, u64)> = Vec::with_capacity(20);
    if aux.sysinfo_ehdr != 0 {
        auxv.push((AT_SYSINFO_EHDR, aux.sysinfo_ehdr));
    }
    auxv.extend_from_slice(&[
        (AT_PHDR, aux.phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, aux.phnum),
        (AT_PAGESZ, 4096),
        (AT_BASE, aux.base),
        (AT_FLAGS, 0),
        (AT_ENTRY, aux.entry),
        (AT_UID, aux.uid),
        (AT_EUID, aux.euid),
        (AT_GID, aux.gid),
        (AT_EGID, aux.egid),
        (AT_PLATFORM, platform),
        (AT_HWCAP, aux.hwcap),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_RANDOM, random),
        (AT_HWCAP2, 0),
        (AT_EXECFN, execfn),
        (AT_MINSIGSTKSZ, aux.minsigstksz),
    ]);
    // Words below `random`: argc, argv.., 0, envp.., 0, auxv pairs, AT_NULL pair.
    let mut words: Vec<u64> = Vec::with_capacity(3 + argc + envc + 2 * (auxv.len() + 1));
    words.push(argc as u64);
    words.extend_from_slice(argv);
    words.push(0);
    words.extend_from_slice(envp);
    words.push(0);
    for &(k, v) in &auxv {
        words.push(k);
        words.push(v);
    }
    words.push(AT_NULL);
    words.push(0);
    let sp = (random - words.len() as u64 * 8) & !15;
    Ok(Layout { strings, platform, random, sp, words })
}
