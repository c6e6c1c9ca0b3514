//! File-backed ranges of an address space (`lwk/src/mm/filemap.rs`).

use lwk_hosttest::mm::filemap::{FileMap, FileMaps, Writeback};

fn fm(end: u64, off: u64, shared_fd: Option<i32>) -> FileMap {
    FileMap { end, off, dev: 1, ino: 2, path: "/f".into(), shared: shared_fd.is_some(), shared_fd }
}

#[test]
fn unmapping_the_middle_splits_with_the_right_file_offsets() {
    let mut m = FileMaps::new();
    m.insert(0x10000, fm(0x20000, 0x3000, None));
    m.remove(0x14000, 0x18000);
    let (s, a) = m.at(0x11000).unwrap();
    assert_eq!((s, a.end, a.off), (0x10000, 0x14000, 0x3000));
    assert!(m.at(0x15000).is_none());
    let (s, b) = m.at(0x18000).unwrap();
    assert_eq!((s, b.end, b.off), (0x18000, 0x20000, 0x3000 + 0x8000));
    assert!(m.at(0x20000).is_none());
}

#[test]
fn shared_pieces_are_clipped_to_the_range() {
    let mut m = FileMaps::new();
    m.insert(0x10000, fm(0x14000, 0, Some(7)));
    m.insert(0x14000, fm(0x18000, 0, None));
    m.insert(0x18000, fm(0x1c000, 0x1000, Some(8)));
    let w = m.shared_in(0x12000, 0x19000);
    assert_eq!(
        w,
        vec![Writeback { va: 0x12000, len: 0x2000, fd: 7, off: 0x2000 }, Writeback { va: 0x18000, len: 0x1000, fd: 8, off: 0x1000 }]
    );
}

#[test]
fn a_descriptor_becomes_an_orphan_when_its_last_range_goes() {
    let mut m = FileMaps::new();
    m.insert(0x10000, fm(0x20000, 0, Some(9)));
    m.remove(0x10000, 0x11000);
    assert!(m.take_orphans().is_empty(), "still used by the rest");
    m.clear();
    assert_eq!(m.take_orphans(), vec![9]);
    assert!(m.take_orphans().is_empty());
}
