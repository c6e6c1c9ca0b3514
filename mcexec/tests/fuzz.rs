//! Fuzz harness of mcexec's host-side checks (issue 20, item 5): the ELF
//! and `#!` checks of the program it is asked to run (random files and
//! edited valid headers, written to a temporary executable), and the
//! guest-physical translation every offloaded pointer the LWK sends goes
//! through (any address and length: a region of guest memory, or an
//! error, never a pointer outside the mapping).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use mcexec::guest::{GuestMemory, RegionDesc};
use mcexec::program::open_launch;
use proptest::prelude::*;

/// An ELF64 x86-64 header (`ty`), one program header at 64 (PT_INTERP
/// pointing at "/x" at 120 when `interp`), then 8 bytes.
fn valid_elf(ty: u16, interp: bool) -> Vec<u8> {
    let mut f = vec![0u8; 64 + 56 + 8];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&ty.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = &mut f[64..120];
    ph[0..4].copy_from_slice(&(if interp { 3u32 } else { 1 }).to_le_bytes());
    ph[8..16].copy_from_slice(&120u64.to_le_bytes());
    ph[32..40].copy_from_slice(&3u64.to_le_bytes());
    f[120..123].copy_from_slice(b"/x\0");
    f
}

fn edited_elf() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(0u8), Just(0xff), Just(0x80), any::<u8>()];
    (2u16..4, any::<bool>(), prop::collection::vec((0usize..128, byte), 0..6), 1usize..129).prop_map(
        |(ty, interp, edits, cut)| {
            let mut f = valid_elf(ty, interp);
            for (i, b) in edits {
                f[i] = b;
            }
            f.truncate(cut);
            f
        },
    )
}

fn script() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![Just(b' '), Just(b'\n'), Just(0u8), Just(b'/'), any::<u8>()], 0..64)
        .prop_map(|mut v| {
            v.splice(0..0, *b"#!");
            v
        })
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(1000))]

    #[test]
    fn programs(bytes in prop_oneof![edited_elf(), script(), prop::collection::vec(any::<u8>(), 0..200)]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prog");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&bytes).unwrap();
        drop(f);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        match open_launch(&path, vec![OsString::from("prog")]) {
            Ok(l) => {
                prop_assert!(l.program.size >= 64);
                prop_assert!(!l.argv.is_empty());
            }
            Err(e) => prop_assert!(e.exit_code() == 126 || e.exit_code() == 127, "{e}"),
        }
    }
}

fn memfd(size: u64) -> std::os::fd::OwnedFd {
    let fd = nix::sys::memfd::memfd_create(c"fuzz-guest", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap();
    nix::unistd::ftruncate(&fd, size as i64).unwrap();
    fd
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(5000))]

    /// Addresses and lengths as the LWK may send them in a slot's args.
    #[test]
    fn guest_addresses(
        gpa in prop_oneof![0u64..0x30000, any::<u64>(), (u64::MAX - 0x10000)..=u64::MAX],
        len in prop_oneof![0u64..0x20000, any::<u64>()],
    ) {
        let descs = vec![
            RegionDesc { gpa: 0, size: 0x10000, fd_offset: 0, page_size: 4096 },
            RegionDesc { gpa: 0x10000, size: 0x8000, fd_offset: 0x1000, page_size: 4096 },
        ];
        let g = GuestMemory::map(descs, vec![memfd(0x10000), memfd(0x9000)]).unwrap();
        let inside = gpa.checked_add(len).is_some_and(|e| e <= 0x18000);
        if let Ok(p) = g.ptr(gpa, len) {
            prop_assert!(inside);
            // SAFETY: `ptr` vouches for [p, p + len) being mapped.
            if len > 0 {
                let _ = unsafe { std::ptr::read_volatile(p.add(len as usize - 1)) };
            }
        }
        if let Ok(pieces) = g.split(gpa, len) {
            prop_assert!(inside);
            prop_assert_eq!(pieces.iter().map(|p| p.1).sum::<u64>(), len);
        }
        if g.backing(gpa, len).is_ok() {
            prop_assert!(inside);
        }
        let _ = g.write(gpa, &[1, 2, 3][..len.min(3) as usize]);
    }
}
