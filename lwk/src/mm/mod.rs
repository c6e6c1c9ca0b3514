//! Memory: the frame allocator over the assigned chunks (`frame`, one
//! chunk's bitmap in `region`), the
//! direct map and aligned allocation on top of it (`phys`), the kernel heap
//! (`heap`, its slab caches in `slab`), x86-64 page tables (`pagetable`), and user address spaces:
//! VMAs, their backing and the map table `mcexec` mirrors (`aspace`), with
//! the file-backed ranges (`filemap`), read-only file granules shared
//! between processes (`pagecache`), and the share windows through which
//! processes map host files `MAP_SHARED` (`window`).
//!
//! Below `process/`: it knows nothing of threads or offloading. The one
//! thing it needs from above, zeroing and copying user memory by the
//! calling thread's proxy, is registered by `process` at boot (`bulk`).

pub mod aspace;
pub mod bulk;
pub mod filemap;
pub mod frame;
pub mod heap;
pub mod pagecache;
pub mod pagetable;
pub mod phys;
pub mod region;
pub mod slab;
pub mod vma;
pub mod window;

use ihk_abi::BootParams;

pub fn init(bp: &BootParams) {
    frame::init(bp);
    frame::self_check();
}

/// McKernel-like memory lines in kmsg.
pub fn log_layout(bp: &BootParams) {
    for (i, c) in bp.chunks().iter().enumerate() {
        crate::printk!(
            "Memory chunk {}: {:#x} - {:#x} ({} bytes) @ NUMA: {}",
            i,
            c.start,
            c.end,
            c.end - c.start,
            c.numa_id
        );
    }
    frame::log_regions();
    for (i, n) in bp.numa_nodes().iter().enumerate() {
        let (free, _) = frame::node_bytes(i as u32);
        crate::printk!(
            "NUMA: {}, Linux NUMA: {}, type: {}, available bytes: {}, pages: {}",
            i,
            n.linux_id,
            n.mem_type,
            free,
            free / frame::PAGE_SIZE
        );
        let mut line = crate::mm::frame::LineBuf::new();
        for j in 0..bp.numa_nodes().len() {
            let _ = core::fmt::Write::write_fmt(
                &mut line,
                format_args!("{} ({}), ", j, bp.numa_distance(i, j).unwrap_or(0)),
            );
        }
        crate::printk!("NUMA {} distances: {}", i, line.as_str());
    }
}
