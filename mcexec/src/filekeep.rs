//! Files kept for private file mappings, proxy side (docs/memory.md): the
//! LWK fills a private file mapping's pages from the file when they are
//! first touched. The program usually closes its descriptor right after
//! `mmap`, so at `mmap` the LWK asks us to keep the file
//! (`OffloadCall::KeepFile`): we map it read-only and shared outside the
//! LWK user range and close our descriptor (mcexec's reserved descriptor
//! numbers are few, and share windows need them), then copy from that
//! mapping into guest memory on request (`ReadKept`). The mapping is the
//! host's page cache, so a page the LWK reads later shows what Linux wrote
//! to the file meanwhile. The LWK drops a kept file when no mapping of it is
//! left (`DropFile`). A fork child inherits them with our memory.

use std::sync::Mutex;

/// One kept file: our mapping of its first `len` bytes (`addr` 0 when
/// `len` is 0).
struct Kept {
    addr: usize,
    len: u64,
}

impl Drop for Kept {
    fn drop(&mut self) {
        if self.addr != 0 {
            // SAFETY: our own mapping, made in `keep`, unmapped once.
            unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len as usize) };
        }
    }
}

/// Kept files by handle (index); freed slots are reused.
static KEPT: Mutex<Vec<Option<Kept>>> = Mutex::new(Vec::new());

fn kept() -> std::sync::MutexGuard<'static, Vec<Option<Kept>>> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno() -> i64 {
    -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as i64)
}

/// `OffloadCall::KeepFile(fd, size)`: keep the first `size` bytes of the
/// file. Returns the handle or -errno.
pub fn keep(fd: i32, size: u64) -> i64 {
    let addr = if size == 0 {
        0
    } else {
        // SAFETY: a new read-only shared mapping placed by the kernel (not
        // in the LWK user range, which is reserved); an invalid descriptor
        // or one not open for reading fails.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), size as usize, libc::PROT_READ, libc::MAP_SHARED, fd, 0) };
        if p == libc::MAP_FAILED {
            return errno();
        }
        p as usize
    };
    let k = Kept { addr, len: size };
    let mut v = kept();
    let h = match v.iter().position(Option::is_none) {
        Some(i) => {
            v[i] = Some(k);
            i
        }
        None => {
            v.push(Some(k));
            v.len() - 1
        }
    };
    h as i64
}

/// `OffloadCall::DropFile(handle)`. Returns 0 or -EBADF.
pub fn drop_kept(h: i64) -> i64 {
    let mut v = kept();
    match usize::try_from(h).ok().and_then(|i| v.get_mut(i)).and_then(Option::take) {
        Some(_) => 0,
        None => -(libc::EBADF as i64),
    }
}

/// `OffloadCall::ReadKept`: copy up to `len` bytes from `off` of kept file
/// `h` to `dst` (guest memory). Returns the bytes copied or -errno.
pub fn read(h: i64, dst: *mut u8, len: u64, off: u64) -> i64 {
    let (addr, size) = {
        let v = kept();
        match usize::try_from(h).ok().and_then(|i| v.get(i)).and_then(Option::as_ref) {
            Some(k) => (k.addr, k.len),
            None => return -(libc::EBADF as i64),
        }
    };
    if off >= size {
        return 0;
    }
    let n = len.min(size - off) as usize;
    // A copy through process_vm_readv rather than memcpy: if the file
    // shrank under the range, the kernel answers EFAULT (a short count)
    // where a memcpy from the mapping would raise SIGBUS in mcexec.
    let local = libc::iovec { iov_base: dst as *mut libc::c_void, iov_len: n };
    let remote = libc::iovec { iov_base: (addr + off as usize) as *mut libc::c_void, iov_len: n };
    // SAFETY: `dst..dst+n` is guest memory the LWK handed us for this call;
    // the remote range lies in our mapping, kept while the LWK maps the file
    // (it drops it only when no range uses it).
    let r = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if r < 0 {
        return errno();
    }
    r as i64
}
