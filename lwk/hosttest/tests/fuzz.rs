//! Fuzz harness of the LWK's checks of what a program and its proxy hand
//! it (issue 20, item 5): the ELF header and program headers of the file
//! execve loads (`lwk/src/elf/header.rs`) and the initial stack built from
//! the argument blob mcexec sends (`lwk/src/elf/layout.rs`). A panic here
//! is a panic of the LWK, so random and edited inputs must give a value or
//! an errno.

use lwk_hosttest::elf::header::{parse_ehdr, parse_phdrs, ET_DYN, ET_EXEC};
use lwk_hosttest::elf::layout::{compute, AuxInfo};
use proptest::prelude::*;

/// A valid ELF64 x86-64 executable header with `phnum` program headers.
fn valid_header(phnum: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2;
    h[5] = 1;
    h[6] = 1;
    h[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    h[18..20].copy_from_slice(&62u16.to_le_bytes());
    h[24..32].copy_from_slice(&0x40_1000u64.to_le_bytes());
    h[32..40].copy_from_slice(&64u64.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes());
    h[54..56].copy_from_slice(&56u16.to_le_bytes());
    h[56..58].copy_from_slice(&phnum.to_le_bytes());
    h
}

/// A valid header with up to 6 bytes overwritten, often with extremes.
fn edited_header() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(0u8), Just(0xff), Just(0x80), any::<u8>()];
    (1u16..300, prop::collection::vec((0usize..64, byte), 1..6)).prop_map(|(n, edits)| {
        let mut h = valid_header(n);
        for (i, b) in edits {
            h[i] = b;
        }
        h
    })
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(5000))]

    #[test]
    fn elf_headers(
        eh in prop_oneof![edited_header(), prop::collection::vec(any::<u8>(), 0..80)],
        size in prop_oneof![0u64..0x10000, any::<u64>()],
    ) {
        if let Ok(h) = parse_ehdr(&eh, size) {
            prop_assert!(h.ty == ET_EXEC || h.ty == ET_DYN);
            prop_assert!((1..=256).contains(&h.phnum));
            prop_assert!(h.phoff.checked_add(h.phnum * 56).is_some_and(|e| e <= size));
        }
    }

    #[test]
    fn program_headers(raw in prop::collection::vec(any::<u8>(), 0..600)) {
        prop_assert_eq!(parse_phdrs(&raw).len(), raw.len() / 56);
    }

    #[test]
    fn initial_stacks(
        blob in prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..256),
        argc in prop_oneof![0usize..8, any::<u32>().prop_map(|n| n as usize)],
        envc in prop_oneof![0usize..8, any::<u32>().prop_map(|n| n as usize)],
    ) {
        let top = 0x7fff_ffff_f000u64;
        if let Ok(l) = compute(top, &blob, argc, envc, &AuxInfo::default()) {
            prop_assert!(l.sp < l.random && l.random < l.platform && l.platform < l.strings);
            prop_assert_eq!(l.words[0], argc as u64);
            prop_assert_eq!(l.sp % 16, 0);
        }
    }
}
