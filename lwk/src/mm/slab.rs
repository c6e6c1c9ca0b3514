//! Slab caches of the kernel heap: objects of one power-of-two size class
//! carved out of slabs (4 KiB or 16 KiB blocks, aligned to their size) that
//! go back to the page source as soon as their last object is freed.
//!
//! Giving slabs back keeps the partition's free memory a function of what
//! is live, not of the heap's high-water mark: after a job's processes are
//! torn down, `query_free_mem` reads what it read before the job (the
//! check of `mcexec/tests/mpi.rs`), and a long-lived partition does not
//! keep scattered 4 KiB heap frames that break up 2 MiB blocks.
//!
//! A slab starts with its header: the intra-slab free list, the number of
//! objects handed out, and the links of its class's list of partial slabs
//! (slabs with at least one free object). Full slabs are on no list. The
//! owner of an object is found by masking its address with the slab size.
//! Pure logic over a [`PageSource`]: the kernel backs it with frames
//! through the direct map, the host tests with `std`'s allocator.

/// Where slabs come from: `size`-byte blocks aligned to `size`.
pub trait PageSource {
    /// A block's address, or `None` when memory is exhausted.
    fn alloc(&mut self, size: usize) -> Option<usize>;
    /// Give back a block `alloc` returned.
    fn free(&mut self, addr: usize, size: usize);
}

/// Size classes: 16 bytes to 2 KiB.
pub const CLASSES: usize = 8;
pub const MIN_SHIFT: usize = 4;
/// The largest object a class holds; bigger requests are not the slab's.
pub const MAX_OBJECT: usize = 1 << (MIN_SHIFT + CLASSES - 1);

#[repr(C)]
struct Header {
    /// First free object of this slab (0: none).
    free: usize,
    /// Objects handed out.
    used: usize,
    /// Never-used space starts here (objects are carved lazily).
    bump: usize,
    /// Partial-list links (0: none).
    prev: usize,
    next: usize,
}

/// Header size rounded so that objects stay aligned to their size up to 64.
const HEADER: usize = 64;
const _: () = assert!(core::mem::size_of::<Header>() <= HEADER);

/// Slab size of class `c`: 4 KiB up to 256-byte objects (15 or more per
/// slab), 16 KiB above (7 2-KiB objects).
pub const fn slab_size(c: usize) -> usize {
    if c + MIN_SHIFT <= 8 {
        4096
    } else {
        16384
    }
}

/// Size class of a request of `size` bytes aligned to `align`, or `None`
/// when it is too big for a slab.
pub fn class_of(size: usize, align: usize) -> Option<usize> {
    let size = size.max(align).max(1 << MIN_SHIFT);
    if size > MAX_OBJECT {
        return None;
    }
    let shift = usize::BITS as usize - (size - 1).leading_zeros() as usize;
    Some(shift - MIN_SHIFT)
}

/// First object offset in a slab of class `c`: after the header, aligned to
/// the object size (objects of 128 bytes and more start at their size).
const fn first_object(c: usize) -> usize {
    let size = 1 << (c + MIN_SHIFT);
    if size > HEADER {
        size
    } else {
        HEADER
    }
}

/// Whether slab `h` of `size`-byte objects in `ss` bytes has no object left.
fn is_full(h: &Header, size: usize, ss: usize) -> bool {
    h.free == 0 && h.bump + size > ss
}

/// The per-class lists of partial slabs.
pub struct Slabs {
    partial: [usize; CLASSES],
}

impl Slabs {
    pub const fn new() -> Self {
        Slabs { partial: [0; CLASSES] }
    }

    /// One object of class `c`.
    ///
    /// # Safety
    /// `src` must hand out blocks this allocator may own exclusively, the
    /// same source every time, and `Slabs` must be used by one caller at a time.
    pub unsafe fn alloc(&mut self, c: usize, src: &mut impl PageSource) -> Option<usize> {
        let size = 1usize << (c + MIN_SHIFT);
        let ss = slab_size(c);
        if self.partial[c] == 0 {
            let base = src.alloc(ss)?;
            debug_assert_eq!(base % ss, 0);
            // SAFETY: a fresh block of `ss` bytes we own.
            unsafe {
                (base as *mut Header).write(Header { free: 0, used: 0, bump: first_object(c), prev: 0, next: 0 });
            }
            self.partial[c] = base;
        }
        let base = self.partial[c];
        // SAFETY: `base` heads the partial list: a live slab of this class.
        let h = unsafe { &mut *(base as *mut Header) };
        let obj = if h.free != 0 {
            let o = h.free;
            // SAFETY: a free object's first word links the slab's free list.
            h.free = unsafe { *(o as *const usize) };
            o
        } else {
            let o = base + h.bump;
            h.bump += size;
            o
        };
        h.used += 1;
        if is_full(h, size, ss) {
            // Full: off the partial list.
            // SAFETY: `h` is on the list of class `c`.
            unsafe { self.unlink(c, base) };
        }
        Some(obj)
    }

    /// Give back `obj`, an object of class `c`; its slab goes back to `src`
    /// when it was the last in use.
    ///
    /// # Safety
    /// `obj` came from [`Slabs::alloc`] with class `c` and is not used any more.
    pub unsafe fn free(&mut self, c: usize, obj: usize, src: &mut impl PageSource) {
        let ss = slab_size(c);
        let size = 1usize << (c + MIN_SHIFT);
        let base = obj & !(ss - 1);
        // SAFETY: the slab holding a live object of class `c`.
        let h = unsafe { &mut *(base as *mut Header) };
        let was_full = is_full(h, size, ss);
        // SAFETY: the object is ours again; its first word links the list.
        unsafe { *(obj as *mut usize) = h.free };
        h.free = obj;
        h.used -= 1;
        if was_full {
            h.prev = 0;
            h.next = self.partial[c];
            if h.next != 0 {
                // SAFETY: the list's head is a live slab of class `c`.
                unsafe { (*(h.next as *mut Header)).prev = base };
            }
            self.partial[c] = base;
        }
        if h.used == 0 {
            // SAFETY: on the list (it has a free object now).
            unsafe { self.unlink(c, base) };
            src.free(base, ss);
        }
    }

    /// Take slab `base` off the partial list of class `c`.
    ///
    /// # Safety
    /// `base` is on that list.
    unsafe fn unlink(&mut self, c: usize, base: usize) {
        // SAFETY: list members are live slabs of class `c`.
        unsafe {
            let h = &mut *(base as *mut Header);
            if h.prev != 0 {
                (*(h.prev as *mut Header)).next = h.next;
            } else {
                self.partial[c] = h.next;
            }
            if h.next != 0 {
                (*(h.next as *mut Header)).prev = h.prev;
            }
            h.prev = 0;
            h.next = 0;
        }
    }
}
