//! One reserved memory region: a memfd of one page size, mapped shared,
//! bound to one NUMA node, populated and locked.
//!
//! The mapping is what KVM memslots point at and the memfd is what other
//! processes (mcexec) map to share the LWK's memory; both live exactly as
//! long as the `Region`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use crate::error::{IhkError, IhkResult};

const MADV_POPULATE_WRITE: libc::c_int = 23;
const MPOL_BIND: libc::c_int = 2;
const MPOL_MF_STRICT: libc::c_uint = 1;
const MPOL_MF_MOVE: libc::c_uint = 2;
/// Nodes representable in the mbind mask below.
const MAX_NODES: usize = 1024;
/// At most this many threads populate one region.
const POPULATE_THREADS_MAX: usize = 8;
/// Each populating thread gets at least this many bytes, so small regions
/// stay single-threaded.
const POPULATE_MIN_BYTES_PER_THREAD: usize = 64 << 20;

/// A populated, locked, node-bound shared mapping of a memfd.
pub struct Region {
    fd: OwnedFd,
    addr: NonNull<u8>,
    size: u64,
    node: u32,
    page_kb: u64,
}

// SAFETY: the mapping is owned by the Region alone (no aliasing Rust
// references are handed out; users receive raw addresses for KVM and
// cannot outlive the Region by construction of the pool), and the fd is an
// ordinary file descriptor.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// Allocate `size` bytes on `node` with pages of `page_kb` KiB (4 for
    /// normal pages; 2048 or 1048576 for hugetlb, which must already be in
    /// the node's pool). Fails without leaving anything allocated.
    pub fn create(node: u32, size: u64, page_kb: u64) -> IhkResult<Region> {
        if size == 0 || size % (page_kb * 1024) != 0 {
            return Err(IhkError::inval(format!(
                "region of {size} bytes is not a multiple of {page_kb} KiB pages"
            )));
        }
        if node as usize >= MAX_NODES {
            return Err(IhkError::inval(format!("NUMA node {node} is out of range")));
        }
        let mut flags = libc::MFD_CLOEXEC;
        match page_kb {
            4 => {}
            2048 => flags |= libc::MFD_HUGETLB | libc::MFD_HUGE_2MB,
            1048576 => flags |= libc::MFD_HUGETLB | libc::MFD_HUGE_1GB,
            _ => {
                return Err(IhkError::inval(format!(
                    "unsupported page size {page_kb} KiB"
                )))
            }
        }
        let name = CString::new(format!("ihk-node{node}-{page_kb}k")).unwrap();
        // SAFETY: name is a valid C string; the returned fd is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if raw < 0 {
            return Err(IhkError::os(
                std::io::Error::last_os_error(),
                "memfd_create",
            ));
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: plain syscall on our own fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) } != 0 {
            return Err(IhkError::os(
                std::io::Error::last_os_error(),
                format!("sizing memfd to {size} bytes"),
            ));
        }
        // SAFETY: a new shared mapping of our memfd at a kernel-chosen
        // address; nothing else refers to that range.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(IhkError::os(
                std::io::Error::last_os_error(),
                format!("mapping {size} bytes"),
            ));
        }
        let region = Region {
            fd,
            addr: NonNull::new(p as *mut u8).unwrap(),
            size,
            node,
            page_kb,
        };
        // From here on, dropping `region` unmaps and closes.
        region.bind_populate_lock()?;
        Ok(region)
    }

    fn bind_populate_lock(&self) -> IhkResult<()> {
        let mut mask = [0u64; MAX_NODES / 64];
        mask[self.node as usize / 64] |= 1 << (self.node % 64);
        // SAFETY: mbind on our own mapping with a mask of MAX_NODES bits
        // (maxnode is the bit count plus one, per the kernel ABI).
        let r = unsafe {
            libc::syscall(
                libc::SYS_mbind,
                self.addr.as_ptr(),
                self.size as usize,
                MPOL_BIND,
                mask.as_ptr(),
                (MAX_NODES + 1) as libc::c_ulong,
                MPOL_MF_STRICT | MPOL_MF_MOVE,
            )
        };
        if r != 0 {
            return Err(IhkError::os(
                std::io::Error::last_os_error(),
                format!("binding memory to NUMA node {}", self.node),
            ));
        }
        if let Err(err) = self.populate() {
            if err.raw_os_error() == Some(libc::EINVAL) && self.page_kb == 4 {
                // Kernels before 5.14: touch every page (safe for normal pages).
                let step = 4096usize;
                for off in (0..self.size as usize).step_by(step) {
                    // SAFETY: off is inside our mapping.
                    unsafe { std::ptr::write_volatile(self.addr.as_ptr().add(off), 0) };
                }
            } else {
                return Err(IhkError::new(
                    libc::ENOMEM,
                    format!(
                        "populating {} bytes of {} KiB pages on NUMA node {}: {err}",
                        self.size, self.page_kb, self.node
                    ),
                ));
            }
        }
        // SAFETY: locking our own mapping.
        if unsafe { libc::mlock(self.addr.as_ptr() as *const _, self.size as usize) } != 0 {
            return Err(IhkError::os(
                std::io::Error::last_os_error(),
                format!("locking {} bytes", self.size),
            ));
        }
        Ok(())
    }

    /// Fault every page in (MADV_POPULATE_WRITE: errors are reported,
    /// never a SIGBUS, which touching hugetlb pages without a pool would
    /// raise). Zeroing the pages is most of a reservation's cost, so large
    /// regions are populated by several threads, split at page boundaries.
    fn populate(&self) -> std::io::Result<()> {
        let page = self.page_kb as usize * 1024;
        let pages = self.size as usize / page;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(POPULATE_THREADS_MAX)
            .min(self.size as usize / POPULATE_MIN_BYTES_PER_THREAD)
            .min(pages)
            .max(1);
        let per = pages.div_ceil(threads) * page;
        let base = self.addr.as_ptr() as usize;
        let size = self.size as usize;
        let populate = move |off: usize| -> std::io::Result<()> {
            let len = per.min(size - off);
            // SAFETY: [base+off, base+off+len) lies inside our mapping.
            let r = unsafe { libc::madvise((base + off) as *mut _, len, MADV_POPULATE_WRITE) };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (per..size)
                .step_by(per)
                .map(|off| s.spawn(move || populate(off)))
                .collect();
            let mut result = populate(0);
            for h in handles {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("populate thread panicked")));
                if result.is_ok() {
                    result = r;
                }
            }
            result
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn node(&self) -> u32 {
        self.node
    }
    pub fn page_kb(&self) -> u64 {
        self.page_kb
    }
    /// Start of the mapping in ihkd's address space.
    pub fn addr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping this Region created and owns; no
        // user of its addresses outlives the Region (see the pool).
        unsafe {
            libc::munmap(self.addr.as_ptr() as *mut _, self.size as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_pages_are_populated_locked_and_shared() {
        if !nix::unistd::geteuid().is_root() {
            mck_tests::cannot_run("normal_pages_are_populated_locked_and_shared", "needs root for mlock of 8 MiB");
            return;
        }
        let r = Region::create(0, 8 << 20, 4).unwrap();
        // SAFETY: inside the mapping.
        unsafe { *r.addr().add(4096) = 42 };
        let mut b = [0u8; 1];
        // The memfd sees the same bytes.
        nix::sys::uio::pread(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(r.fd()) },
            &mut b,
            4096,
        )
        .unwrap();
        assert_eq!(b[0], 42);
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let locked: u64 = status
            .lines()
            .find(|l| l.starts_with("VmLck:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert!(locked >= 8 * 1024, "VmLck {locked} kB");
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert_eq!(
            Region::create(0, 4096 * 3, 2048).err().unwrap().errno,
            libc::EINVAL
        );
        assert_eq!(Region::create(0, 0, 4).err().unwrap().errno, libc::EINVAL);
    }
}
