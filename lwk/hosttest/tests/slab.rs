//! The heap's slab caches (`lwk/src/mm/slab.rs`): objects are aligned, do
//! not overlap each other or the slab header, and every slab goes back to
//! its source with its last object.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;

use lwk_hosttest::mm::slab::{class_of, slab_size, PageSource, Slabs, CLASSES, MAX_OBJECT, MIN_SHIFT};

/// Blocks from `std`, counted.
#[derive(Default)]
struct Std {
    live: HashMap<usize, usize>,
    allocs: usize,
}

impl PageSource for Std {
    fn alloc(&mut self, size: usize) -> Option<usize> {
        let a = unsafe { alloc(Layout::from_size_align(size, size).unwrap()) } as usize;
        assert_ne!(a, 0);
        // Dirty, as a recycled frame would be.
        unsafe { std::ptr::write_bytes(a as *mut u8, 0xa5, size) };
        self.live.insert(a, size);
        self.allocs += 1;
        Some(a)
    }

    fn free(&mut self, addr: usize, size: usize) {
        assert_eq!(self.live.remove(&addr), Some(size), "freed a block not handed out");
        unsafe { dealloc(addr as *mut u8, Layout::from_size_align(size, size).unwrap()) };
    }
}

#[test]
fn classes_cover_sizes_and_alignments() {
    assert_eq!(class_of(1, 1), Some(0));
    assert_eq!(class_of(16, 8), Some(0));
    assert_eq!(class_of(17, 8), Some(1));
    assert_eq!(class_of(8, 64), Some(2));
    assert_eq!(class_of(MAX_OBJECT, 8), Some(CLASSES - 1));
    assert_eq!(class_of(MAX_OBJECT + 1, 8), None);
    assert_eq!(class_of(8, 4096), None);
}

#[test]
fn a_class_fills_slabs_and_gives_each_back_with_its_last_object() {
    for c in 0..CLASSES {
        let size = 1usize << (c + MIN_SHIFT);
        let ss = slab_size(c);
        let mut src = Std::default();
        let mut s = Slabs::new();
        let n = 3 * ss / size;
        let objs: Vec<usize> = (0..n).map(|_| unsafe { s.alloc(c, &mut src) }.unwrap()).collect();
        let mut seen = std::collections::HashSet::new();
        for &o in &objs {
            assert_eq!(o % size, 0, "class {c}: object {o:#x} not aligned to {size}");
            let base = o & !(ss - 1);
            assert!(src.live.contains_key(&base), "class {c}: object outside the slabs");
            assert!(o - base >= 64, "class {c}: object over the header");
            assert!(o - base + size <= ss);
            assert!(seen.insert(o), "class {c}: object {o:#x} handed out twice");
        }
        // Free in an order that leaves every slab partly used for a while.
        for &o in objs.iter().step_by(2) {
            unsafe { s.free(c, o, &mut src) };
        }
        let held = src.live.len();
        // Reuse of the freed objects takes no new slab.
        let again: Vec<usize> = (0..n / 2).map(|_| unsafe { s.alloc(c, &mut src) }.unwrap()).collect();
        assert_eq!(src.live.len(), held, "class {c}: a slab was taken while others had room");
        for o in again.into_iter().chain(objs.iter().copied().skip(1).step_by(2)) {
            unsafe { s.free(c, o, &mut src) };
        }
        assert!(src.live.is_empty(), "class {c}: {} slabs kept after every object was freed", src.live.len());
    }
}

#[test]
fn interleaved_use_never_overlaps_and_ends_with_nothing_held() {
    let mut src = Std::default();
    let mut s = Slabs::new();
    let mut live: Vec<(usize, usize, u8)> = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for step in 0..200_000u32 {
        let r = next();
        if live.len() < 2000 && (r % 3 != 0 || live.is_empty()) {
            let c = (r >> 8) as usize % CLASSES;
            let o = unsafe { s.alloc(c, &mut src) }.unwrap();
            let tag = (step % 251) as u8;
            unsafe { std::ptr::write_bytes(o as *mut u8, tag, 1 << (c + MIN_SHIFT)) };
            live.push((c, o, tag));
        } else {
            let i = (r >> 16) as usize % live.len();
            let (c, o, tag) = live.swap_remove(i);
            let size = 1usize << (c + MIN_SHIFT);
            let bytes = unsafe { std::slice::from_raw_parts(o as *const u8, size) };
            assert!(bytes.iter().all(|&b| b == tag), "object {o:#x} of class {c} was overwritten");
            unsafe { s.free(c, o, &mut src) };
        }
    }
    for (c, o, _) in live.drain(..) {
        unsafe { s.free(c, o, &mut src) };
    }
    assert!(src.live.is_empty());
    assert!(src.allocs > 10);
}
