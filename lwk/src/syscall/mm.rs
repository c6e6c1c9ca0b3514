//! Memory system calls, local (ARCHITECTURE.md §6): brk, mmap (anonymous;
//! private file mappings filled from the file on first touch; shared file mappings and
//! shared anonymous memory as share windows, `process/share.rs`), munmap,
//! mprotect, mremap, madvise, msync (offloaded for the share windows in its
//! range), and the calls McKernel answers without doing anything (mlock
//! family, memory policies).

use super::errno::*;
use ihk_abi::linux::sys;
use super::{args, current, offload};
use crate::process::{filemap_io, share};
use crate::mm::window;
use crate::arch::x86_64::idt::TrapFrame;
use crate::mm::aspace::{align_up, VmaKind};
use crate::mm::filemap::FileMap;
use crate::mm::pagetable::Perm;
use crate::mm::phys::PAGE;

const MAP_SHARED: u64 = 0x1;
const MAP_PRIVATE: u64 = 0x2;
const MAP_SHARED_VALIDATE: u64 = 0x3;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_POPULATE: u64 = 0x8000;
const MAP_HUGETLB: u64 = 0x40000;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const PROT_MASK: u64 = 0x7;

pub fn brk(f: &mut TrapFrame) -> SysResult {
    let t = current();
    let r = t.process.aspace.lock().set_brk(f.rdi);
    Ok(r)
}

pub fn mmap(f: &mut TrapFrame) -> SysResult {
    let [addr, len, prot, flags, fd, off] = args(f);
    if len == 0 || off % PAGE != 0 {
        return Err(EINVAL);
    }
    if len > u64::MAX - PAGE {
        return Err(ENOMEM);
    }
    let len = align_up(len, PAGE);
    let kind = flags & 0x3;
    if kind != MAP_SHARED && kind != MAP_PRIVATE && kind != MAP_SHARED_VALIDATE {
        return Err(EINVAL);
    }
    let anon = flags & MAP_ANONYMOUS != 0;
    let perm = Perm::from_prot(prot & PROT_MASK);
    let t = current();
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 && addr % PAGE != 0 {
        return Err(EINVAL);
    }
    // A file mapping: what the descriptor is, and whether the mapping
    // writes back (process/filemap_io.rs).
    let file = if anon { None } else { Some(filemap_io::describe(t, fd)?) };
    // MAP_HUGETLB of a file needs a hugetlbfs file, which the host's pages
    // behind a window are not: EINVAL as Linux (callers fall back to small
    // pages; anonymous MAP_HUGETLB is ordinary LWK memory, large pages anyway).
    if file.is_some() && flags & MAP_HUGETLB != 0 {
        return Err(EINVAL);
    }
    let mut shared_fd = None;
    if let Some((info, _)) = &file {
        let acc = info.status_flags & 3;
        if acc == 1 {
            return Err(EACCES); // O_WRONLY
        }
        if kind != MAP_PRIVATE {
            if info.mode & filemap_io::S_IFMT != filemap_io::S_IFREG {
                return Err(ENODEV);
            }
            if acc == 0 && perm.write {
                return Err(EACCES);
            }
        }
    }
    if kind != MAP_PRIVATE && window::available() {
        if let Some(start) = map_shared(t, addr, len, perm, flags, fd, off, file.as_ref())? {
            return Ok(start);
        }
        // Does not fit a window (MAP_FIXED into a 2 MiB block that holds
        // other mappings, or nothing of the file to share): a private copy
        // written back on msync/munmap, as without windows.
    }
    if let Some((info, path)) = &file {
        if kind == MAP_PRIVATE && info.mode & filemap_io::S_IFMT == filemap_io::S_IFREG {
            if let Some(start) = map_private_file(t, addr, len, perm, flags, fd, off, info, path)? {
                return Ok(start);
            }
            // The proxy could not keep the file: a copy, as before.
        }
    }
    if let Some((info, _)) = &file {
        if kind != MAP_PRIVATE && info.status_flags & 3 == 2 && perm.write {
            // Written back from this mapping (read-only shared mappings are
            // never written back, so they cannot overwrite others' changes
            // to the file).
            shared_fd = Some(filemap_io::dup(t, fd)?);
        }
    }
    if flags & MAP_FIXED != 0 {
        // Shared file bytes being replaced go back to their file first.
        let _ = filemap_io::write_back_range(t, addr, addr.saturating_add(len), false);
    }
    let placed = (|| {
        let mut a = t.process.aspace.lock();
        let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            if flags & MAP_FIXED != 0 {
                a.unmap(addr, len)?;
            }
            addr
        } else {
            a.find_free(len, addr).ok_or(ENOMEM)?
        };
        if file.is_some() {
            // Populated readable to be filled; PROT_NONE is applied after.
            let fill = if perm.is_none() { Perm { read: true, write: false, exec: false } } else { perm };
            a.map_new(start, len, fill, VmaKind::Anon, false)?;
        } else {
            // Anonymous MAP_NORESERVE memory is backed on first touch.
            let lazy = flags & MAP_NORESERVE != 0 && flags & MAP_POPULATE == 0;
            a.map_new(start, len, perm, VmaKind::Anon, lazy)?;
        }
        Ok(start)
    })();
    let start = match placed {
        Ok(s) => s,
        Err(e) => {
            if let Some(d) = shared_fd {
                offload::call(t, sys::SYS_close, [d as u64, 0, 0, 0, 0, 0]);
            }
            filemap_io::close_orphans(t);
            return Err(e);
        }
    };
    if let Some((info, path)) = file {
        // Fill from the file: the proxy preads into the mapping through the
        // mirror; bytes past the end of the file stay zero.
        let want = if info.mode & filemap_io::S_IFMT == filemap_io::S_IFREG { len.min(info.size.saturating_sub(off)) } else { len };
        let mut done = 0u64;
        while done < want {
            let r = offload::call(t, sys::SYS_pread64, [fd, start + done, want - done, off + done, 0, 0]);
            if r < 0 {
                let _ = t.process.aspace.lock().unmap(start, len);
                if let Some(d) = shared_fd {
                    offload::call(t, sys::SYS_close, [d as u64, 0, 0, 0, 0, 0]);
                }
                filemap_io::close_orphans(t);
                return Err(Errno((-r) as i32));
            }
            if r == 0 {
                break;
            }
            done += r as u64;
        }
        let mut a = t.process.aspace.lock();
        if perm.is_none() {
            a.protect(start, len, perm)?;
        }
        let fm = FileMap { end: start + len, off, dev: info.dev, ino: info.ino, path, shared: kind != MAP_PRIVATE, shared_fd, kept_file: None, size: 0, mtime_ns: 0 };
        a.files.insert(start, fm);
    }
    filemap_io::close_orphans(t);
    Ok(start)
}

/// mmap of a private mapping of a regular file, filled on demand
/// (docs/memory.md): a VMA backed on first touch, whose pages the address
/// space reads from the file through the proxy's kept mapping of it (one per
/// file, size and process). `Ok(None)`: the proxy could not keep it (the
/// caller copies the file range now instead).
#[allow(clippy::too_many_arguments)]
fn map_private_file(
    t: &crate::process::Thread,
    addr: u64,
    len: u64,
    perm: Perm,
    flags: u64,
    fd: u64,
    off: u64,
    info: &ihk_abi::offload::FdInfo,
    path: &str,
) -> Result<Option<u64>, Errno> {
    if flags & MAP_FIXED != 0 {
        // Shared file bytes being replaced go back to their file first.
        let _ = filemap_io::write_back_range(t, addr, addr.saturating_add(len), false);
    }
    let placed = {
        let mut a = t.process.aspace.lock();
        let kept = match a.files.kept_file_for(info.dev, info.ino, info.size) {
            Some(k) => k,
            None => match filemap_io::keep(t, fd, info.size) {
                Ok(k) => k,
                Err(_) => return Ok(None),
            },
        };
        let r = (|| {
            let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
                if flags & MAP_FIXED != 0 {
                    a.unmap(addr, len)?;
                }
                addr
            } else {
                a.find_free(len, addr).ok_or(ENOMEM)?
            };
            a.map_new(start, len, perm, VmaKind::Anon, true)?;
            let fm = FileMap {
                end: start + len,
                off,
                dev: info.dev,
                ino: info.ino,
                path: path.into(),
                shared: false,
                shared_fd: None,
                kept_file: Some(kept),
                size: info.size,
                mtime_ns: info.mtime_ns,
            };
            a.files.insert(start, fm);
            let filled = a.fill_backed(start, start + len).and_then(|_| {
                if flags & MAP_POPULATE != 0 && !perm.is_none() {
                    a.fault_in(start, len)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = filled {
                let _ = a.unmap(start, len);
                return Err(e);
            }
            Ok(start)
        })();
        if r.is_err() {
            a.files.release_kept(kept);
        }
        r
    };
    filemap_io::close_orphans(t);
    placed.map(Some)
}

/// mmap of a share window (`MAP_SHARED` of a regular file or memfd at
/// file offset `off`, or `MAP_SHARED|MAP_ANONYMOUS`). `Ok(None)`: the
/// mapping cannot be a window (see the caller).
#[allow(clippy::too_many_arguments)]
fn map_shared(
    t: &crate::process::Thread,
    addr: u64,
    len: u64,
    perm: Perm,
    flags: u64,
    fd: u64,
    off: u64,
    file: Option<&(ihk_abi::offload::FdInfo, alloc::string::String)>,
) -> Result<Option<u64>, Errno> {
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    // Checked before asking the host, so a refusal changes nothing.
    if fixed && !t.process.aspace.lock().share_fits_replacing(addr, len) {
        return Ok(None);
    }
    let (sh, covered, fm) = match file {
        Some((info, path)) => {
            // Only whole pages of the file: past its end is SIGBUS on Linux
            // and a fault here.
            let in_file = align_up(info.size, PAGE).saturating_sub(off);
            let covered = len.min(in_file);
            if covered == 0 {
                return Ok(None);
            }
            let writable = info.status_flags & 3 == 2;
            let sh = share::file(t, fd, info.dev, info.ino, off, covered, writable)?;
            let fm = FileMap { end: 0, off, dev: info.dev, ino: info.ino, path: path.clone(), shared: true, shared_fd: None, kept_file: None, size: 0, mtime_ns: 0 };
            (sh, covered, fm)
        }
        None => {
            let sh = share::anon(t, len)?;
            let fm = FileMap { end: 0, off: 0, dev: 0, ino: 0, path: "/dev/zero (deleted)".into(), shared: true, shared_fd: None, kept_file: None, size: 0, mtime_ns: 0 };
            (sh, len, fm)
        }
    };
    if flags & MAP_FIXED != 0 {
        // Shared file bytes being replaced go back to their file first.
        let _ = filemap_io::write_back_range(t, addr, addr.saturating_add(len), false);
    }
    let placed = (|| {
        let mut a = t.process.aspace.lock();
        let start = if fixed {
            if flags & MAP_FIXED != 0 {
                a.unmap(addr, len)?;
            }
            addr
        } else {
            a.find_free_share(len, addr).ok_or(ENOMEM)?
        };
        // map_share takes the window reference over (an error before it
        // drops `sh`, which gives the reference back).
        a.map_share(start, len, covered, perm, sh)?;
        a.files.insert(start, FileMap { end: start + len, ..fm });
        Ok(start)
    })();
    filemap_io::close_orphans(t);
    placed.map(Some)
}

/// Device number of SysV segments in /proc/self/maps (Linux's shm mount).
const SYSV_SHM_DEV: u64 = 1;

/// shmat(shmid, shmaddr, shmflg): the segment as a share window.
pub fn shmat(f: &mut TrapFrame) -> SysResult {
    let [shmid, addr, shmflg, ..] = args(f);
    const SHM_RDONLY: u64 = 0o10000;
    const SHM_RND: u64 = 0o20000;
    const SHM_REMAP: u64 = 0o40000;
    const SHM_EXEC: u64 = 0o100000;
    if (shmid as i64) < 0 || shmid > i32::MAX as u64 {
        return Err(EINVAL);
    }
    let addr = if shmflg & SHM_RND != 0 { addr & !(PAGE - 1) } else { addr };
    if addr % PAGE != 0 || (shmflg & SHM_REMAP != 0 && addr == 0) {
        return Err(EINVAL);
    }
    if !window::available() {
        return Err(ENOSYS);
    }
    let t = current();
    let writable = shmflg & SHM_RDONLY == 0;
    let (sh, size) = share::sysv(t, shmid, shmflg, writable)?;
    let len = align_up(size.max(1), PAGE);
    let perm = Perm { read: true, write: writable, exec: shmflg & SHM_EXEC != 0 };
    let placed = (|| {
        let mut a = t.process.aspace.lock();
        let start = if addr != 0 {
            if shmflg & SHM_REMAP != 0 {
                a.unmap(addr, len)?;
            }
            if !a.share_fits(addr, len) {
                return Err(EINVAL);
            }
            addr
        } else {
            a.find_free_share(len, 0).ok_or(ENOMEM)?
        };
        a.map_share(start, len, len, perm, sh)?;
        let path = alloc::format!("/SYSV{:08x} (deleted)", shmid);
        a.files.insert(start, FileMap { end: start + len, off: 0, dev: SYSV_SHM_DEV, ino: shmid, path, shared: true, shared_fd: None, kept_file: None, size: 0, mtime_ns: 0 });
        Ok(start)
    })();
    placed
}

/// shmdt(shmaddr): the whole segment attached at `shmaddr`.
pub fn shmdt(f: &mut TrapFrame) -> SysResult {
    let addr = f.rdi;
    let t = current();
    let mut a = t.process.aspace.lock();
    let end = match a.files.at(addr) {
        Some((s, m)) if s == addr && m.dev == SYSV_SHM_DEV && m.path.starts_with("/SYSV") => m.end,
        _ => return Err(EINVAL),
    };
    a.unmap(addr, end - addr)?;
    Ok(0)
}

pub fn munmap(f: &mut TrapFrame) -> SysResult {
    let [addr, len, ..] = args(f);
    if addr % PAGE != 0 || len == 0 {
        return Err(EINVAL);
    }
    let t = current();
    let _ = filemap_io::write_back_range(t, addr, addr.saturating_add(len), false);
    t.process.aspace.lock().unmap(addr, len)?;
    filemap_io::close_orphans(t);
    Ok(0)
}

pub fn mprotect(f: &mut TrapFrame) -> SysResult {
    let [addr, len, prot, ..] = args(f);
    if addr % PAGE != 0 || prot & !(PROT_MASK | 0x0100_0000 | 0x0200_0000) != 0 {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    current().process.aspace.lock().protect(addr, len, Perm::from_prot(prot & PROT_MASK))?;
    Ok(0)
}

pub fn mremap(f: &mut TrapFrame) -> SysResult {
    let [old, old_len, new_len, flags, new_addr, ..] = args(f);
    const MREMAP_MAYMOVE: u64 = 1;
    const MREMAP_FIXED: u64 = 2;
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 {
        // MREMAP_DONTUNMAP is not supported (docs/compat.md).
        return Err(EINVAL);
    }
    let t = current();
    let fixed = (flags & MREMAP_FIXED != 0).then_some(new_addr);
    if let Some(dst) = fixed {
        // What the move replaces is unmapped as by munmap.
        let _ = filemap_io::write_back_range(t, dst, dst.saturating_add(new_len), false);
    }
    let r = t.process.aspace.lock().remap(old, old_len, new_len, flags & MREMAP_MAYMOVE != 0, fixed);
    if fixed.is_some() {
        filemap_io::close_orphans(t);
    }
    r
}

pub fn msync(f: &mut TrapFrame) -> SysResult {
    let [addr, len, flags, ..] = args(f);
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    if addr % PAGE != 0 || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 || flags & (MS_ASYNC | MS_SYNC) == (MS_ASYNC | MS_SYNC) {
        return Err(EINVAL);
    }
    let len = align_up(len, PAGE);
    let t = current();
    {
        let a = t.process.aspace.lock();
        let mut cur = addr;
        while cur < addr.saturating_add(len) {
            cur = a.vma_at(cur).ok_or(ENOMEM)?.1.end;
        }
    }
    filemap_io::write_back_range(t, addr, addr + len, flags & MS_SYNC != 0)?;
    // Share windows are the file's own pages: the proxy's msync of its
    // mirror (the same file mapping) flushes them.
    if t.process.aspace.lock().has_share_in(addr, addr + len) {
        let r = offload::call(t, sys::SYS_msync, [addr, len, flags, 0, 0, 0]);
        if r < 0 {
            return Err(Errno((-r) as i32));
        }
    }
    Ok(0)
}

pub fn mincore(f: &mut TrapFrame) -> SysResult {
    let [addr, len, vec, ..] = args(f);
    if addr % PAGE != 0 {
        return Err(EINVAL);
    }
    let pages = align_up(len, PAGE) / PAGE;
    let t = current();
    let mut a = t.process.aspace.lock();
    if !a.range_mapped(addr, pages * PAGE) {
        return Err(ENOMEM);
    }
    let ones = alloc::vec![1u8; pages as usize];
    a.write(vec, &ones)?;
    Ok(0)
}

pub fn madvise(f: &mut TrapFrame) -> SysResult {
    let [addr, len, advice, ..] = args(f);
    const MADV_DONTNEED: u64 = 4;
    const MADV_REMOVE: u64 = 9;
    const MADV_HWPOISON: u64 = 100;
    const MADV_MERGEABLE: u64 = 12;
    const MADV_UNMERGEABLE: u64 = 13;
    if addr % PAGE != 0 {
        return Err(EINVAL);
    }
    match advice {
        MADV_HWPOISON => return Err(EPERM),
        MADV_MERGEABLE | MADV_UNMERGEABLE | MADV_REMOVE => return Err(EINVAL),
        _ => {}
    }
    let len = align_up(len, PAGE);
    let t = current();
    let mut a = t.process.aspace.lock();
    if !a.range_mapped(addr, len) {
        return Err(ENOMEM);
    }
    if advice == MADV_DONTNEED {
        // Private anonymous memory reads back as zeroes afterwards (a
        // shared file granule gets a private copy first).
        a.unshare_range(addr, addr + len)?;
        let zero = [0u8; PAGE as usize];
        let mut v = addr;
        while v < addr + len {
            let _ = a.write_force(v, &zero);
            v += PAGE;
        }
    }
    Ok(0)
}

/// mlock, munlock, munlockall, mlock2: memory is never swapped. mlockall
/// is refused as in McKernel.
pub fn mlock_family(f: &mut TrapFrame) -> SysResult {
    if f.vector == 151 {
        return Err(EPERM);
    }
    Ok(0)
}

/// mbind, set_mempolicy: accepted, not used (McKernel limitation 12);
/// get_mempolicy reports MPOL_DEFAULT.
pub fn mempolicy(f: &mut TrapFrame) -> SysResult {
    if f.vector == 239 && f.rdi != 0 {
        current().process.aspace.lock().write_u32(f.rdi, 0)?;
    }
    Ok(0)
}

/// membarrier: no command is supported (QUERY reports none).
pub fn membarrier(f: &mut TrapFrame) -> SysResult {
    if f.rdi == 0 {
        Ok(0)
    } else {
        Err(EINVAL)
    }
}
