//! Loading a program: ELF64 x86-64 ET_EXEC (at its link address) and
//! ET_DYN (static-pie at [`PIE_BASE`]; a program with PT_INTERP gets its
//! interpreter loaded at [`INTERP_BASE`] and started there, as Linux does).
//!
//! The file stays on Linux: headers are read into kernel memory with the
//! `PreadPhys` offload call, and each segment's bytes are read by the proxy
//! straight into the segment's user memory with an offloaded `pread64`
//! (through the mirror), so loading copies nothing in the LWK.

mod header;
mod layout;
mod stack;
mod vdso;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use ihk_abi::offload::{OffloadCall, INTERP_BASE, PIE_BASE, STACK_TOP};

use crate::arch::x86_64::idt::TrapFrame;
use crate::mm::aspace::{align_down, align_up, VmaKind};
use crate::mm::pagetable::Perm;
use crate::mm::phys;
use crate::process::Thread;
use crate::errno::*;
use ihk_abi::linux::sys;
use crate::process::offload;
use header::*;


/// Where an image ended up.
pub struct Loaded {
    pub entry: u64,
    /// Address of the program headers in user memory.
    pub phdr: u64,
    pub phnum: u64,
    /// Load bias (0 for ET_EXEC).
    pub bias: u64,
    /// First byte after the highest segment.
    pub end: u64,
}

/// Read `len` bytes at `off` of host fd `fd` into a kernel buffer.
fn read_host(t: &Thread, fd: i32, off: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let size = align_up(len.max(1) as u64, phys::PAGE);
    let pa = phys::alloc(size, phys::PAGE).ok_or(ENOMEM)?;
    let r = offload::call(t, OffloadCall::PreadPhys as u64, [fd as u64, pa, len as u64, off, 0, 0]);
    let out = if r == len as i64 {
        let mut v = vec![0u8; len];
        // SAFETY: the buffer is ours and the proxy filled `len` bytes.
        unsafe { core::ptr::copy_nonoverlapping(phys::to_virt(pa), v.as_mut_ptr(), len) };
        Ok(v)
    } else if r < 0 {
        Err(Errno((-r) as i32))
    } else {
        Err(ENOEXEC) // short file
    };
    phys::free(pa, size);
    out
}

/// Parse and check the ELF header and program headers of host fd `fd`.
fn headers(t: &Thread, fd: i32, size: u64) -> Result<(u16, u64, u64, Vec<Phdr>), Errno> {
    if size < 64 {
        return Err(ENOEXEC);
    }
    let eh = read_host(t, fd, 0, 64)?;
    let h = header::parse_ehdr(&eh, size)?;
    let raw = read_host(t, fd, h.phoff, (h.phnum * 56) as usize)?;
    Ok((h.ty, h.entry, h.phoff, header::parse_phdrs(&raw)))
}

fn perm_of(flags: u32) -> Perm {
    Perm { read: flags & PF_R != 0, write: flags & PF_W != 0, exec: flags & PF_X != 0 }
}

/// Map and read the PT_LOAD segments of `fd` with load bias `bias`.
fn load_segments(t: &Thread, fd: i32, size: u64, ty: u16, entry: u64, phoff: u64, ph: &[Phdr], base: u64) -> Result<Loaded, Errno> {
    let loads: Vec<&Phdr> = ph.iter().filter(|p| p.p_type == PT_LOAD && p.memsz > 0).collect();
    if loads.is_empty() {
        return Err(ENOEXEC);
    }
    let lo = loads.iter().map(|p| align_down(p.vaddr, phys::PAGE)).min().unwrap();
    let bias = if ty == ET_DYN { base - lo } else { 0 };
    let mut prev_end = 0u64;
    let mut end = 0u64;
    let mut named: Vec<(u64, u64, u64)> = Vec::new();
    for p in &loads {
        if p.filesz > p.memsz || p.offset.checked_add(p.filesz).is_none_or(|e| e > size) || p.offset % phys::PAGE != p.vaddr % phys::PAGE {
            return Err(ENOEXEC);
        }
        let va = p.vaddr.checked_add(bias).ok_or(ENOEXEC)?;
        let seg_end = va.checked_add(p.memsz).ok_or(ENOEXEC)?;
        let mut start = align_down(va, phys::PAGE);
        let stop = align_up(seg_end, phys::PAGE);
        let perm = perm_of(p.flags);
        if start < prev_end {
            // Shares a page with the previous segment: that page takes the
            // union of both permissions.
            let mut a = t.process.aspace.lock();
            if let Some((_, v)) = a.vma_at(start) {
                let union = Perm { read: v.perm.read || perm.read, write: v.perm.write || perm.write, exec: v.perm.exec || perm.exec };
                a.protect(start, prev_end - start, union)?;
            }
            start = prev_end;
        }
        if start < stop {
            // The proxy writes the bytes through the mirror, which is
            // writable whatever the segment's permissions.
            t.process.aspace.lock().map_new(start, stop - start, perm, VmaKind::Image, false)?;
        }
        if p.filesz > 0 {
            let mut done = 0;
            while done < p.filesz {
                let r = offload::call(
                    t,
                    sys::SYS_pread64,
                    [fd as u64, va + done, p.filesz - done, p.offset + done, 0, 0],
                );
                if r <= 0 {
                    return Err(if r < 0 { Errno((-r) as i32) } else { ENOEXEC });
                }
                done += r as u64;
            }
        }
        named.push((align_down(va, phys::PAGE), stop, align_down(p.offset, phys::PAGE)));
        prev_end = prev_end.max(stop);
        end = end.max(seg_end);
    }
    crate::process::filemap_io::note_image(t, fd, &named);
    // The program headers in memory: PT_PHDR, else inside the first segment
    // that covers them in the file.
    let phdr = match ph.iter().find(|p| p.p_type == PT_PHDR) {
        Some(p) => p.vaddr + bias,
        None => loads
            .iter()
            .find(|p| p.offset <= phoff && phoff + ph.len() as u64 * 56 <= p.offset + p.filesz)
            .map(|p| p.vaddr + (phoff - p.offset) + bias)
            .unwrap_or(0),
    };
    Ok(Loaded { entry: entry + bias, phdr, phnum: ph.len() as u64, bias, end })
}

/// A program to load: the executable and its interpreter (host fds and
/// sizes), and its argument blob (`execfn\0 argv.. envp..`).
pub struct Image {
    pub exe: (i32, u64),
    pub interp: Option<(i32, u64)>,
    pub blob: Vec<u8>,
    pub argc: usize,
    pub envc: usize,
}

/// Load the process's first program (from its start parameters) and build
/// its initial stack; returns the frame to enter user mode with.
pub fn exec(t: &Thread) -> Result<TrapFrame, Errno> {
    let sp = t.process.start;
    let blob = read_args(t, sp.args_len as usize)?;
    let interp = (sp.interp_fd >= 0).then_some((sp.interp_fd, sp.interp_size));
    load(t, &Image { exe: (sp.exe_fd, sp.exe_size), interp, blob, argc: sp.argc as usize, envc: sp.envc as usize })
}

/// Map `img` into the (empty) address space of `t`'s process and build the
/// initial stack; returns the frame to enter user mode with.
pub fn load(t: &Thread, img: &Image) -> Result<TrapFrame, Errno> {
    let p = &t.process;
    let sp = p.start;
    let (exe_fd, exe_size) = img.exe;
    let (ty, entry, phoff, ph) = headers(t, exe_fd, exe_size)?;
    let has_interp = ph.iter().any(|h| h.p_type == PT_INTERP);
    if has_interp && img.interp.is_none() {
        return Err(ENOEXEC);
    }
    let prog = load_segments(t, exe_fd, exe_size, ty, entry, phoff, &ph, PIE_BASE)?;
    let interp = match (has_interp, img.interp) {
        (true, Some((fd, size))) => {
            let (ity, ientry, iphoff, iph) = headers(t, fd, size)?;
            if ity != ET_DYN || iph.iter().any(|h| h.p_type == PT_INTERP) {
                return Err(ENOEXEC);
            }
            Some(load_segments(t, fd, size, ity, ientry, iphoff, &iph, INTERP_BASE)?)
        }
        _ => None,
    };
    {
        let mut a = p.aspace.lock();
        a.init_brk(align_up(prog.end, phys::PAGE), sp.heap_extension);
        a.init_stack(STACK_TOP, sp.stack_premap, sp.stack_max)?;
    }
    let vdso = vdso::map(t)?;
    let execfn_len = img.blob.iter().position(|&b| b == 0).ok_or(EINVAL)?;
    let name = String::from_utf8_lossy(&img.blob[..execfn_len]);
    let base_name = name.rsplit('/').next().unwrap_or(&name);
    *p.comm.lock() = base_name.chars().take(15).collect();
    let user_sp = stack::build(t, &img.blob, img.argc, img.envc, &prog, interp.as_ref(), vdso)?;
    let start_ip = interp.as_ref().map_or(prog.entry, |i| i.entry);
    Ok(crate::process::trap::initial_frame(start_ip, user_sp))
}

/// The first bytes of host fd `fd` (a file of `size` bytes) that execve
/// looks at to tell its format: ENOEXEC for an empty file.
pub fn head(t: &Thread, fd: i32, size: u64) -> Result<Vec<u8>, Errno> {
    if size == 0 {
        return Err(ENOEXEC);
    }
    read_host(t, fd, 0, size.min(ihk_abi::linux::script::BUF_SIZE as u64) as usize)
}

/// The PT_INTERP path of the executable at host fd `fd`, if any.
pub fn interp_path(t: &Thread, fd: i32, size: u64) -> Result<Option<Vec<u8>>, Errno> {
    let (_, _, _, ph) = headers(t, fd, size)?;
    let Some(h) = ph.iter().find(|h| h.p_type == PT_INTERP) else { return Ok(None) };
    if h.filesz == 0 || h.filesz > 4096 || h.offset.checked_add(h.filesz).is_none_or(|e| e > size) {
        return Err(ENOEXEC);
    }
    let mut path = read_host(t, fd, h.offset, h.filesz as usize)?;
    while path.last() == Some(&0) {
        path.pop();
    }
    Ok(Some(path))
}

/// Fetch the argument blob from mcexec.
fn read_args(t: &Thread, len: usize) -> Result<Vec<u8>, Errno> {
    // Linux's limit for argv+envp is a quarter of the stack limit; keep a
    // generous fixed ceiling here.
    if len == 0 || len > 32 << 20 {
        return Err(if len == 0 { EINVAL } else { E2BIG });
    }
    let size = align_up(len as u64, phys::PAGE);
    let pa = phys::alloc(size, phys::PAGE).ok_or(ENOMEM)?;
    let r = offload::call(t, OffloadCall::GetArgs as u64, [pa, len as u64, 0, 0, 0, 0]);
    let out = if r == len as i64 {
        let mut v = vec![0u8; len];
        // SAFETY: our buffer, filled by the proxy.
        unsafe { core::ptr::copy_nonoverlapping(phys::to_virt(pa), v.as_mut_ptr(), len) };
        Ok(v)
    } else {
        Err(if r < 0 { Errno((-r) as i32) } else { EIO })
    };
    phys::free(pa, size);
    out
}
