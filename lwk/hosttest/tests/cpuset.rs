//! CPU sets of processes and threads (`lwk/src/process/cpuset.rs`).

use lwk_hosttest::process::cpuset::CpuSet;

#[test]
fn ranges_lists_and_masks() {
    let s = CpuSet::range(1, 3);
    assert_eq!(s.count(), 3);
    assert!(!s.contains(0) && s.contains(1) && s.contains(3) && !s.contains(4));
    assert_eq!(s.to_list(), "1-3");
    assert_eq!(s.to_mask(4), "0000000e");
    let mut t = CpuSet::empty();
    t.insert(0);
    t.insert(2);
    t.insert(33);
    assert_eq!(t.to_list(), "0,2,33");
    assert_eq!(t.to_mask(40), "00000002,00000005");
    assert_eq!(s.intersect(&t).to_list(), "2");
    assert!(CpuSet::range(5, 2).intersect(&s).is_empty());
}

#[test]
fn user_bitmaps_round_trip() {
    let mut t = CpuSet::empty();
    for c in [0, 7, 8, 63, 64, 1023] {
        t.insert(c);
    }
    assert_eq!(CpuSet::from_bytes(&t.to_bytes(128)), t);
    // sched_getaffinity with a short buffer gets the first bytes only.
    assert_eq!(t.to_bytes(1), vec![0b1000_0001]);
    assert_eq!(t.to_bytes(2), vec![0b1000_0001, 1]);
    // Bits past MAX_CPUS are ignored.
    let big = vec![0xffu8; 200];
    assert_eq!(CpuSet::from_bytes(&big).count(), 1024);
}

#[test]
fn ranges_clip_at_the_limit() {
    assert_eq!(CpuSet::range(1020, 10).to_list(), "1020-1023");
    assert!(CpuSet::range(0, 0).is_empty());
    assert_eq!(CpuSet::range(3, 1).iter().collect::<Vec<_>>(), vec![3]);
}
