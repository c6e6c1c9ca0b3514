//! The kernel heap (`alloc`) for process bookkeeping: objects up to 2 KiB
//! come from the slab caches of `slab` (power-of-two classes; a slab goes
//! back to the frame allocator with its last object), bigger requests take
//! whole contiguous frames. Memory is reached through the direct map, so
//! heap pointers stay valid under any process's page table.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

use spin::Mutex;

use super::phys::{self, PAGE};
use super::slab::{self, PageSource, Slabs};

static SLABS: Mutex<Slabs> = Mutex::new(Slabs::new());

/// Slabs are frames, seen through the direct map.
struct Frames;

impl PageSource for Frames {
    fn alloc(&mut self, size: usize) -> Option<usize> {
        let pa = phys::alloc_on(size as u64, size as u64, None)?;
        Some(phys::to_virt(pa) as usize)
    }

    fn free(&mut self, addr: usize, size: usize) {
        phys::free(phys::to_phys(addr as *const u8), size as u64);
    }
}

pub struct KernelHeap;

unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match slab::class_of(layout.size(), layout.align()) {
            // SAFETY: the lock serialises the slabs; `Frames` hands out
            // frames the heap owns until it frees them.
            Some(c) => unsafe { SLABS.lock().alloc(c, &mut Frames) }.map_or(null_mut(), |a| a as *mut u8),
            None => {
                let size = (layout.size() as u64).div_ceil(PAGE) * PAGE;
                let align = (layout.align() as u64).max(PAGE);
                match phys::alloc_on(size, align, None) {
                    Some(pa) => phys::to_virt(pa),
                    None => null_mut(),
                }
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match slab::class_of(layout.size(), layout.align()) {
            // SAFETY: `ptr` came from `alloc` with this layout, so from the
            // slab of this class.
            Some(c) => unsafe { SLABS.lock().free(c, ptr as usize, &mut Frames) },
            None => {
                let size = (layout.size() as u64).div_ceil(PAGE) * PAGE;
                phys::free(phys::to_phys(ptr), size);
            }
        }
    }
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;
