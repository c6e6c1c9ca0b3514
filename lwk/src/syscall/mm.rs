//! Memory system calls, all local (ARCHITECTURE.md §6): brk, mmap (anonymous,
//! and private file mappings read through the proxy), munmap, mprotect,
//! mremap, madvise, and the calls McKernel answers without doing anything
//! (mlock family, memory policies).

use super::errno::*;
use ihk_abi::linux::sys;
use super::{args, current, offload};
use crate::process::filemap_io;
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
            if acc == 2 && perm.write {
                // Written back from this mapping (read-only shared mappings
                // are never written back, so they cannot overwrite others'
                // changes to the file).
                shared_fd = Some(filemap_io::dup(t, fd)?);
            }
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
        let fm = FileMap { end: start + len, off, dev: info.dev, ino: info.ino, path, shared: kind != MAP_PRIVATE, shared_fd };
        a.files.insert(start, fm);
    }
    filemap_io::close_orphans(t);
    Ok(start)
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
    let [old, old_len, new_len, flags, ..] = args(f);
    const MREMAP_MAYMOVE: u64 = 1;
    if flags & !MREMAP_MAYMOVE != 0 {
        // MREMAP_FIXED / MREMAP_DONTUNMAP are not supported.
        return Err(EINVAL);
    }
    current().process.aspace.lock().remap(old, old_len, new_len, flags & MREMAP_MAYMOVE != 0)
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
    Ok(0)
}

pub fn mincore(f: &mut TrapFrame) -> SysResult {
    let [addr, len, vec, ..] = args(f);
    if addr % PAGE != 0 {
        return Err(EINVAL);
    }
    let pages = align_up(len, PAGE) / PAGE;
    let t = current();
    let a = t.process.aspace.lock();
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
    let a = t.process.aspace.lock();
    if !a.range_mapped(addr, len) {
        return Err(ENOMEM);
    }
    if advice == MADV_DONTNEED {
        // Private anonymous memory reads back as zeroes afterwards.
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
