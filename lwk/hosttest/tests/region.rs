//! The frame allocator's per-chunk bitmap (`lwk/src/mm/region.rs`).

use lwk_hosttest::mm::region::{Region, PAGE_SIZE};

const BASE: u64 = 0x10_0000;

/// A region of `pages` pages whose bitmap is `bits` (kept alive by the caller).
fn region(pages: u64, bits: &mut Vec<u64>) -> Region {
    *bits = vec![0u64; pages.div_ceil(64) as usize];
    Region { base: BASE, pages, bitmap: bits.as_mut_ptr() as u64, numa: 0, free: pages, hint: 0 }
}

fn page(addr: u64) -> u64 {
    (addr - BASE) / PAGE_SIZE
}

#[test]
fn allocations_are_contiguous_first_fit_and_counted() {
    let mut bits = Vec::new();
    let mut r = region(100, &mut bits);
    let a = r.alloc(3).unwrap();
    let b = r.alloc(5).unwrap();
    assert_eq!(a, BASE);
    assert_eq!(b, BASE + 3 * PAGE_SIZE);
    assert_eq!(r.free, 92);
    for p in 0..8 {
        assert!(r.get(p), "page {p} allocated");
    }
    assert!(!r.get(8));
}

#[test]
fn zero_and_oversized_requests_fail() {
    let mut bits = Vec::new();
    let mut r = region(10, &mut bits);
    assert_eq!(r.alloc(0), None);
    assert_eq!(r.alloc(11), None);
    assert_eq!(r.free, 10);
}

#[test]
fn exhaustion_and_recovery() {
    let mut bits = Vec::new();
    let mut r = region(130, &mut bits);
    assert_eq!(r.alloc(130), Some(BASE));
    assert_eq!(r.free, 0);
    assert_eq!(r.alloc(1), None);
    r.free(0, 130);
    assert_eq!(r.free, 130);
    assert_eq!(r.alloc(130), Some(BASE));
}

#[test]
fn freed_neighbours_coalesce_into_one_run() {
    let mut bits = Vec::new();
    let mut r = region(30, &mut bits);
    let a = r.alloc(10).unwrap();
    let b = r.alloc(10).unwrap();
    let c = r.alloc(10).unwrap();
    assert_eq!(r.alloc(1), None);
    r.free(page(a), 10);
    r.free(page(b), 10);
    // 20 free pages in a row at the start: one run again.
    assert_eq!(r.alloc(20), Some(a));
    r.free(page(c), 10);
    assert_eq!(r.alloc(10), Some(c));
}

#[test]
fn fragmented_free_space_does_not_satisfy_a_larger_run() {
    let mut bits = Vec::new();
    let mut r = region(8, &mut bits);
    let all: Vec<u64> = (0..8).map(|_| r.alloc(1).unwrap()).collect();
    for &p in all.iter().step_by(2) {
        r.free(page(p), 1);
    }
    assert_eq!(r.free, 4);
    assert_eq!(r.alloc(2), None, "4 free pages, none adjacent");
    assert_eq!(r.alloc(1), Some(all[0]));
}

#[test]
fn search_wraps_around_from_the_hint() {
    let mut bits = Vec::new();
    let mut r = region(200, &mut bits);
    let head = r.alloc(50).unwrap();
    let _rest = r.alloc(140).unwrap(); // hint now at 190: 10 pages left above
    r.free(page(head), 50); // hint back to 0
    assert_eq!(r.hint, 0);
    assert_eq!(r.alloc(20), Some(head));
    // Hint at 20; a request for 30 fits only in [20, 50).
    assert_eq!(r.alloc(30), Some(BASE + 20 * PAGE_SIZE));
    // Only the 10 pages at the top remain.
    assert_eq!(r.alloc(11), None);
    assert_eq!(r.alloc(10), Some(BASE + 190 * PAGE_SIZE));
}

#[test]
fn full_bitmap_words_are_skipped_and_partial_ones_searched() {
    let mut bits = Vec::new();
    let mut r = region(256, &mut bits);
    r.alloc(192).unwrap(); // words 0..3 full
    r.free(70, 2); // a hole in word 1
    assert_eq!(r.alloc(3), Some(BASE + 192 * PAGE_SIZE), "hole of 2 too small");
    r.hint = 0;
    assert_eq!(r.alloc(2), Some(BASE + 70 * PAGE_SIZE));
}

#[test]
#[should_panic(expected = "already free")]
fn double_free_panics() {
    let mut bits = Vec::new();
    let mut r = region(16, &mut bits);
    let a = r.alloc(2).unwrap();
    r.free(page(a), 2);
    r.free(page(a), 1);
}

/// The word-at-a-time search, marking and freeing against a page-by-page
/// model: random allocations and frees of runs that straddle words, with a
/// region size that is not a multiple of 64.
#[test]
fn word_operations_match_a_page_by_page_model() {
    let mut bits = Vec::new();
    let pages = 1000;
    let mut r = region(pages, &mut bits);
    let mut model = vec![false; pages as usize];
    let mut live: Vec<(u64, u64)> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..4000 {
        if live.is_empty() || rand(3) > 0 {
            let count = 1 + rand(150);
            // The model's first fit from the region's hint, then from 0.
            let fits = |from: u64| (from..pages.saturating_sub(count - 1)).find(|&p| (p..p + count).all(|q| !model[q as usize]));
            let want = fits(r.hint).or_else(|| fits(0));
            let got = r.alloc(count).map(page);
            assert_eq!(got, want, "alloc({count}) from hint {}", r.hint);
            if let Some(p) = got {
                (p..p + count).for_each(|q| model[q as usize] = true);
                live.push((p, count));
            }
        } else {
            let (p, count) = live.swap_remove(rand(live.len() as u64) as usize);
            r.free(p, count);
            (p..p + count).for_each(|q| model[q as usize] = false);
        }
        assert_eq!(r.free, model.iter().filter(|&&u| !u).count() as u64);
        for q in 0..pages {
            assert_eq!(r.get(q), model[q as usize], "page {q}");
        }
    }
}
