//! execve: replace the process's program. The file is opened on Linux by
//! the proxy (`OffloadCall::OpenExec`, which checks it is an executable
//! regular file), its headers checked, the interpreter of a dynamic program
//! opened the same way; only then is the old program dropped (the point of
//! no return: from here a failure kills the process, as on Linux). The
//! address space starts empty, handled signals go back to their default,
//! the alternate stack and TLS are cleared, close-on-exec descriptors are
//! closed on Linux, and the new program is loaded like the first one.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

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
const PATH_MAX: usize = 4096;
const SEEK_END: u64 = 2;

/// A NUL-terminated string at user address `va` (without the NUL).
fn read_cstr(t: &Thread, va: u64, max: usize) -> Result<Vec<u8>, Errno> {
    let a = t.process.aspace.lock();
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

/// Open `path` for execution through the proxy; returns (fd, size).
fn open_exec(t: &Thread, path: &[u8]) -> Result<(i32, u64), Errno> {
    let size = (path.len() as u64).div_ceil(phys::PAGE).max(1) * phys::PAGE;
    let pa = phys::alloc(size, phys::PAGE).ok_or(ENOMEM)?;
    // SAFETY: our fresh buffer holds `path`.
    unsafe { core::ptr::copy_nonoverlapping(path.as_ptr(), phys::to_virt(pa), path.len()) };
    let fd = offload::call(t, OffloadCall::OpenExec as u64, [pa, path.len() as u64, 0, 0, 0, 0]);
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

/// execve(path, argv, envp). Returns only on failure before the point of
/// no return.
pub fn execve(t: &Thread, path_va: u64, argv_va: u64, envp_va: u64) -> SysResult {
    let path = read_cstr(t, path_va, PATH_MAX)?;
    if path.is_empty() {
        return Err(ENOENT);
    }
    let mut total = path.len() + 1;
    let argv = read_strv(t, argv_va, &mut total)?;
    let envp = read_strv(t, envp_va, &mut total)?;
    let exe = open_exec(t, &path)?;
    let close = |fd: i32| offload::call(t, sys::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
    let interp = match elf::interp_path(t, exe.0, exe.1) {
        Ok(None) => None,
        Ok(Some(ip)) => match open_exec(t, &ip) {
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
