//! open, openat, readlink, readlinkat, getdents64: paths in the LWK's
//! /proc and /sys view (`lwkfs`) are answered from the LWK, and listings
//! of the view's directories are rewritten by it; every other path, and
//! every relative path, is offloaded unchanged. `write` to a thread's
//! `comm` file of the view renames the thread; other writes are offloaded.

use alloc::vec::Vec;

use ihk_abi::offload::OffloadCall;

use super::errno::*;
use super::{args, current, offload};
use crate::process::filemap_io;
use crate::arch::x86_64::idt::TrapFrame;
use crate::lwkfs::{self, dirents, DirKind, View};
use crate::mm::phys;
use crate::process::{Thread, ViewDir};
use ihk_abi::linux::sys;

const AT_FDCWD: u64 = -100i64 as u64;
const O_ACCMODE: u64 = 3;
const O_CLOEXEC: u64 = 0o2000000;
const PATH_MAX: usize = 4096;
const SEEK_SET: u64 = 0;
/// Most view-directory descriptors a process keeps track of.
const MAX_VIEW_DIRS: usize = 64;

/// The NUL-terminated path at user address `va`, if it could be in the
/// view (reading stops early for other paths).
fn view_path(t: &Thread, va: u64) -> Result<Option<Vec<u8>>, Errno> {
    let mut a = t.process.aspace.lock();
    let mut out = Vec::new();
    let mut cur = va;
    loop {
        let chunk = (phys::PAGE - cur % phys::PAGE) as usize;
        let mut buf = alloc::vec![0u8; chunk.min(PATH_MAX + 1 - out.len())];
        a.read(cur, &mut buf)?;
        let nul = buf.iter().position(|&b| b == 0);
        out.extend_from_slice(&buf[..nul.unwrap_or(buf.len())]);
        if out.len() >= 5 && !lwkfs::may_be_viewed(&out) {
            return Ok(None);
        }
        if nul.is_some() {
            return Ok(lwkfs::may_be_viewed(&out).then_some(out));
        }
        if out.len() > PATH_MAX {
            return Ok(None); // Linux reports ENAMETOOLONG
        }
        cur += buf.len() as u64;
    }
}

/// Run `call` with `data` copied to a kernel buffer the proxy can read.
fn with_phys(t: &Thread, call: OffloadCall, data: &[u8], a2: u64, a3: u64) -> SysResult {
    let size = (data.len() as u64).div_ceil(phys::PAGE).max(1) * phys::PAGE;
    let pa = phys::alloc(size, phys::PAGE).ok_or(ENOMEM)?;
    // SAFETY: our fresh buffer of `size` >= data.len() bytes.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), phys::to_virt(pa), data.len()) };
    let r = offload::call(t, call as u64, [pa, data.len() as u64, a2, a3, 0, 0]);
    phys::free(pa, size);
    if r < 0 {
        Err(Errno((-r) as i32))
    } else {
        Ok(r as u64)
    }
}

fn open_view(f: &mut TrapFrame, dirfd: u64, path_va: u64, flags: u64, mode: u64) -> SysResult {
    // Only absolute paths can be in the view, and those ignore dirfd.
    let _ = dirfd;
    let t = current();
    let Some(path) = view_path(t, path_va)? else { return offload::syscall(f) };
    match lwkfs::lookup(t, &path) {
        View::Linux => offload::syscall(f),
        View::Missing => Err(ENOENT),
        View::Dir(kind) => {
            let fd = offload::syscall(f)?;
            note_view_dir(t, fd, kind);
            Ok(fd)
        }
        View::Redirect(p) => with_phys(t, OffloadCall::OpenPhys, p.as_bytes(), flags, mode),
        View::Content(data) => {
            if flags & O_ACCMODE != 0 {
                return Err(EACCES);
            }
            with_phys(t, OffloadCall::MemfdPhys, &data, flags & O_CLOEXEC, 0)
        }
        View::Comm(tid) => {
            let target = t.process.thread(tid).ok_or(ENOENT)?;
            let mut name = crate::process::thread::name_of(&target).into_bytes();
            name.push(b'\n');
            let fd = with_phys(t, OffloadCall::MemfdPhys, &name, flags & O_CLOEXEC, 0)?;
            if flags & O_ACCMODE != 0 {
                note_view_file(t, fd, crate::process::VIEW_COMM, tid);
            }
            Ok(fd)
        }
        View::Cpuinfo(cpus) => {
            if flags & O_ACCMODE != 0 {
                return Err(EACCES);
            }
            let raw: Vec<u8> = cpus.iter().flat_map(|c| c.to_le_bytes()).collect();
            let size = (raw.len() as u64).div_ceil(phys::PAGE).max(1) * phys::PAGE;
            let pa = phys::alloc(size, phys::PAGE).ok_or(ENOMEM)?;
            // SAFETY: our fresh buffer.
            unsafe { core::ptr::copy_nonoverlapping(raw.as_ptr(), phys::to_virt(pa), raw.len()) };
            let r = offload::call(t, OffloadCall::HostCpuinfo as u64, [pa, cpus.len() as u64, flags & O_CLOEXEC, 0, 0, 0]);
            phys::free(pa, size);
            if r < 0 {
                Err(Errno((-r) as i32))
            } else {
                Ok(r as u64)
            }
        }
    }
}

pub fn open(f: &mut TrapFrame) -> SysResult {
    let [path, flags, mode, ..] = args(f);
    open_view(f, AT_FDCWD, path, flags, mode)
}

pub fn openat(f: &mut TrapFrame) -> SysResult {
    let [dirfd, path, flags, mode, ..] = args(f);
    open_view(f, dirfd, path, flags, mode)
}

/// readlink of `/proc/self/exe`: the program's file.
fn readlink_view(f: &mut TrapFrame, path_va: u64, buf: u64, size: u64) -> SysResult {
    let t = current();
    let Some(path) = view_path(t, path_va)? else { return offload::syscall(f) };
    let by_pid = alloc::format!("/proc/{}/exe", t.process.pid);
    let exe = [b"/proc/self/exe".as_slice(), by_pid.as_bytes()];
    if !exe.contains(&path.as_slice()) {
        return offload::syscall(f);
    }
    if size as i64 <= 0 {
        return Err(EINVAL);
    }
    let name = crate::process::exec::exe_path(t)?;
    let n = name.len().min(size as usize);
    t.process.aspace.lock().write(buf, &name.as_bytes()[..n])?;
    Ok(n as u64)
}

pub fn readlink(f: &mut TrapFrame) -> SysResult {
    let [path, buf, size, ..] = args(f);
    readlink_view(f, path, buf, size)
}

pub fn readlinkat(f: &mut TrapFrame) -> SysResult {
    let [_dirfd, path, buf, size, ..] = args(f);
    readlink_view(f, path, buf, size)
}

/// Remember that descriptor `fd` lists a directory of the view.
fn note_view_dir(t: &Thread, fd: u64, kind: DirKind) {
    note_view_file(t, fd, kind as u8, 0);
}

/// Remember what descriptor `fd` is in the view (`ViewDir`).
fn note_view_file(t: &Thread, fd: u64, kind: u8, tid: u32) {
    // Without its identity it cannot be told from a later file: Linux's.
    let Ok((info, _)) = filemap_io::describe(t, fd) else { return };
    let p = &t.process;
    let mut dirs = p.view_dirs.lock();
    dirs.retain(|d| d.fd != fd as i32);
    if dirs.len() >= MAX_VIEW_DIRS {
        dirs.remove(0);
    }
    dirs.push(ViewDir { fd: fd as i32, kind, dev: info.dev, ino: info.ino, tid });
    let writers = dirs.iter().filter(|d| d.kind == crate::process::VIEW_COMM).count();
    p.view_writers.store(writers as u32, core::sync::atomic::Ordering::Relaxed);
}

/// What the view knows of descriptor `fd`, if it still is the file it
/// was opened on.
fn view_file(t: &Thread, fd: u64) -> Option<ViewDir> {
    let d = t.process.view_dirs.lock().iter().find(|d| d.fd == fd as i32).copied()?;
    match filemap_io::describe(t, fd) {
        Ok((info, _)) if info.dev == d.dev && info.ino == d.ino => Some(d),
        _ => {
            let p = &t.process;
            let mut dirs = p.view_dirs.lock();
            dirs.retain(|x| *x != d);
            let writers = dirs.iter().filter(|d| d.kind == crate::process::VIEW_COMM).count();
            p.view_writers.store(writers as u32, core::sync::atomic::Ordering::Relaxed);
            None
        }
    }
}

/// The view's kind of directory `fd` lists, if it still is the directory
/// it was opened on.
fn view_dir(t: &Thread, fd: u64) -> Option<DirKind> {
    view_file(t, fd).and_then(|d| DirKind::from_u8(d.kind))
}

/// write(fd, buf, count): to a thread's `comm` file of the view, renames
/// the thread (as Linux: the first 15 bytes, the count returned); any
/// other descriptor is offloaded (one counter read when no such file is
/// open).
pub fn write(f: &mut TrapFrame) -> SysResult {
    let [fd, buf, count, ..] = args(f);
    let t = current();
    if t.process.view_writers.load(core::sync::atomic::Ordering::Relaxed) == 0 {
        return offload::syscall(f);
    }
    let Some(d) = view_file(t, fd).filter(|d| d.kind == crate::process::VIEW_COMM) else {
        return offload::syscall(f);
    };
    let mut b = [0u8; 15];
    let n = (count as usize).min(b.len());
    t.process.aspace.lock().read(buf, &mut b[..n])?;
    match t.process.thread(d.tid) {
        Some(target) => crate::process::thread::set_name(&target, &b[..n]),
        None => return Err(ESRCH),
    }
    Ok(count)
}

/// getdents64(fd, buf, count): Linux's listing, rewritten for a directory
/// of the view (`lwkfs::dir_entry`).
pub fn getdents64(f: &mut TrapFrame) -> SysResult {
    let [fd, buf, count, ..] = args(f);
    let t = current();
    let Some(kind) = view_dir(t, fd) else { return offload::syscall(f) };
    loop {
        let n = offload::syscall(f)?;
        if n == 0 {
            return Ok(0);
        }
        let mut raw = alloc::vec![0u8; n as usize];
        t.process.aspace.lock().read(buf, &mut raw)?;
        let r = dirents::rewrite(&raw, count as usize, |name| lwkfs::dir_entry(t, kind, name))?;
        if let Some(off) = r.resume {
            // Records that did not fit are read again by the next call.
            let s = offload::call(t, sys::SYS_lseek, [fd, off as u64, SEEK_SET, 0, 0, 0]);
            if s < 0 {
                return Err(Errno((-s) as i32));
            }
        }
        if !r.out.is_empty() {
            t.process.aspace.lock().write(buf, &r.out)?;
            return Ok(r.out.len() as u64);
        }
        // Every record was left out: read on.
    }
}
