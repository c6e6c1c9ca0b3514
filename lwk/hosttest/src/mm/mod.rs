//! `lwk/src/mm`: the VMA set, the frame allocator's regions, file ranges,
//! the heap's slab caches.

#[path = "../../../src/mm/filemap.rs"]
pub mod filemap;
#[path = "../../../src/mm/region.rs"]
pub mod region;
#[path = "../../../src/mm/slab.rs"]
pub mod slab;
#[path = "../../../src/mm/vma.rs"]
pub mod vma;

/// Shim of `mm/pagetable.rs`: what `vma` uses.
pub mod pagetable {
    pub const LARGE: u64 = 2 << 20;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Perm {
        pub read: bool,
        pub write: bool,
        pub exec: bool,
    }
}

/// Shim of `mm/phys.rs`: what `vma` uses.
pub mod phys {
    pub const PAGE: u64 = 4096;
}
