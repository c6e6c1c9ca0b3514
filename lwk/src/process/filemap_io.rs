//! The offloaded half of file-backed mappings (`mm/filemap.rs` keeps the
//! ranges): describing a host descriptor, duplicating it for a shared
//! mapping, having the proxy keep a file for on-demand filling of private
//! ones, and
//! writing shared ranges back with `pwrite64`.

use alloc::string::String;
use alloc::vec::Vec;

use ihk_abi::offload::{FdInfo, OffloadCall};

use super::offload;
use super::Thread;
use crate::errno::*;
use ihk_abi::linux::sys;
use crate::mm::filemap::{Orphan, Writeback};
use crate::mm::phys;

const F_DUPFD_CLOEXEC: u64 = 1030;
const SEEK_END: u64 = 2;
/// Duplicates for shared mappings are placed at or above this number, out
/// of the way of the program's own lowest-free-number allocations.
const DUP_MIN_FD: u64 = 512;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;

fn res(r: i64) -> Result<u64, Errno> {
    if r < 0 {
        Err(Errno((-r) as i32))
    } else {
        Ok(r as u64)
    }
}

/// `fstat` + `F_GETFL` + path of host descriptor `fd`.
pub fn describe(t: &Thread, fd: u64) -> Result<(FdInfo, String), Errno> {
    let size = phys::PAGE * 2;
    let pa = phys::alloc(size, phys::PAGE).ok_or(ENOMEM)?;
    let r = offload::call(t, OffloadCall::FdInfo as u64, [fd, pa, size, 0, 0, 0]);
    let out = res(r).map(|_| {
        // SAFETY: our buffer; the proxy wrote an FdInfo then `path_len`
        // bytes (cut to the buffer).
        let info: FdInfo = unsafe { core::ptr::read_unaligned(phys::to_virt(pa) as *const FdInfo) };
        let head = core::mem::size_of::<FdInfo>();
        let n = (info.path_len as usize).min(size as usize - head);
        let mut path = alloc::vec![0u8; n];
        // SAFETY: as above.
        unsafe { core::ptr::copy_nonoverlapping(phys::to_virt(pa).add(head), path.as_mut_ptr(), n) };
        (info, String::from_utf8_lossy(&path).into_owned())
    });
    phys::free(pa, size);
    out
}

/// Our own duplicate of the program's descriptor `fd` (close-on-exec).
pub fn dup(t: &Thread, fd: u64) -> Result<i32, Errno> {
    res(offload::call(t, sys::SYS_fcntl, [fd, F_DUPFD_CLOEXEC, DUP_MIN_FD, 0, 0, 0])).map(|v| v as i32)
}

/// Write `pieces` back to their files (bytes past the end of the file are
/// not written, as Linux does not extend a file through a mapping).
pub fn write_back(t: &Thread, pieces: &[Writeback], sync: bool) -> Result<(), Errno> {
    let mut first_err = None;
    for w in pieces {
        let r = (|| {
            let size = res(offload::call(t, sys::SYS_lseek, [w.fd as u64, 0, SEEK_END, 0, 0, 0]))?;
            let len = w.len.min(size.saturating_sub(w.off));
            let mut done = 0;
            while done < len {
                let n = res(offload::call(t, sys::SYS_pwrite64, [w.fd as u64, w.va + done, len - done, w.off + done, 0, 0]))?;
                if n == 0 {
                    return Err(EIO);
                }
                done += n;
            }
            if sync {
                res(offload::call(t, sys::SYS_fdatasync, [w.fd as u64, 0, 0, 0, 0, 0]))?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Write back the shared ranges inside `[start, end)`.
pub fn write_back_range(t: &Thread, start: u64, end: u64, sync: bool) -> Result<(), Errno> {
    let pieces = t.process.aspace.lock().files.shared_in(start, end);
    write_back(t, &pieces, sync)
}

/// Close the host duplicates no mapping uses any more.
pub fn close_orphans(t: &Thread) {
    let fds: Vec<Orphan> = t.process.aspace.lock().files.take_orphans();
    for o in fds {
        let nr = if o.kept { OffloadCall::DropFile as u64 } else { sys::SYS_close };
        offload::call(t, nr, [o.fd as u64, 0, 0, 0, 0, 0]);
    }
}

/// Have the proxy keep the first `size` bytes of `fd`'s file for filling
/// private mappings of it on demand (`OffloadCall::KeepFile`): the handle.
pub fn keep(t: &Thread, fd: u64, size: u64) -> Result<i32, Errno> {
    res(offload::call(t, OffloadCall::KeepFile as u64, [fd, size, 0, 0, 0, 0])).map(|v| v as i32)
}

/// The process ends: every shared mapping goes back to its file.
pub fn write_back_all(t: &Thread) {
    let _ = write_back_range(t, 0, u64::MAX, false);
    t.process.aspace.lock().files.clear();
    close_orphans(t);
}

/// Name the segments of an ELF image loaded from host fd `fd`: `ranges`
/// are (start, end, file offset of start) (`/proc/self/maps`).
pub fn note_image(t: &Thread, fd: i32, ranges: &[(u64, u64, u64)]) {
    let Ok((info, path)) = describe(t, fd as u64) else { return };
    let mut a = t.process.aspace.lock();
    for &(start, end, off) in ranges {
        let m = crate::mm::filemap::FileMap { end, off, dev: info.dev, ino: info.ino, path: path.clone(), shared: false, shared_fd: None, kept_file: None, size: 0, mtime_ns: 0 };
        a.files.insert(start, m);
    }
}
