//! Fuzz harness of mcexec's host-side checks (issue 20, item 5): the ELF
//! and `#!` checks of the program it is asked to run (random files and
//! edited valid headers, written to a temporary executable), and the
//! guest-physical translation every offloaded pointer the LWK sends goes
//! through (any address and length: a region of guest memory, or an
//! error, never a pointer outside the mapping), and the mirror of the LWK
//! process's map table (`mirror.rs`): a proxy area header and map entries
//! as a broken LWK may write them (any offset, capacity, count, entry),
//! applied twice in a row (a table, then its successor). The mirror must
//! refuse a bad table with an error, never panic or hang, and every range
//! it accepts must show the guest memory its entry names at its address.

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

mod mirror {
    use std::sync::atomic::{AtomicU32, AtomicU64};
    use std::sync::{Arc, Mutex, Once};

    use ihk_abi::offload::{MapEntry, ProxyAreaHeader, MAP_ENTRY_WINDOW, MAP_ENTRY_WRITE, PROXY_AREA_MAGIC, USER_END};
    use mcexec::guest::{GuestMemory, RegionDesc};
    use mcexec::mirror::{reserve_user_range, reset_user_range, Mirror, MirrorError};
    use proptest::prelude::*;

    use super::memfd;

    const HEADER_GPA: u64 = 0x1000;
    const TABLE_OFFSET: u32 = 0x100;
    const PAGE: u64 = 0x1000;
    /// Where generated valid entries map (inside the user range).
    const VA_BASE: u64 = 0x1000_0000;
    /// Guest memory: two 4 MiB regions with a hole between.
    const R1: u64 = 0x80_0000;
    const SIZE: u64 = 0x40_0000;

    /// The user range is reserved once for the whole test process, as
    /// mcexec does at start; cases run one at a time (the mirror's mappings
    /// are the process's).
    static SERIAL: Mutex<()> = Mutex::new(());
    static RESERVE: Once = Once::new();

    fn guest() -> Arc<GuestMemory> {
        let descs = vec![
            RegionDesc { gpa: 0, size: SIZE, fd_offset: 0, page_size: PAGE },
            RegionDesc { gpa: R1, size: SIZE, fd_offset: 0, page_size: PAGE },
        ];
        Arc::new(GuestMemory::map(descs, vec![memfd(SIZE), memfd(SIZE)]).unwrap())
    }

    #[derive(Debug, Clone)]
    struct Table {
        map_offset: u32,
        capacity: u32,
        count: u32,
        entries: Vec<MapEntry>,
    }

    /// A valid table (sorted, disjoint, aligned, backed) with up to two
    /// fields of its entries replaced by anything.
    fn entries() -> impl Strategy<Value = Vec<MapEntry>> {
        let piece = (0u64..4, 1u64..8, prop_oneof![0x10u64..0x3f0, 0x800u64..0xbf0], prop_oneof![Just(0u64), Just(MAP_ENTRY_WRITE)]);
        let wild = prop_oneof![
            Just(0u64),
            Just(u64::MAX),
            Just(USER_END),
            Just(USER_END - PAGE),
            Just(0x7ff),
            Just(MAP_ENTRY_WINDOW),
            any::<u64>()
        ];
        (prop::collection::vec(piece, 0..6), prop::collection::vec((0usize..6, 0usize..4, wild), 0..3)).prop_map(
            |(pieces, edits)| {
                let mut va = VA_BASE;
                let mut v: Vec<MapEntry> = pieces
                    .into_iter()
                    .map(|(gap, pages, gpa_page, flags)| {
                        va += gap * PAGE;
                        let len = pages * PAGE;
                        let gpa = (gpa_page * PAGE).min(if gpa_page < 0x800 { SIZE } else { R1 + SIZE } - len);
                        let e = MapEntry { va, len, gpa, flags };
                        va += len;
                        e
                    })
                    .collect();
                for (i, f, x) in edits {
                    if let Some(e) = v.get_mut(i) {
                        match f {
                            0 => e.va = x,
                            1 => e.len = x,
                            2 => e.gpa = x,
                            _ => e.flags = x,
                        }
                    }
                }
                v
            },
        )
    }

    fn table() -> impl Strategy<Value = Table> {
        (
            prop_oneof![8 => Just(TABLE_OFFSET), 1 => Just(TABLE_OFFSET + 4), 1 => Just(0x3f_f000u32), 1 => any::<u32>()],
            prop_oneof![8 => Just(16u32), 1 => Just(0u32), 1 => any::<u32>()],
            prop_oneof![8 => Just(None), 1 => any::<u32>().prop_map(Some)],
            entries(),
        )
            .prop_map(|(map_offset, capacity, count, entries)| Table {
                map_offset,
                capacity,
                count: count.unwrap_or(entries.len() as u32),
                entries,
            })
    }

    /// Write the header (sequence `seq`) and the table into guest memory,
    /// as the LWK would (whatever does not fit is left out).
    fn publish(g: &GuestMemory, t: &Table, seq: u64) {
        let h = ProxyAreaHeader {
            magic: PROXY_AREA_MAGIC,
            size: 0x1000,
            thread_capacity: 0,
            map_capacity: t.capacity,
            threads_offset: 0x80,
            map_offset: t.map_offset,
            map_seq: AtomicU64::new(seq),
            map_count: AtomicU32::new(t.count),
            _pad: 0,
            sig_pending: AtomicU64::new(0),
            _reserved: [0; 9],
        };
        // SAFETY: a plain-data struct viewed as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(&h as *const ProxyAreaHeader as *const u8, std::mem::size_of::<ProxyAreaHeader>())
        };
        g.write(HEADER_GPA, bytes).unwrap();
        for (i, e) in t.entries.iter().enumerate() {
            let at = HEADER_GPA + t.map_offset as u64 + (i * std::mem::size_of::<MapEntry>()) as u64;
            // SAFETY: as above.
            let b = unsafe {
                std::slice::from_raw_parts(e as *const MapEntry as *const u8, std::mem::size_of::<MapEntry>())
            };
            let _ = g.write(at, b);
        }
    }

    /// Every entry of an accepted table shows its guest memory at its
    /// address: a byte written by guest-physical address reads back there.
    fn check_mapped(g: &GuestMemory, t: &Table, salt: u8) -> Result<(), TestCaseError> {
        let n = (t.count.min(t.capacity) as usize).min(t.entries.len());
        for (i, e) in t.entries[..n].iter().enumerate() {
            prop_assert!(e.flags & MAP_ENTRY_WINDOW == 0, "a window without a host file was accepted: {e:x?}");
            prop_assert!(e.va % PAGE == 0 && e.va.checked_add(e.len).is_some_and(|end| end <= USER_END));
            if e.gpa < 0x10000 {
                continue; // the header's page: not written over
            }
            let b = salt ^ i as u8;
            for off in [0, e.len - 1] {
                g.write(e.gpa + off, &[b]).unwrap();
                // SAFETY: the mirror mapped [va, va + len) (it accepted it).
                let seen = unsafe { std::ptr::read_volatile((e.va + off) as *const u8) };
                prop_assert_eq!(seen, b, "entry {:x?} at +{:#x}", e, off);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(mck_tests::fuzz::config(1500))]

        #[test]
        fn map_tables(first in table(), second in table(), seq in 1u64..1000) {
            let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            RESERVE.call_once(|| reserve_user_range().expect("reserving the LWK user range in the test process"));
            let g = guest();
            let seq = seq * 2;
            publish(&g, &first, seq);
            let m = match Mirror::new(Arc::clone(&g), HEADER_GPA, PAGE) {
                Ok(m) => m,
                Err(e) => {
                    prop_assert!(!matches!(e, MirrorError::Stuck(..)));
                    return Ok(());
                }
            };
            if m.ensure(seq).is_ok() {
                check_mapped(&g, &first, 0x5a)?;
            }
            // The successor: the LWK rewrites the table in place (same
            // header position; its offset and capacity may change too).
            publish(&g, &second, seq + 2);
            let r = m.ensure(seq + 2);
            if r.is_ok() && second.map_offset == first.map_offset && second.capacity == first.capacity {
                check_mapped(&g, &second, 0xa5)?;
            }
            drop(m);
            reset_user_range().unwrap();
        }
    }

    /// Regression: a sequence the LWK leaves odd (mid-update for ever)
    /// made the proxy thread spin for ever; now it is an error after
    /// `UPDATE_TIMEOUT`.
    #[test]
    fn a_table_stuck_mid_update_is_an_error() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        RESERVE.call_once(|| reserve_user_range().expect("reserving the LWK user range in the test process"));
        let g = guest();
        let t = Table { map_offset: TABLE_OFFSET, capacity: 16, count: 0, entries: vec![] };
        publish(&g, &t, 7);
        let m = Mirror::new(Arc::clone(&g), HEADER_GPA, PAGE).unwrap();
        let start = std::time::Instant::now();
        assert!(matches!(m.ensure(8), Err(MirrorError::Stuck(7, _))));
        assert!(start.elapsed() >= mcexec::mirror::UPDATE_TIMEOUT);
    }

    /// Regression: a table offset that is not a multiple of 8 made every
    /// entry read misaligned (undefined behaviour; a panic in debug).
    #[test]
    fn a_misaligned_table_is_an_error() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let g = guest();
        let t = Table { map_offset: TABLE_OFFSET + 4, capacity: 16, count: 0, entries: vec![] };
        publish(&g, &t, 2);
        assert!(matches!(Mirror::new(Arc::clone(&g), HEADER_GPA, PAGE), Err(MirrorError::BadTable(_))));
    }
}
