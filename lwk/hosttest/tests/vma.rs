//! The VMA set and its range arithmetic (`lwk/src/mm/vma.rs`).

use ihk_abi::offload::{MMAP_TOP, USER_START};
use lwk_hosttest::mm::pagetable::{Perm, LARGE};
use lwk_hosttest::mm::vma::{align_down, align_up, subtract, Vma, VmaKind, VmaSet};

const P: u64 = 4096;
const RW: Perm = Perm { read: true, write: true, exec: false };
const RX: Perm = Perm { read: true, write: false, exec: true };

fn vma(end: u64, perm: Perm, kind: VmaKind) -> Vma {
    Vma { end, perm, kind, lazy: false }
}

/// (start, end, kind) of every VMA.
fn shape(s: &VmaSet) -> Vec<(u64, u64, VmaKind)> {
    s.iter().map(|(&k, v)| (k, v.end, v.kind)).collect()
}

fn base() -> u64 {
    align_up(USER_START, LARGE) + 16 * LARGE
}

#[test]
fn align() {
    assert_eq!(align_up(0, P), 0);
    assert_eq!(align_up(1, P), P);
    assert_eq!(align_up(P, P), P);
    assert_eq!(align_down(P + 1, P), P);
    assert_eq!(align_down(LARGE - 1, LARGE), 0);
    assert_eq!(align_up(LARGE + 1, LARGE), 2 * LARGE);
}

#[test]
fn subtract_cases() {
    assert_eq!(subtract(0, 100, &[]), vec![(0, 100)]);
    assert_eq!(subtract(0, 100, &[(10, 20)]), vec![(0, 10), (20, 100)]);
    assert_eq!(subtract(0, 100, &[(0, 100)]), vec![]);
    assert_eq!(subtract(10, 20, &[(0, 5), (30, 40)]), vec![(10, 20)]);
    // Holes reaching over the edges, overlapping each other.
    assert_eq!(subtract(10, 100, &[(0, 15), (12, 30), (25, 40), (90, 200)]), vec![(40, 90)]);
    // Adjacent holes leave nothing between them.
    assert_eq!(subtract(0, 30, &[(0, 10), (10, 20)]), vec![(20, 30)]);
    assert_eq!(subtract(5, 5, &[]), vec![]);
}

#[test]
fn lookup_is_end_exclusive() {
    let b = base();
    let mut s = VmaSet::new();
    s.insert_vma(b, vma(b + 4 * P, RW, VmaKind::Anon));
    assert_eq!(s.vma_at(b).map(|(k, _)| k), Some(b));
    assert_eq!(s.vma_at(b + 4 * P - 1).map(|(k, _)| k), Some(b));
    assert!(s.vma_at(b + 4 * P).is_none());
    assert!(s.vma_at(b - 1).is_none());
}

#[test]
fn overlap_checks() {
    let b = base();
    let mut s = VmaSet::new();
    s.insert_vma(b, vma(b + 4 * P, RW, VmaKind::Anon));
    assert!(!s.overlaps(b - 2 * P, b), "adjacent below");
    assert!(!s.overlaps(b + 4 * P, b + 8 * P), "adjacent above");
    assert!(s.overlaps(b - P, b + P), "across the start");
    assert!(s.overlaps(b + 3 * P, b + 5 * P), "across the end");
    assert!(s.overlaps(b + P, b + 2 * P), "inside");
    assert!(s.overlaps(b - P, b + 5 * P), "around");
}

#[test]
fn split_keeps_attributes_on_both_sides() {
    let b = base();
    let mut s = VmaSet::new();
    s.insert_vma(b, vma(b + 4 * P, RX, VmaKind::Image));
    s.split_at(b); // at a start: nothing to do
    s.split_at(b + 8 * P); // outside: nothing to do
    assert_eq!(s.len(), 1);
    s.split_at(b + P);
    assert_eq!(shape(&s), vec![(b, b + P, VmaKind::Image), (b + P, b + 4 * P, VmaKind::Image)]);
    assert!(s.values().all(|v| v.perm == RX));
}

#[test]
fn remove_range_splits_at_both_edges() {
    let b = base();
    let mut s = VmaSet::new();
    s.insert_vma(b, vma(b + 10 * P, RW, VmaKind::Anon));
    let gone = s.remove_range(b + 2 * P, b + 5 * P);
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].0, gone[0].1.end), (b + 2 * P, b + 5 * P));
    assert_eq!(shape(&s), vec![(b, b + 2 * P, VmaKind::Anon), (b + 5 * P, b + 10 * P, VmaKind::Anon)]);
}

#[test]
fn remove_range_over_several_vmas_and_gaps() {
    let b = base();
    let mut s = VmaSet::new();
    s.insert_vma(b, vma(b + 2 * P, RW, VmaKind::Heap));
    s.insert_vma(b + 3 * P, vma(b + 4 * P, RW, VmaKind::Anon));
    s.insert_vma(b + 6 * P, vma(b + 9 * P, RX, VmaKind::Image));
    let gone = s.remove_range(b + P, b + 7 * P);
    let gone: Vec<(u64, u64)> = gone.iter().map(|(k, v)| (*k, v.end)).collect();
    assert_eq!(gone, vec![(b + P, b + 2 * P), (b + 3 * P, b + 4 * P), (b + 6 * P, b + 7 * P)]);
    assert_eq!(shape(&s), vec![(b, b + P, VmaKind::Heap), (b + 7 * P, b + 9 * P, VmaKind::Image)]);
    // Removing where nothing is mapped changes nothing.
    assert!(s.remove_range(b + 2 * P, b + 6 * P).is_empty());
    assert_eq!(s.len(), 2);
}

#[test]
fn find_free_in_an_empty_space_is_top_down() {
    let s = VmaSet::new();
    assert_eq!(s.find_free(P, 0, P, false), Some(MMAP_TOP - P));
    let big = 3 * LARGE + P;
    let at = s.find_free(big, 0, P, false).unwrap();
    assert_eq!(at % LARGE, 0, "2 MiB and more: 2 MiB aligned");
    assert!(at + big <= MMAP_TOP);
    assert!(at + big + LARGE > MMAP_TOP, "as high as alignment allows");
}

#[test]
fn find_free_honours_a_free_hint_only() {
    let b = base();
    let mut s = VmaSet::new();
    s.insert_vma(b, vma(b + 4 * P, RW, VmaKind::Anon));
    assert_eq!(s.find_free(2 * P, b + 8 * P + 123, P, false), Some(b + 8 * P), "hint page aligned down");
    assert_eq!(s.find_free(2 * P, b - P, P, false), Some(MMAP_TOP - 2 * P), "hint overlaps: top down");
    assert_eq!(s.find_free(2 * P, USER_START - P, P, false), Some(MMAP_TOP - 2 * P), "hint below user space");
}

#[test]
fn find_free_takes_the_highest_gap_that_fits() {
    let mut s = VmaSet::new();
    let top = MMAP_TOP;
    // [top-4P, top) used, gap of 2P, [top-10P, top-6P) used, gap of 8P below.
    s.insert_vma(top - 4 * P, vma(top, RW, VmaKind::Anon));
    s.insert_vma(top - 10 * P, vma(top - 6 * P, RW, VmaKind::Anon));
    s.insert_vma(top - 20 * P, vma(top - 18 * P, RW, VmaKind::Anon));
    assert_eq!(s.find_free(2 * P, 0, P, false), Some(top - 6 * P));
    assert_eq!(s.find_free(3 * P, 0, P, false), Some(top - 13 * P));
    assert_eq!(s.find_free(9 * P, 0, P, false), Some(top - 29 * P));
}

#[test]
fn find_free_fails_when_nothing_fits() {
    let s = VmaSet::new();
    assert_eq!(s.find_free(MMAP_TOP, 0, P, false), None);
    let mut s = VmaSet::new();
    s.insert_vma(USER_START, vma(MMAP_TOP, RW, VmaKind::Anon));
    assert_eq!(s.find_free(P, 0, P, false), None);
}

#[test]
fn share_windows_own_their_mirror_granules() {
    const G: u64 = LARGE;
    let mut s = VmaSet::new();
    // A private page just below the top granule's end.
    let top = align_down(MMAP_TOP, G);
    s.insert_vma(top - P, vma(top, RW, VmaKind::Anon));
    // A window goes to a granule of its own, granule aligned, rounded up.
    let w = s.find_free(3 * P, 0, G, true).unwrap();
    assert_eq!(w, top - 2 * G, "skips the granule that holds the private page");
    s.insert_vma(w, vma(w + 3 * P, RW, VmaKind::Shared));
    // Private mappings keep out of the window's granule...
    let p = s.find_free(P, 0, G, false).unwrap();
    assert!(p + P <= w || p >= w + G, "{p:#x} in the window's granule {w:#x}");
    assert_eq!(p, top - 2 * P, "but may share the private page's granule");
    // ...even when asked for with a hint inside it.
    assert_ne!(s.find_free(P, w + 4 * P, G, false), Some(w + 4 * P));
    assert!(s.overlaps_extent(w + 8 * P, w + 9 * P, G, false));
    assert!(!s.overlaps_extent(w + G, w + G + P, G, false));
    // A second window never shares a granule with the first.
    let w2 = s.find_free(G + P, 0, G, true).unwrap();
    assert_eq!(w2 % G, 0);
    assert!(w2 + 2 * G <= w || w2 >= w + G);
}
