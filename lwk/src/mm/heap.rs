//! The kernel heap (`alloc`) for process bookkeeping: power-of-two size
//! classes from 16 bytes to 2 KiB carved out of 4 KiB frames, with free
//! lists; bigger requests take whole contiguous frames. Memory is reached
//! through the direct map, so heap pointers stay valid under any process's
//! page table. Freed frames of small classes are kept for reuse.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

use spin::Mutex;

use super::phys::{self, PAGE};

const CLASSES: usize = 8; // 16, 32, .. 2048
const MIN_SHIFT: usize = 4;

struct FreeList {
    heads: [usize; CLASSES],
}

static LISTS: Mutex<FreeList> = Mutex::new(FreeList { heads: [0; CLASSES] });

fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    if size > 2048 {
        return None;
    }
    let shift = usize::BITS as usize - (size - 1).leading_zeros() as usize;
    Some(shift - MIN_SHIFT)
}

pub struct KernelHeap;

unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(&layout) {
            Some(c) => {
                let mut l = LISTS.lock();
                if l.heads[c] == 0 {
                    let Some(pa) = phys::alloc_on(PAGE, PAGE, None) else { return null_mut() };
                    let base = phys::to_virt(pa) as usize;
                    let size = 1usize << (c + MIN_SHIFT);
                    // Thread the new page's objects onto the free list.
                    let mut off = 0;
                    while off < PAGE as usize {
                        let obj = base + off;
                        // SAFETY: `obj` is inside the fresh page we own.
                        unsafe { *(obj as *mut usize) = l.heads[c] };
                        l.heads[c] = obj;
                        off += size;
                    }
                }
                let obj = l.heads[c];
                // SAFETY: `obj` is a free object whose first word links the list.
                l.heads[c] = unsafe { *(obj as *const usize) };
                obj as *mut u8
            }
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
        match class_of(&layout) {
            Some(c) => {
                let mut l = LISTS.lock();
                // SAFETY: `ptr` came from `alloc` with this class; its first
                // word becomes the link.
                unsafe { *(ptr as *mut usize) = l.heads[c] };
                l.heads[c] = ptr as usize;
            }
            None => {
                let size = (layout.size() as u64).div_ceil(PAGE) * PAGE;
                phys::free(phys::to_phys(ptr), size);
            }
        }
    }
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;
