//! Guest-physical and kernel-virtual layout fixed at boot.
//!
//! The host places the first memory chunk at guest-physical address 0 and puts
//! the boot area at its start (the LWK learns every address below from
//! [`crate::BootParams`] too; these constants are the single place the host
//! takes them from):
//!
//! ```text
//! 0x0000_0000  null page (not mapped, catches NULL dereferences)
//! 0x0000_1000  boot parameters                       BOOT_PARAMS_GPA
//! 0x0001_0000  host GDT + TSS used at entry          GDT_GPA
//! 0x0001_1000  memory-info page (free bytes / NUMA)  MEMINFO_GPA
//! 0x0001_2000  rusage pages                          RUSAGE_GPA
//! 0x0002_0000  monitor page (status, heartbeats)     MONITOR_GPA
//! 0x0003_0000  master IKC ring, LWK -> host          IKC_MASTER_TO_HOST_GPA
//! 0x0004_0000  master IKC ring, host -> LWK          IKC_MASTER_TO_LWK_GPA
//! 0x0008_0000  kmsg ring buffer                      KMSG_GPA
//! 0x0010_0000  initial page tables                   PAGE_TABLES_GPA
//! 0x0020_0000  kernel image (KERNEL_VIRT_BASE)       KERNEL_PHYS_BASE
//!  ...         per-CPU boot stacks, 2 MiB aligned start after the image
//!  ...         boot area end; the rest is free memory for the LWK
//! ```
//!
//! Further chunks follow upward in guest-physical space, each aligned to
//! [`CHUNK_GPA_ALIGN`] (1 GiB for chunks of at least 1 GiB so huge host pages
//! stay huge in the EPT/NPT), and never overlapping [`MMIO_HOLE_START`] ..
//! [`MMIO_HOLE_END`].

/// Base page size.
pub const PAGE_SIZE: u64 = 0x1000;
/// Large page size used by the initial page tables.
pub const LARGE_PAGE_SIZE: u64 = 0x20_0000;
/// Huge page size (used for the identity map when the CPU supports it).
pub const HUGE_PAGE_SIZE: u64 = 0x4000_0000;

/// Virtual address the LWK image is linked at (top 2 GiB, `code-model=kernel`).
pub const KERNEL_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Where the LWK maps all guest memory for itself (its direct map: kernel
/// virtual address = this + guest-physical address), besides the identity
/// map of the lower half that user address spaces replace. Memory dumps
/// describe guest memory at these addresses.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
/// Largest kernel image span (virtual size of all PT_LOAD segments).
pub const KERNEL_MAX_SIZE: u64 = 64 << 20;
/// Physical address the byte at [`KERNEL_VIRT_BASE`] is loaded to.
pub const KERNEL_PHYS_BASE: u64 = 0x20_0000;

/// End (exclusive) of the identity map's reach as the specification draws it;
/// the host maps only real guest memory inside it.
pub const IDENTITY_MAP_LIMIT: u64 = 0x0000_ff80_0000_0000;

pub const NULL_PAGE_GPA: u64 = 0;
pub const BOOT_PARAMS_GPA: u64 = 0x1000;
pub const BOOT_PARAMS_MAX_SIZE: u64 = 0xf000;
pub const GDT_GPA: u64 = 0x1_0000;
pub const GDT_SIZE: u64 = 0x1000;
pub const MEMINFO_GPA: u64 = 0x1_1000;
pub const MEMINFO_SIZE: u64 = 0x1000;
pub const RUSAGE_GPA: u64 = 0x1_2000;
pub const RUSAGE_SIZE: u64 = 0xe000;
pub const MONITOR_GPA: u64 = 0x2_0000;
pub const MONITOR_SIZE: u64 = 0x1_0000;
pub const IKC_MASTER_TO_HOST_GPA: u64 = 0x3_0000;
pub const IKC_MASTER_TO_LWK_GPA: u64 = 0x4_0000;
pub const IKC_MASTER_RING_SIZE: u64 = 0x1_0000;
pub const KMSG_GPA: u64 = 0x8_0000;
pub const KMSG_SIZE: u64 = 0x8_0000;
pub const PAGE_TABLES_GPA: u64 = 0x10_0000;
pub const PAGE_TABLES_SIZE: u64 = 0x10_0000;

/// Per-CPU boot stack size (rsp at entry is the top of the CPU's stack).
pub const BOOT_STACK_SIZE: u64 = 0x1_0000;

/// Smallest first chunk the host accepts: boot area, a 2 MiB kernel window,
/// and some memory left for the LWK.
pub const MIN_FIRST_CHUNK_SIZE: u64 = 16 << 20;

/// Guest-physical alignment of every chunk (and granularity of chunk sizes).
pub const CHUNK_GPA_ALIGN: u64 = LARGE_PAGE_SIZE;

/// Share windows: guest-physical range where host files that LWK
/// processes map `MAP_SHARED` appear (one KVM memslot per window onto the
/// host file's own pages, so LWK processes, mcexec and Linux processes share
/// the same physical memory). Above every memory chunk (4 TiB, so the guest
/// needs 43 physical address bits); the LWK allocates windows in it, 2 MiB
/// aligned, and the host maps them on request (`docs/shared-memory.md`).
pub const SHARE_WINDOW_GPA: u64 = 0x400_0000_0000;
/// Size of the share-window range (64 GiB: 32768 windows of 2 MiB).
pub const SHARE_WINDOW_SIZE: u64 = 64 << 30;
/// Alignment of a window's guest-physical start.
pub const SHARE_WINDOW_ALIGN: u64 = LARGE_PAGE_SIZE;

/// The x86 MMIO hole (LAPIC, IOAPIC, firmware): no guest memory here.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;

/// Start of the per-CPU stacks: first 2 MiB boundary after the kernel image.
pub const fn stacks_gpa(kernel_span: u64) -> u64 {
    align_up(KERNEL_PHYS_BASE + kernel_span, LARGE_PAGE_SIZE)
}

/// End of the boot area (first byte the LWK may allocate in chunk 0).
pub const fn boot_area_end(kernel_span: u64, nr_cpus: u64) -> u64 {
    align_up(
        stacks_gpa(kernel_span) + nr_cpus * BOOT_STACK_SIZE,
        LARGE_PAGE_SIZE,
    )
}

/// Round `v` up to a multiple of the power of two `align`.
pub const fn align_up(v: u64, align: u64) -> u64 {
    (v + align - 1) & !(align - 1)
}

/// Round `v` down to a multiple of the power of two `align`.
pub const fn align_down(v: u64, align: u64) -> u64 {
    v & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_area_regions_do_not_overlap() {
        let mut regions = [
            (NULL_PAGE_GPA, PAGE_SIZE),
            (BOOT_PARAMS_GPA, BOOT_PARAMS_MAX_SIZE),
            (GDT_GPA, GDT_SIZE),
            (MEMINFO_GPA, MEMINFO_SIZE),
            (RUSAGE_GPA, RUSAGE_SIZE),
            (MONITOR_GPA, MONITOR_SIZE),
            (IKC_MASTER_TO_HOST_GPA, IKC_MASTER_RING_SIZE),
            (IKC_MASTER_TO_LWK_GPA, IKC_MASTER_RING_SIZE),
            (KMSG_GPA, KMSG_SIZE),
            (PAGE_TABLES_GPA, PAGE_TABLES_SIZE),
            (KERNEL_PHYS_BASE, LARGE_PAGE_SIZE),
        ];
        regions.sort();
        for w in regions.windows(2) {
            assert!(
                w[0].0 + w[0].1 <= w[1].0,
                "{:#x?} overlaps {:#x?}",
                w[0],
                w[1]
            );
        }
        for (gpa, size) in regions {
            assert_eq!(gpa % PAGE_SIZE, 0);
            assert_eq!(size % PAGE_SIZE, 0);
        }
    }

    #[test]
    fn boot_area_fits_minimum_chunk() {
        assert_eq!(stacks_gpa(0x1234), 0x40_0000);
        assert_eq!(boot_area_end(0x1234, 4), 0x60_0000);
        assert!(boot_area_end(LARGE_PAGE_SIZE, 8) < MIN_FIRST_CHUNK_SIZE);
        assert_eq!(KERNEL_PHYS_BASE % LARGE_PAGE_SIZE, 0);
    }
}
