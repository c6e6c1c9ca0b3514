//! Guest-physical placement of the reserved chunks, and bounds-checked
//! access to guest memory from the host.
//!
//! Chunks are placed upward from GPA 0 in the order given (so the first
//! chunk holds the boot area at GPA 0), each aligned to 2 MiB, or to 1 GiB
//! when it is at least 1 GiB (keeps 1 GiB host pages mapped as 1 GiB guest
//! pages). A chunk that would cross the MMIO hole (3-4 GiB) is split around
//! it: the LWK then sees two chunks on the same NUMA node.

use crate::error::VmError;
use crate::spec::ChunkSpec;
use ihk_abi::layout::{align_up, CHUNK_GPA_ALIGN, HUGE_PAGE_SIZE, MMIO_HOLE_END, MMIO_HOLE_START};
use std::os::fd::RawFd;

/// One contiguous piece of guest memory (one KVM memslot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRegion {
    pub gpa: u64,
    pub size: u64,
    /// Linux NUMA node.
    pub numa_id: u32,
    /// Index of the [`ChunkSpec`] this region comes from.
    pub chunk: usize,
    pub memfd: RawFd,
    /// Offset of the region's first byte in `memfd`.
    pub memfd_offset: u64,
    /// Host virtual address of the region's first byte.
    pub host_addr: *mut u8,
}

// SAFETY: the memory behind host_addr is shared memory that the partition's
// caller keeps mapped; GuestRegion itself never dereferences it.
unsafe impl Send for GuestRegion {}
unsafe impl Sync for GuestRegion {}

impl GuestRegion {
    pub fn end(&self) -> u64 {
        self.gpa + self.size
    }
}

/// Place `chunks` in guest-physical space (pure function, unit-tested).
pub(crate) fn place_chunks(chunks: &[ChunkSpec]) -> Result<Vec<GuestRegion>, VmError> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        if c.size == 0 || c.size % CHUNK_GPA_ALIGN != 0 {
            return Err(VmError::invalid(
                "memory chunk",
                format!(
                    "chunk {i} has size {:#x}; expected a non-zero multiple of 2 MiB",
                    c.size
                ),
            ));
        }
        if c.host_addr.is_null() || (c.host_addr as u64) % 4096 != 0 {
            return Err(VmError::invalid(
                "memory chunk",
                format!(
                    "chunk {i} host address {:p} is not page aligned",
                    c.host_addr
                ),
            ));
        }
        let align = if c.size >= HUGE_PAGE_SIZE {
            HUGE_PAGE_SIZE
        } else {
            CHUNK_GPA_ALIGN
        };
        let mut gpa = align_up(cursor, align);
        let mut done = 0u64;
        while done < c.size {
            if (MMIO_HOLE_START..MMIO_HOLE_END).contains(&gpa) {
                gpa = MMIO_HOLE_END;
            }
            let mut size = c.size - done;
            if gpa < MMIO_HOLE_START && gpa + size > MMIO_HOLE_START {
                size = MMIO_HOLE_START - gpa;
            }
            out.push(GuestRegion {
                gpa,
                size,
                numa_id: c.numa_id,
                chunk: i,
                memfd: c.memfd,
                memfd_offset: c.memfd_offset + done,
                // SAFETY: done < c.size, inside the caller's mapping.
                host_addr: unsafe { c.host_addr.add(done as usize) },
            });
            done += size;
            gpa += size;
        }
        cursor = gpa;
    }
    Ok(out)
}

/// Host view of guest memory.
pub(crate) struct GuestMemory {
    regions: Vec<GuestRegion>,
}

impl GuestMemory {
    pub fn new(regions: Vec<GuestRegion>) -> GuestMemory {
        GuestMemory { regions }
    }

    pub fn regions(&self) -> &[GuestRegion] {
        &self.regions
    }

    /// Host pointer to `[gpa, gpa + len)`, which must lie in one region.
    pub fn host_ptr(&self, gpa: u64, len: u64) -> Result<*mut u8, VmError> {
        for r in &self.regions {
            if gpa >= r.gpa && gpa.checked_add(len).is_some_and(|e| e <= r.end()) {
                // SAFETY: offset within the region's mapping (checked above).
                return Ok(unsafe { r.host_addr.add((gpa - r.gpa) as usize) });
            }
        }
        Err(VmError::invalid(
            "guest address",
            format!("[{gpa:#x}, +{len:#x}) is not inside one guest memory region"),
        ))
    }

    /// Copy `data` to guest-physical `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), VmError> {
        let p = self.host_ptr(gpa, data.len() as u64)?;
        // SAFETY: host_ptr checked the range is mapped guest memory; the
        // guest is not running while the host writes boot structures.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    /// Zero `[gpa, gpa + len)`.
    pub fn zero(&self, gpa: u64, len: u64) -> Result<(), VmError> {
        let p = self.host_ptr(gpa, len)?;
        // SAFETY: as in write().
        unsafe { std::ptr::write_bytes(p, 0, len as usize) };
        Ok(())
    }

    /// Write a plain value at `gpa`.
    pub fn write_obj<T: Copy>(&self, gpa: u64, v: &T) -> Result<(), VmError> {
        // SAFETY: T: Copy is plain data; viewing it as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>())
        };
        self.write(gpa, bytes)
    }

    /// A shared reference to a structure in guest memory that both sides
    /// access only through atomics (monitor page, kmsg header, rings).
    ///
    /// # Safety
    /// `T` must consist of atomics and fields the guest never writes after
    /// boot, be valid for any bit pattern, and the reference must not outlive
    /// this `GuestMemory`'s mappings.
    pub unsafe fn shared<T>(&self, gpa: u64) -> Result<&T, VmError> {
        let p = self.host_ptr(gpa, std::mem::size_of::<T>() as u64)?;
        if (p as usize) % std::mem::align_of::<T>() != 0 {
            return Err(VmError::invalid(
                "guest address",
                format!("{gpa:#x} misaligned"),
            ));
        }
        // SAFETY: in bounds and aligned (checked), contract above.
        Ok(unsafe { &*(p as *const T) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(addr: usize, size: u64, numa: u32) -> ChunkSpec {
        ChunkSpec {
            host_addr: addr as *mut u8,
            size,
            numa_id: numa,
            memfd: 3,
            memfd_offset: 0,
        }
    }

    #[test]
    fn small_chunks_are_packed_from_zero() {
        let r = place_chunks(&[
            chunk(0x7000_0000_0000, 64 << 20, 0),
            chunk(0x7100_0000_0000, 32 << 20, 1),
        ])
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].gpa, r[0].size, r[0].numa_id), (0, 64 << 20, 0));
        assert_eq!((r[1].gpa, r[1].size, r[1].numa_id), (64 << 20, 32 << 20, 1));
    }

    #[test]
    fn gib_chunks_are_gib_aligned_and_skip_the_hole() {
        let r = place_chunks(&[
            chunk(0x7000_0000_0000, 512 << 20, 0),
            chunk(0x7100_0000_0000, 2 << 30, 0),
            chunk(0x7200_0000_0000, 1 << 30, 1),
        ])
        .unwrap();
        assert_eq!(r[0].gpa, 0);
        assert_eq!(r[1].gpa, 1 << 30);
        assert_eq!(r[1].end(), 3 << 30);
        assert_eq!(r[2].gpa, 4 << 30, "must jump over the 3-4 GiB hole");
        for x in &r {
            assert!(x.end() <= MMIO_HOLE_START || x.gpa >= MMIO_HOLE_END);
        }
    }

    #[test]
    fn chunk_crossing_the_hole_is_split() {
        let base = 0x7000_0000_0000usize;
        let mut c = chunk(base, 5 << 30, 2);
        c.memfd_offset = 0x1000_0000;
        let r = place_chunks(&[c]).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].gpa, r[0].size), (0, 3 << 30));
        assert_eq!((r[1].gpa, r[1].size), (4 << 30, 2 << 30));
        assert_eq!(r[1].memfd_offset, 0x1000_0000 + (3 << 30));
        assert_eq!(r[1].host_addr as usize, base + (3 << 30));
        assert!(r.iter().all(|x| x.chunk == 0 && x.numa_id == 2));
    }

    #[test]
    fn bad_sizes_are_rejected() {
        let e = place_chunks(&[chunk(0x7000_0000_0000, (2 << 20) + 4096, 0)]).unwrap_err();
        assert!(e.to_string().contains("multiple of 2 MiB"), "{e}");
        assert!(place_chunks(&[chunk(0, 2 << 20, 0)]).is_err());
    }

    #[test]
    fn host_ptr_bounds() {
        let mut buf = vec![0u8; 4 << 20];
        let base = buf.as_mut_ptr();
        let regions = vec![GuestRegion {
            gpa: 0,
            size: 4 << 20,
            numa_id: 0,
            chunk: 0,
            memfd: -1,
            memfd_offset: 0,
            host_addr: base,
        }];
        let m = GuestMemory::new(regions);
        assert_eq!(
            m.host_ptr(0x1000, 16).unwrap() as usize,
            base as usize + 0x1000
        );
        assert!(m.host_ptr((4 << 20) - 8, 16).is_err());
        assert!(m.host_ptr(u64::MAX - 4, 16).is_err());
        m.write(8, &[1, 2, 3]).unwrap();
        assert_eq!(&buf[8..11], &[1, 2, 3]);
    }
}
