//! Physical frame allocator, per NUMA node, over the assigned memory chunks
//! minus the boot area. Each chunk keeps a bitmap (1 = allocated) in its
//! own first pages. Free and total bytes per node are published in the
//! memory-info page after every change, for the host's query_free_mem.
//!
//! Allocation is first-fit from a per-chunk hint, contiguous, 4 KiB pages;
//! callers asking for a NUMA node get memory from that node only.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use ihk_abi::boot_params::{MAX_CHUNKS, MAX_NUMA_NODES};
use ihk_abi::meminfo::{FrameRegion, MemInfoPage, MAX_FRAME_REGIONS, MEMINFO_MAGIC};
use ihk_abi::BootParams;
use spin::Mutex;

pub use super::region::PAGE_SIZE;
use super::region::{Region, EMPTY};

struct Allocator {
    regions: [Region; MAX_CHUNKS],
    n: usize,
}

static ALLOC: Mutex<Allocator> = Mutex::new(Allocator {
    regions: [EMPTY; MAX_CHUNKS],
    n: 0,
});
static MEMINFO: AtomicU64 = AtomicU64::new(0);

/// Build the regions: every chunk, minus the boot area in chunk 0, minus
/// the bitmap itself.
pub fn init(bp: &BootParams) {
    let mut a = ALLOC.lock();
    let boot_end = bp.boot_area.end();
    for c in bp.chunks() {
        let start = if c.start < boot_end {
            boot_end.min(c.end)
        } else {
            c.start
        };
        let start = (start + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = c.end & !(PAGE_SIZE - 1);
        if end <= start || a.n == MAX_CHUNKS {
            continue;
        }
        let all = (end - start) / PAGE_SIZE;
        let words = all.div_ceil(64);
        let bitmap_pages = (words * 8).div_ceil(PAGE_SIZE);
        if bitmap_pages >= all {
            continue;
        }
        let pages = all - bitmap_pages;
        // SAFETY: [start, start + bitmap_pages pages) is memory of this
        // chunk outside the boot area, owned by the allocator from now on.
        // Through the direct map (mm/phys.rs): valid under any page table.
        let bitmap = super::phys::to_virt(start) as u64;
        unsafe { core::ptr::write_bytes(bitmap as *mut u8, 0, (bitmap_pages * PAGE_SIZE) as usize) };
        let n = a.n;
        a.regions[n] = Region {
            base: start + bitmap_pages * PAGE_SIZE,
            pages,
            bitmap,
            numa: c.numa_id,
            free: pages,
            hint: 0,
        };
        a.n += 1;
    }
    // SAFETY: the host zeroed the page and wrote the magic; identity-mapped.
    let mi_virt = super::phys::to_virt(bp.meminfo.phys) as u64; // direct map
    let mi = unsafe { &*(mi_virt as *const MemInfoPage) };
    if mi.magic == MEMINFO_MAGIC {
        MEMINFO.store(mi_virt, Ordering::Release);
        let nodes = (bp.nr_numa_nodes as usize).min(MAX_NUMA_NODES);
        publish(&a, nodes);
        mi.nr_numa_nodes.store(nodes as u64, Ordering::Release);
        publish_regions(&a, mi);
    }
}

/// The regions and their bitmaps, for the host's memory dumps (level 24
/// leaves out free pages). Written once; the count goes last.
fn publish_regions(a: &Allocator, mi: &MemInfoPage) {
    let n = a.n.min(MAX_FRAME_REGIONS);
    let out = core::ptr::addr_of!(mi.frame_regions) as *mut FrameRegion;
    for (i, r) in a.regions[..n].iter().enumerate() {
        let fr = FrameRegion {
            bitmap_pa: super::phys::to_phys(r.bitmap as *const u8),
            base_pa: r.base,
            pages: r.pages,
        };
        // SAFETY: i < MAX_FRAME_REGIONS, so the entry is inside the shared
        // page; the host reads entries only below the count stored next.
        unsafe { out.add(i).write_volatile(fr) };
    }
    mi.nr_frame_regions.store(n as u64, Ordering::Release);
}

fn publish(a: &Allocator, nodes: usize) {
    let p = MEMINFO.load(Ordering::Acquire);
    if p == 0 {
        return;
    }
    // SAFETY: validated in init.
    let mi = unsafe { &*(p as *const MemInfoPage) };
    for n in 0..nodes {
        let (mut free, mut total) = (0, 0);
        for r in a.regions[..a.n].iter().filter(|r| r.numa as usize == n) {
            free += r.free * PAGE_SIZE;
            total += r.pages * PAGE_SIZE;
        }
        mi.free_bytes[n].store(free, Ordering::Relaxed);
        mi.total_bytes[n].store(total, Ordering::Relaxed);
    }
}

fn nodes() -> usize {
    (crate::boot_params::get().nr_numa_nodes as usize).min(MAX_NUMA_NODES)
}

/// Allocate `count` contiguous pages, from NUMA node `numa` if given
/// (falling back to none other), else from any node. Physical address.
pub fn alloc_pages(count: u64, numa: Option<u32>) -> Option<u64> {
    let mut a = ALLOC.lock();
    let n = a.n;
    let got = a.regions[..n]
        .iter_mut()
        .filter(|r| numa.is_none_or(|x| r.numa == x))
        .find_map(|r| r.alloc(count));
    if got.is_some() {
        publish(&a, nodes());
    }
    got
}

/// Return pages from [`alloc_pages`].
pub fn free_pages(phys: u64, count: u64) {
    let mut a = ALLOC.lock();
    let n = a.n;
    let r = a.regions[..n]
        .iter_mut()
        .find(|r| phys >= r.base && phys + count * PAGE_SIZE <= r.base + r.pages * PAGE_SIZE);
    let Some(r) = r else {
        panic!(
            "free_pages: {:#x} (+{} pages) is not allocator memory",
            phys, count
        )
    };
    r.free((phys - r.base) / PAGE_SIZE, count);
    publish(&a, nodes());
}

/// (free, total) bytes of LWK NUMA node `numa`.
pub fn node_bytes(numa: u32) -> (u64, u64) {
    let a = ALLOC.lock();
    a.regions[..a.n]
        .iter()
        .filter(|r| r.numa == numa)
        .fold((0, 0), |(f, t), r| {
            (f + r.free * PAGE_SIZE, t + r.pages * PAGE_SIZE)
        })
}

/// Boot-time check that allocation, NUMA selection and freeing agree with
/// the counters (panics otherwise: a broken allocator must not boot).
pub fn self_check() {
    let numa = {
        let a = ALLOC.lock();
        if a.n == 0 {
            panic!("no allocatable memory: every chunk is inside the boot area");
        }
        a.regions[0].numa
    };
    let before = node_bytes(numa).0;
    let p1 = alloc_pages(1, Some(numa)).expect("mm self-check: one page");
    let p2 = alloc_pages(3, Some(numa)).expect("mm self-check: three pages");
    assert!(
        p1.is_multiple_of(PAGE_SIZE) && p2.is_multiple_of(PAGE_SIZE) && p1 != p2,
        "mm self-check: bad addresses"
    );
    assert_eq!(
        node_bytes(numa).0,
        before - 4 * PAGE_SIZE,
        "mm self-check: free count"
    );
    free_pages(p2, 3);
    free_pages(p1, 1);
    assert_eq!(
        node_bytes(numa).0,
        before,
        "mm self-check: free count after free"
    );
}

pub fn log_regions() {
    let a = ALLOC.lock();
    for r in &a.regions[..a.n] {
        crate::printk!(
            "Physical memory: {:#x} - {:#x}, {} bytes, {} pages available @ NUMA: {}",
            r.base,
            r.base + r.pages * PAGE_SIZE,
            r.pages * PAGE_SIZE,
            r.free,
            r.numa
        );
    }
}

/// Small formatting buffer for log lines built in pieces.
pub struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl LineBuf {
    pub fn new() -> LineBuf {
        LineBuf {
            buf: [0; 256],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
