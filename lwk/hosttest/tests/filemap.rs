//! File-backed ranges of an address space (`lwk/src/mm/filemap.rs`).

use lwk_hosttest::mm::filemap::{Fill, FileMap, FileMaps, Orphan, Writeback};

fn fm(end: u64, off: u64, shared_fd: Option<i32>) -> FileMap {
    FileMap { end, off, dev: 1, ino: 2, path: "/f".into(), shared: shared_fd.is_some(), shared_fd, kept_file: None, size: 0, mtime_ns: 0 }
}

/// A private mapping filled from kept file `fd` of a file of `size` bytes.
fn private(end: u64, off: u64, fd: i32, size: u64) -> FileMap {
    FileMap { end, off, dev: 1, ino: 2, path: "/f".into(), shared: false, shared_fd: None, kept_file: Some(fd), size, mtime_ns: 0 }
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
    assert_eq!(m.take_orphans(), vec![Orphan { fd: 9, kept: false }]);
    assert!(m.take_orphans().is_empty());
}

#[test]
fn fills_stop_at_the_end_of_the_file_and_follow_the_offsets() {
    let mut m = FileMaps::new();
    // File of 0x5800 bytes mapped from offset 0x1000 over 0x8000 bytes.
    m.insert(0x10000, private(0x18000, 0x1000, 5, 0x5800));
    assert_eq!(m.fills_in(0x12000, 0x14000), vec![Fill { va: 0x12000, len: 0x2000, fd: 5, off: 0x3000 }]);
    // Past the file's end: only the 0x800 bytes left, then nothing.
    assert_eq!(m.fills_in(0x14000, 0x16000), vec![Fill { va: 0x14000, len: 0x800, fd: 5, off: 0x5000 }]);
    assert!(m.fills_in(0x15000, 0x18000).is_empty());
    // Shared and image ranges are not filled.
    m.insert(0x20000, fm(0x21000, 0, Some(7)));
    assert!(m.fills_in(0x20000, 0x21000).is_empty());
}

#[test]
fn a_kept_file_is_shared_by_ranges_of_it_and_dropped_with_the_last() {
    let mut m = FileMaps::new();
    m.insert(0x10000, private(0x12000, 0, 11, 1 << 20));
    assert_eq!(m.kept_file_for(1, 2, 1 << 20), Some(11));
    assert_eq!(m.kept_file_for(1, 3, 1 << 20), None);
    assert_eq!(m.kept_file_for(1, 2, 1 << 21), None, "the file grew: kept again");
    m.insert(0x30000, private(0x31000, 0x5000, 11, 1 << 20));
    m.remove(0x10000, 0x12000);
    assert!(m.take_orphans().is_empty(), "the second range still uses it");
    m.remove(0x30000, 0x31000);
    assert_eq!(m.take_orphans(), vec![Orphan { fd: 11, kept: true }]);
}

#[test]
fn an_orphan_taken_up_again_by_a_new_range_is_not_closed() {
    // MAP_FIXED over the only range of a file with a new range of the
    // same file: the kept file is reused between the unmap and the insert.
    let mut m = FileMaps::new();
    m.insert(0x10000, private(0x12000, 0, 4, 1 << 20));
    m.remove(0x10000, 0x12000);
    m.insert(0x10000, private(0x12000, 0x1000, 4, 1 << 20));
    assert!(m.take_orphans().is_empty());
    m.release_kept(4);
    assert!(m.take_orphans().is_empty(), "still used");
}

#[test]
fn a_fork_copy_keeps_the_fills_but_not_the_write_back() {
    let mut m = FileMaps::new();
    m.insert(0x10000, private(0x12000, 0, 4, 1 << 20));
    m.insert(0x20000, fm(0x21000, 0, Some(7)));
    let c = m.fork();
    assert_eq!(c.fills_in(0x10000, 0x11000).len(), 1);
    assert!(c.shared_in(0x20000, 0x21000).is_empty());
}

#[test]
fn growing_a_range_in_place_extends_its_file_range() {
    let mut m = FileMaps::new();
    m.insert(0x10000, private(0x12000, 0x2000, 4, 1 << 20));
    m.grow(0x12000, 0x14000);
    assert_eq!(m.fills_in(0x13000, 0x14000), vec![Fill { va: 0x13000, len: 0x1000, fd: 4, off: 0x5000 }]);
}

#[test]
fn pieces_of_one_file_range_continue_and_others_do_not() {
    let mut m = FileMaps::new();
    m.insert(0x10000, private(0x14000, 0x1000, 4, 1 << 20));
    m.remove(0x12000, 0x12000 + 0x1000);
    // Re-inserted at the file offset it had: contiguous again.
    m.insert(0x12000, private(0x13000, 0x3000, 4, 1 << 20));
    assert!(m.continues(0x12000));
    assert!(m.continues(0x13000));
    // A different offset, or file against no file, does not continue.
    m.insert(0x20000, private(0x21000, 0x9000, 4, 1 << 20));
    m.insert(0x21000, private(0x22000, 0x0, 4, 1 << 20));
    assert!(!m.continues(0x21000));
    assert!(!m.continues(0x14000), "the file range ends there; nothing follows");
    assert!(m.continues(0x40000), "no file on either side");
}
