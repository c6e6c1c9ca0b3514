//! The guest memory window: every guest memory region (a memfd `ihkd` passed
//! us) mapped once, MAP_SHARED, at an address Linux picks, so `mcexec` can
//! read and write the LWK's offload structures by guest-physical address.
//! Also the translation from a guest-physical range to (memfd, offset) used
//! to mirror user memory at fixed addresses (see `mirror.rs`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

/// One guest memory region as `ihkd` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionDesc {
    pub gpa: u64,
    pub size: u64,
    /// Offset of `gpa` inside the memfd.
    pub fd_offset: u64,
    /// Page size of the memfd (4 KiB, or the huge page size of hugetlbfs).
    pub page_size: u64,
}

struct Region {
    desc: RegionDesc,
    fd: OwnedFd,
    host: NonNull<u8>,
}

/// All guest memory, mapped.
pub struct GuestMemory {
    regions: Vec<Region>,
}

// SAFETY: the window is plain shared memory; concurrent access goes through
// atomics or is ordered by the offload protocol.
unsafe impl Send for GuestMemory {}
unsafe impl Sync for GuestMemory {}

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("cannot map guest memory region at {gpa:#x} ({size} bytes): {err}")]
    Map { gpa: u64, size: u64, err: nix::Error },
    #[error("guest-physical range {gpa:#x}+{len:#x} is outside the partition's memory")]
    OutOfRange { gpa: u64, len: u64 },
    #[error("guest memory regions overlap or are misaligned: {0}")]
    BadLayout(String),
}

impl GuestMemory {
    /// Map every region. `regions[i]` is backed by `fds[i]`.
    pub fn map(descs: Vec<RegionDesc>, fds: Vec<OwnedFd>) -> Result<GuestMemory, GuestError> {
        if descs.len() != fds.len() {
            return Err(GuestError::BadLayout(format!("{} regions but {} descriptors", descs.len(), fds.len())));
        }
        let mut regions = Vec::new();
        for (desc, fd) in descs.into_iter().zip(fds) {
            if desc.size == 0
                || !desc.page_size.is_power_of_two()
                || desc.gpa % desc.page_size != 0
                || desc.size % desc.page_size != 0
                || desc.fd_offset % desc.page_size != 0
            {
                return Err(GuestError::BadLayout(format!("{desc:x?}")));
            }
            // SAFETY: a fresh shared mapping at an address the kernel picks;
            // it aliases nothing in our address space.
            let host = unsafe {
                nix::sys::mman::mmap(
                    None,
                    std::num::NonZeroUsize::new(desc.size as usize).unwrap(),
                    nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                    nix::sys::mman::MapFlags::MAP_SHARED,
                    fd.as_fd(),
                    desc.fd_offset as i64,
                )
            }
            .map_err(|err| GuestError::Map { gpa: desc.gpa, size: desc.size, err })?;
            regions.push(Region { desc, fd, host: host.cast() });
        }
        regions.sort_by_key(|r| r.desc.gpa);
        for w in regions.windows(2) {
            if w[0].desc.gpa + w[0].desc.size > w[1].desc.gpa {
                return Err(GuestError::BadLayout("overlapping regions".into()));
            }
        }
        Ok(GuestMemory { regions })
    }

    fn region(&self, gpa: u64, len: u64) -> Result<&Region, GuestError> {
        let end = gpa.checked_add(len).ok_or(GuestError::OutOfRange { gpa, len })?;
        self.regions
            .iter()
            .find(|r| gpa >= r.desc.gpa && end <= r.desc.gpa + r.desc.size)
            .ok_or(GuestError::OutOfRange { gpa, len })
    }

    /// Host pointer of `[gpa, gpa+len)`, which must lie in one region.
    pub fn ptr(&self, gpa: u64, len: u64) -> Result<*mut u8, GuestError> {
        let r = self.region(gpa, len)?;
        // SAFETY: in bounds of the region's mapping (checked above).
        Ok(unsafe { r.host.as_ptr().add((gpa - r.desc.gpa) as usize) })
    }

    /// A reference to a `T` at `gpa` in guest memory.
    ///
    /// # Safety
    /// `gpa` must hold a `T` (as the ABI defines) that stays valid while the
    /// reference lives, and `T` must tolerate concurrent writes by the LWK
    /// (atomics, or fields read only when the protocol says they are stable).
    pub unsafe fn get<T>(&self, gpa: u64) -> Result<&T, GuestError> {
        let p = self.ptr(gpa, std::mem::size_of::<T>() as u64)?;
        if (p as usize) % std::mem::align_of::<T>() != 0 {
            return Err(GuestError::BadLayout(format!("misaligned object at {gpa:#x}")));
        }
        Ok(&*(p as *const T))
    }

    /// Copy `data` to guest-physical `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), GuestError> {
        let p = self.ptr(gpa, data.len() as u64)?;
        // SAFETY: `p..p+len` is inside the mapping; the LWK does not touch
        // the destination while it waits for this call.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    /// The memfd and file offset backing `[gpa, gpa+len)`, plus the region's
    /// page size, for mirroring.
    pub fn backing(&self, gpa: u64, len: u64) -> Result<(BorrowedFd<'_>, u64, u64), GuestError> {
        let r = self.region(gpa, len)?;
        Ok((r.fd.as_fd(), r.desc.fd_offset + (gpa - r.desc.gpa), r.desc.page_size))
    }

    /// The split of `[gpa, gpa+len)` at region boundaries.
    pub fn split(&self, gpa: u64, len: u64) -> Result<Vec<(u64, u64)>, GuestError> {
        let mut out = Vec::new();
        let (mut cur, end) = (gpa, gpa.checked_add(len).ok_or(GuestError::OutOfRange { gpa, len })?);
        while cur < end {
            let r = self
                .regions
                .iter()
                .find(|r| cur >= r.desc.gpa && cur < r.desc.gpa + r.desc.size)
                .ok_or(GuestError::OutOfRange { gpa: cur, len: end - cur })?;
            let piece_end = end.min(r.desc.gpa + r.desc.size);
            out.push((cur, piece_end - cur));
            cur = piece_end;
        }
        Ok(out)
    }

    /// Largest page size of the regions: the granule the LWK must back
    /// user memory in so every mirror is a valid mmap of its memfd.
    pub fn mirror_granule(&self) -> u64 {
        self.regions.iter().map(|r| r.desc.page_size).max().unwrap_or(4096)
    }

    /// Raw descriptors to keep away from the program's fd operations.
    pub fn raw_fds(&self) -> Vec<i32> {
        self.regions.iter().map(|r| r.fd.as_raw_fd()).collect()
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        for r in &self.regions {
            // SAFETY: unmapping exactly the mapping made in `map`; no
            // reference into it outlives `self` (they borrow `self`).
            let _ = unsafe { nix::sys::mman::munmap(r.host.cast(), r.desc.size as usize) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd(size: u64) -> OwnedFd {
        let fd = nix::sys::memfd::memfd_create(c"guest-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap();
        nix::unistd::ftruncate(&fd, size as i64).unwrap();
        fd
    }

    #[test]
    fn translates_and_splits() {
        let descs = vec![
            RegionDesc { gpa: 0, size: 0x10000, fd_offset: 0, page_size: 4096 },
            RegionDesc { gpa: 0x10000, size: 0x8000, fd_offset: 0x1000, page_size: 4096 },
        ];
        let g = GuestMemory::map(descs, vec![memfd(0x10000), memfd(0x9000)]).unwrap();
        g.write(0x10010, b"abc").unwrap();
        let p = g.ptr(0x10010, 3).unwrap();
        assert_eq!(unsafe { std::slice::from_raw_parts(p, 3) }, b"abc");
        assert!(g.ptr(0xfff0, 0x20).is_err(), "crossing regions is not one pointer");
        assert_eq!(g.split(0xf000, 0x2000).unwrap(), vec![(0xf000, 0x1000), (0x10000, 0x1000)]);
        assert!(g.split(0x17000, 0x2000).is_err());
        let (_, off, ps) = g.backing(0x12000, 0x1000).unwrap();
        assert_eq!((off, ps), (0x3000, 4096));
        assert_eq!(g.mirror_granule(), 4096);
    }

    #[test]
    fn rejects_bad_layouts() {
        let descs = vec![RegionDesc { gpa: 0x800, size: 0x1000, fd_offset: 0, page_size: 4096 }];
        assert!(GuestMemory::map(descs, vec![memfd(0x1000)]).is_err());
    }
}
