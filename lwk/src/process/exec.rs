//! execve and execveat: replace the process's program. The file is opened
//! on Linux by the proxy (`OffloadCall::OpenExec`, which checks it is an
//! executable regular file); a `#!` script is replaced by its interpreter
//! as Linux does (`ihk_abi::linux::script`: the interpreter, its optional
//! argument and the script's path go before the remaining arguments, up to
//! Linux's number of rewrites, then ELOOP); a file that is neither ELF nor
//! script is ENOEXEC. The ELF's headers are checked and the interpreter of
//! a dynamic program opened the same way; only then is the old program
//! dropped (the point of no return: from here a failure kills the process,
//! as on Linux). The address space starts empty, handled signals go back
//! to their default, the alternate stack and TLS are cleared,
//! close-on-exec descriptors are closed on Linux, and the new program is
//! loaded like the first one. The process remembers the new program's
//! path for `/proc/self/exe` ([`exe_path`]).

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use alloc::string::String;
use ihk_abi::linux::script;
use ihk_abi::offload::OffloadCall;

use super::{service, Thread};
use crate::mm::phys;
use crate::elf::{self, Image};
use crate::errno::*;
use ihk_abi::linux::sys;
use super::offload;

/// Most bytes of argv + envp strings (Linux: a quarter of the stack limit,
/// at most 6 MiB with the default 8 MiB... keep a fixed generous cap).
const MAX_ARGS_BYTES: usize = 2 << 20;
pub const PATH_MAX: usize = 4096;
const SEEK_END: u64 = 2;
pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
pub const AT_EMPTY_PATH: u64 = 0x1000;
const F_GETFD: u64 = 1;
const FD_CLOEXEC: i64 = 1;

/// A NUL-terminated string at user address `va` (without the NUL).
pub fn read_cstr(t: &Thread, va: u64, max: usize) -> Result<Vec<u8>, Errno> {
    let mut a = t.process.aspace.lock();
    let mut out = Vec::new();
    let mut cur = va;
    loop {
        let chunk = (phys::PAGE - cur % phys::PAGE) as usize;
        let mut buf = alloc::vec![0u8; chunk];
        a.read(cur, &mut buf)?;
        if let Some(n) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..n]);
            return Ok(out);
        }
        out.extend_from_slice(&buf);
        if out.len() > max {
            return Err(ENAMETOOLONG);
        }
        cur += chunk as u64;
    }
}

/// The strings of a NULL-terminated pointer array at `va` (0: none).
fn read_strv(t: &Thread, va: u64, total: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
    let mut v = Vec::new();
    if va == 0 {
        return Ok(v);
    }
    for i in 0.. {
        let ptr = t.process.aspace.lock().read_u64(va + i * 8)?;
        if ptr == 0 {
            break;
        }
        let s = read_cstr(t, ptr, MAX_ARGS_BYTES)?;
        *total += s.len() + 1;
        if *total > MAX_ARGS_BYTES {
            return Err(E2BIG);
        }
        v.push(s);
    }
    Ok(v)
}

/// Open `path` (relative to `dirfd`, with execveat's `flags`) for
/// execution through the proxy; returns (fd, size).
fn open_exec(t: &Thread, dirfd: i32, path: &[u8], flags: u64) -> Result<(i32, u64), Errno> {
    let size = (path.len() as u64).div_ceil(phys::PAGE).max(1) * phys::PAGE;
    let pa = phys::alloc(size, phys::PAGE).ok_or(ENOMEM)?;
    // SAFETY: our fresh buffer holds `path`.
    unsafe { core::ptr::copy_nonoverlapping(path.as_ptr(), phys::to_virt(pa), path.len()) };
    let fd = offload::call(
        t,
        OffloadCall::OpenExec as u64,
        [pa, path.len() as u64, dirfd as i64 as u64, flags, 0, 0],
    );
    phys::free(pa, size);
    if fd < 0 {
        return Err(Errno((-fd) as i32));
    }
    let end = offload::call(t, sys::SYS_lseek, [fd as u64, 0, SEEK_END, 0, 0, 0]);
    if end < 0 {
        offload::call(t, sys::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
        return Err(Errno((-end) as i32));
    }
    Ok((fd as i32, end as u64))
}

/// What execveat was asked to run: `path` relative to `dirfd` with
/// `flags` (execve: AT_FDCWD, 0). `open` replaces the path to open when
/// the LWK's view names another file there (`/proc/self/exe`); the
/// program still sees `path` (AT_EXECFN, a script's argument).
pub struct Target {
    pub dirfd: i32,
    pub path: Vec<u8>,
    pub flags: u64,
    pub open: Option<Vec<u8>>,
}

/// The name Linux gives the file being executed (`bprm->filename`): the
/// path itself, or `/dev/fd/N[/path]` for a path relative to a descriptor.
fn filename(dirfd: i32, path: &[u8]) -> Vec<u8> {
    if dirfd == AT_FDCWD || path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let mut name = alloc::format!("/dev/fd/{dirfd}").into_bytes();
    if !path.is_empty() {
        name.push(b'/');
        name.extend_from_slice(path);
    }
    name
}

/// Close host descriptor `fd` of ours.
fn close(t: &Thread, fd: i32) {
    offload::call(t, sys::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
}

/// Open what `target` names, going through `#!` interpreters: the ELF
/// executable (fd, size) and the arguments it gets.
fn open_program(t: &Thread, target: &Target, mut argv: Vec<Vec<u8>>) -> Result<((i32, u64), Vec<Vec<u8>>), Errno> {
    let mut name = filename(target.dirfd, &target.path);
    // Linux: a script reached through a close-on-exec descriptor cannot be
    // reopened by its interpreter by name.
    let unreachable = name != target.path && {
        let r = offload::call(t, sys::SYS_fcntl, [target.dirfd as i64 as u64, F_GETFD, 0, 0, 0, 0]);
        r >= 0 && r & FD_CLOEXEC != 0
    };
    let mut exe = match &target.open {
        Some(p) => open_exec(t, AT_FDCWD, p, 0)?,
        None => open_exec(t, target.dirfd, &target.path, target.flags)?,
    };
    let mut rewrites = 0;
    loop {
        let head = match crate::elf::head(t, exe.0, exe.1) {
            Ok(h) => h,
            Err(e) => {
                close(t, exe.0);
                return Err(e);
            }
        };
        if !script::is_script(&head) {
            return Ok((exe, argv));
        }
        close(t, exe.0);
        if unreachable && rewrites == 0 {
            return Err(ENOENT);
        }
        let line = script::parse(&head)?;
        rewrites = script::next_rewrite(rewrites)?;
        let interp = line.interp.to_vec();
        let mut next = alloc::vec![interp.clone()];
        next.extend(line.arg.map(|a| a.to_vec()));
        next.push(core::mem::replace(&mut name, interp));
        next.extend(argv.drain(..).skip(1));
        argv = next;
        exe = open_exec(t, AT_FDCWD, &name, 0)?;
    }
}

/// execveat(dirfd, path, argv, envp, flags) (execve: AT_FDCWD, 0), the
/// path already read and checked by the caller. Returns only on failure
/// before the point of no return.
pub fn execve(t: &Thread, target: Target, argv_va: u64, envp_va: u64) -> SysResult {
    if target.flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    if target.path.is_empty() && target.flags & AT_EMPTY_PATH == 0 {
        return Err(ENOENT);
    }
    let mut total = target.path.len() + 1;
    let mut argv = read_strv(t, argv_va, &mut total)?;
    let envp = read_strv(t, envp_va, &mut total)?;
    // Linux (5.18 on) gives a program started without arguments an empty
    // argv[0].
    if argv.is_empty() {
        argv.push(Vec::new());
    }
    let (exe, argv) = open_program(t, &target, argv)?;
    let total = filename(target.dirfd, &target.path).len()
        + 1
        + argv.iter().chain(envp.iter()).map(|s| s.len() + 1).sum::<usize>();
    if total > MAX_ARGS_BYTES {
        close(t, exe.0);
        return Err(E2BIG);
    }
    let close = |fd: i32| close(t, fd);
    let interp = match crate::elf::interp_path(t, exe.0, exe.1) {
        Ok(None) => None,
        Ok(Some(ip)) => match open_exec(t, AT_FDCWD, &ip, 0) {
            Ok(i) => Some(i),
            Err(e) => {
                close(exe.0);
                return Err(e);
            }
        },
        Err(e) => {
            close(exe.0);
            return Err(e);
        }
    };
    // The new program's path, for /proc/self/exe.
    let exe_name = match super::filemap_io::describe(t, exe.0 as u64) {
        Ok((_, name)) => name,
        Err(e) => {
            close(exe.0);
            if let Some(i) = interp {
                close(i.0);
            }
            return Err(e);
        }
    };
    let path = filename(target.dirfd, &target.path);
    let mut blob = Vec::with_capacity(total);
    for s in core::iter::once(&path).chain(argv.iter()).chain(envp.iter()) {
        blob.extend_from_slice(s);
        blob.push(0);
    }
    let img = Image { exe, interp, blob, argc: argv.len(), envc: envp.len() };

    // The point of no return: the other threads end first (their robust
    // futexes and clear-tid words are handled as at any thread exit).
    let p = &t.process;
    if !super::thread::end_other_threads(t) {
        return Err(EINTR);
    }
    // Linux's de_thread: the caller takes over the thread-group id as its
    // tid (its proxy thread and slot stay its own).
    if t.tid() != p.pid {
        t.tid.store(p.pid, Ordering::Relaxed);
        p.thread_slot(t.slot).tid.store(p.pid, Ordering::Relaxed);
    }
    *p.exe_path.lock() = Some(exe_name);
    super::ptimer::exec(p);
    t.robust_list.store(0, Ordering::Relaxed);
    // Shared file mappings reach their files before the memory goes.
    super::filemap_io::write_back_all(t);
    p.aspace.lock().reset();
    {
        let mut st = p.signals.lock();
        for a in st.actions.iter_mut() {
            if a.handler != super::signal::SIG_IGN {
                *a = super::signal::SigAction::default();
            }
        }
    }
    *t.altstack.lock() = (0, 0, 2 /* SS_DISABLE */);
    t.clear_child_tid.store(0, Ordering::Relaxed);
    t.fs_base.store(0, Ordering::Relaxed);
    crate::arch::x86_64::wrmsr(0xc000_0100, 0);
    t.fpu.reset();
    t.fpu.restore();
    match elf::load(t, &img) {
        Ok(frame) => {
            // Our own descriptors of the files were opened close-on-exec too.
            offload::call(t, OffloadCall::CloseOnExec as u64, [0; 6]);
            super::trap::enter_with_frame(t, frame)
        }
        Err(e) => {
            crate::printk!(
                "{}[{}]: execve failed after the point of no return ({:?}); ending the process",
                p.comm.lock().as_str(),
                p.pid,
                e
            );
            service::exit_process(t, 0, super::signal::SIGSEGV)
        }
    }
}

/// The path of the program the process runs (`/proc/self/exe`): the file
/// its latest execve loaded, or the one mcexec started it with.
pub fn exe_path(t: &Thread) -> Result<String, Errno> {
    if let Some(p) = t.process.exe_path.lock().clone() {
        return Ok(p);
    }
    let (_, name) = super::filemap_io::describe(t, t.process.start.exe_fd as u64)?;
    *t.process.exe_path.lock() = Some(name.clone());
    Ok(name)
}
