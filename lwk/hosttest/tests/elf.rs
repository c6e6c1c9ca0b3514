//! ELF header checks (`lwk/src/elf/header.rs`).

use lwk_hosttest::elf::header::{parse_ehdr, parse_phdrs, Ehdr, ET_DYN, ET_EXEC, PT_INTERP, PT_LOAD};
use lwk_hosttest::errno::ENOEXEC;

const SIZE: u64 = 0x1000;

/// A valid ELF64 x86-64 header: `ty`, entry 0x401000, 2 program headers at 64.
fn header(ty: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little-endian
    h[6] = 1;
    h[16..18].copy_from_slice(&ty.to_le_bytes());
    h[18..20].copy_from_slice(&62u16.to_le_bytes());
    h[24..32].copy_from_slice(&0x40_1000u64.to_le_bytes());
    h[32..40].copy_from_slice(&64u64.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes());
    h[54..56].copy_from_slice(&56u16.to_le_bytes());
    h[56..58].copy_from_slice(&2u16.to_le_bytes());
    h
}

fn with(mut h: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    h[at..at + bytes.len()].copy_from_slice(bytes);
    h
}

#[test]
fn accepts_exec_and_dyn() {
    assert_eq!(parse_ehdr(&header(ET_EXEC), SIZE), Ok(Ehdr { ty: ET_EXEC, entry: 0x40_1000, phoff: 64, phnum: 2 }));
    assert_eq!(parse_ehdr(&header(ET_DYN), SIZE).map(|h| h.ty), Ok(ET_DYN));
}

#[test]
fn rejects_what_the_lwk_cannot_run() {
    let bad: Vec<(&str, Vec<u8>, u64)> = vec![
        ("magic", with(header(ET_EXEC), 0, b"\x7fELG"), SIZE),
        ("32-bit", with(header(ET_EXEC), 4, &[1]), SIZE),
        ("big-endian", with(header(ET_EXEC), 5, &[2]), SIZE),
        ("not x86-64", with(header(ET_EXEC), 18, &183u16.to_le_bytes()), SIZE),
        ("ET_REL", header(1), SIZE),
        ("ET_CORE", header(4), SIZE),
        ("phentsize", with(header(ET_EXEC), 54, &32u16.to_le_bytes()), SIZE),
        ("no phdrs", with(header(ET_EXEC), 56, &0u16.to_le_bytes()), SIZE),
        ("257 phdrs", with(header(ET_EXEC), 56, &257u16.to_le_bytes()), 1 << 20),
        ("phdrs past the end", header(ET_EXEC), 64 + 2 * 56 - 1),
        ("phoff overflows", with(header(ET_EXEC), 32, &(u64::MAX - 8).to_le_bytes()), SIZE),
        ("file shorter than a header", header(ET_EXEC), 63),
        ("header cut short", header(ET_EXEC)[..40].to_vec(), SIZE),
    ];
    for (what, h, size) in bad {
        assert_eq!(parse_ehdr(&h, size), Err(ENOEXEC), "{what}");
    }
    // The limits themselves are fine.
    assert!(parse_ehdr(&with(header(ET_EXEC), 56, &256u16.to_le_bytes()), 1 << 20).is_ok());
    assert!(parse_ehdr(&header(ET_EXEC), 64 + 2 * 56).is_ok());
}

#[test]
fn program_headers_are_read_field_by_field() {
    let mut raw = vec![0u8; 2 * 56 + 10]; // trailing bytes are not an entry
    let put = |raw: &mut Vec<u8>, i: usize, off: usize, v: &[u8]| raw[i * 56 + off..i * 56 + off + v.len()].copy_from_slice(v);
    put(&mut raw, 0, 0, &PT_LOAD.to_le_bytes());
    put(&mut raw, 0, 4, &5u32.to_le_bytes());
    put(&mut raw, 0, 8, &0x1000u64.to_le_bytes());
    put(&mut raw, 0, 16, &0x40_1000u64.to_le_bytes());
    put(&mut raw, 0, 32, &0x234u64.to_le_bytes());
    put(&mut raw, 0, 40, &0x2000u64.to_le_bytes());
    put(&mut raw, 1, 0, &PT_INTERP.to_le_bytes());
    let ph = parse_phdrs(&raw);
    assert_eq!(ph.len(), 2);
    let p = ph[0];
    assert_eq!((p.p_type, p.flags, p.offset, p.vaddr, p.filesz, p.memsz), (PT_LOAD, 5, 0x1000, 0x40_1000, 0x234, 0x2000));
    assert_eq!(ph[1].p_type, PT_INTERP);
}
