//! ELF64 x86-64 headers: the checks on the file header and the program
//! headers as `elf` reads them (bytes in, fields out). Pure parsing, unit-
//! tested on the host (`lwk/hosttest`).

use alloc::vec::Vec;

use crate::errno::*;

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
pub const EM_X86_64: u16 = 62;
pub const PT_LOAD: u32 = 1;
pub const PT_INTERP: u32 = 3;
pub const PT_PHDR: u32 = 6;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

#[derive(Clone, Copy, Debug)]
pub struct Phdr {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// The fields of a checked ELF file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ehdr {
    pub ty: u16,
    pub entry: u64,
    pub phoff: u64,
    pub phnum: u64,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Check the ELF header `eh` (the first 64 bytes) of a file of `size`
/// bytes: ELF64, little-endian, x86-64, ET_EXEC or ET_DYN, and program
/// headers of the standard size that lie inside the file.
pub fn parse_ehdr(eh: &[u8], size: u64) -> Result<Ehdr, Errno> {
    if size < 64 || eh.len() < 64 {
        return Err(ENOEXEC);
    }
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 || u16_at(eh, 18) != EM_X86_64 {
        return Err(ENOEXEC);
    }
    let ty = u16_at(eh, 16);
    if ty != ET_EXEC && ty != ET_DYN {
        return Err(ENOEXEC);
    }
    let entry = u64_at(eh, 24);
    let phoff = u64_at(eh, 32);
    let phentsize = u16_at(eh, 54) as u64;
    let phnum = u16_at(eh, 56) as u64;
    if phentsize != 56 || phnum == 0 || phnum > 256 || phoff.checked_add(phnum * 56).is_none_or(|e| e > size) {
        return Err(ENOEXEC);
    }
    Ok(Ehdr { ty, entry, phoff, phnum })
}

/// The program headers in `raw` (`phnum` entries of 56 bytes).
pub fn parse_phdrs(raw: &[u8]) -> Vec<Phdr> {
    raw.chunks_exact(56)
        .map(|e| Phdr {
            p_type: u32_at(e, 0),
            flags: u32_at(e, 4),
            offset: u64_at(e, 8),
            vaddr: u64_at(e, 16),
            filesz: u64_at(e, 32),
            memsz: u64_at(e, 40),
        })
        .collect()
}
