//! Executing one offloaded call on Linux, with its raw arguments.
//!
//! Pointer arguments are valid as they are: they point into the mirrored
//! user range (see `mirror.rs`). The routing table decides what is
//! offloaded, and this module asks the same table ([`is_refused`]): a call
//! the LWK handles or refuses never runs here, even if it arrived. What is
//! left to this module is mcexec's own file descriptors (`fdargs`: to the
//! program they are closed and unlisted) and signals to itself.

use std::sync::Arc;

use ihk_abi::linux::sys;
use ihk_abi::linux::errno::{self, EBADF, EFAULT, EINVAL, ENOSYS, EPERM};
use ihk_abi::linux::Route;
use ihk_abi::linux;
use ihk_abi::offload::OffloadCall;

use crate::guest::GuestMemory;

mod capset;
mod fdargs;

/// Whether mcexec must not execute system call `number`: the routing table
/// (`lwk/src/syscall/table.rs`, read through [`linux::route`]) has the LWK
/// handle or refuse it (running it here would change mcexec's own memory
/// map, signals, threads or process image), or it is no system call at all
/// (1024 and up; the protocol calls are recognized before this is asked).
pub fn is_refused(number: u64) -> bool {
    number >= 1024 || matches!(linux::route(number), Route::Local | Route::Refused(_))
}

/// Execute system call `number` in the calling thread.
///
/// # Safety
/// The caller vouches for the arguments as the LWK program passed them: any
/// pointer must point into the mirrored user range (which Rust code never
/// references), and `number` must not be one of [`is_refused`].
#[inline]
pub unsafe fn raw_syscall(number: u64, a: [u64; 6]) -> i64 {
    let ret: i64;
    core::arch::asm!(
        "syscall",
        inlateout("rax") number as i64 => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
        in("r10") a[3], in("r8") a[4], in("r9") a[5],
        lateout("rcx") _, lateout("r11") _,
        options(nostack),
    );
    ret
}

/// What executes offloaded calls for one process.
pub struct Executor {
    guest: Arc<GuestMemory>,
    /// The argument blob of the start parameters.
    args_blob: Vec<u8>,
    /// mcexec's own descriptors, hidden from the program's close/dup2.
    reserved_fds: Vec<i32>,
    host_pid: i32,
}

impl Executor {
    pub fn new(guest: Arc<GuestMemory>, args_blob: Vec<u8>, reserved_fds: Vec<i32>) -> Executor {
        Executor { guest, args_blob, reserved_fds, host_pid: std::process::id() as i32 }
    }

    /// Is `fd` one of mcexec's own descriptors? All of them are at
    /// `reserved_fd_base()` or above (`session::dup_high`), so the
    /// program's usual ones are answered without a lock.
    fn reserved(&self, fd: u64) -> bool {
        let fd = fd as i32;
        fd >= crate::session::reserved_fd_base()
            && (self.reserved_fds.contains(&fd) || crate::share::owns(fd) || crate::sigfd::owns(fd))
    }

    /// Execute one request; returns the value for the LWK (negative errno on
    /// error). `ThreadStart`/`ThreadExit` are handled by the proxy loop.
    pub fn execute(&self, number: u64, a: [u64; 6]) -> i64 {
        if let Some(call) = OffloadCall::from_u64(number) {
            return self.protocol_call(call, a);
        }
        if is_refused(number) {
            return ENOSYS.neg();
        }
        // mcexec's own descriptors are not the program's: to its calls
        // they are closed descriptors.
        if fdargs::fd_operands(number, &a).into_iter().flatten().any(|fd| self.reserved(fd)) {
            return EBADF.neg();
        }
        match number {
            sys::SYS_close_range => return self.close_range(a),
            // SAFETY: the buffer points into the mirror (the caller's contract).
            sys::SYS_getdents64 => return unsafe { fdargs::getdents64(a, |fd| self.reserved(fd as u64)) },
            // Signals to ourselves alone would reach mcexec, not the program:
            // the LWK handles those locally; refuse if one slips through. A
            // signal to our process group (kill(0, sig), kill(-pgid, sig))
            // reaches mcexec too, which forwards it to the program
            // (FORWARDED_SIGNALS), and the group's other members as on Linux.
            sys::SYS_kill | sys::SYS_tgkill if a[0] as i32 == self.host_pid => return EPERM.neg(),
            sys::SYS_prctl if matches!(a[0], 22 /* PR_SET_SECCOMP */ | 35 /* PR_SET_MM */) => return EINVAL.neg(),
            sys::SYS_capset => return capset::capset(a, self.host_pid),
            _ => {}
        }
        // SAFETY: not refused; pointer arguments point into the mirror.
        unsafe { raw_syscall(number, a) }
    }

    /// close_range(first, last, flags) that skips our descriptors.
    fn close_range(&self, a: [u64; 6]) -> i64 {
        let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2]);
        if first > last {
            return EINVAL.neg();
        }
        let mut cuts: Vec<u32> = self
            .reserved_fds
            .iter()
            .copied()
            .chain(crate::share::fds())
            .chain(crate::sigfd::fds())
            .map(|f| f as u32)
            .filter(|f| (first..=last).contains(f))
            .collect();
        cuts.sort_unstable();
        let mut lo = first;
        for c in cuts {
            if c > lo {
                // SAFETY: close_range on descriptors that are the program's.
                let r = unsafe { raw_syscall(sys::SYS_close_range, [lo as u64, (c - 1) as u64, flags, 0, 0, 0]) };
                if r < 0 {
                    return r;
                }
            }
            lo = c.saturating_add(1);
            if c == u32::MAX {
                return 0;
            }
        }
        if lo <= last {
            // SAFETY: as above.
            return unsafe { raw_syscall(sys::SYS_close_range, [lo as u64, last as u64, flags, 0, 0, 0]) };
        }
        0
    }

    fn protocol_call(&self, call: OffloadCall, a: [u64; 6]) -> i64 {
        match call {
            OffloadCall::GetArgs => {
                let (gpa, len) = (a[0], a[1] as usize);
                let n = len.min(self.args_blob.len());
                match self.guest.write(gpa, &self.args_blob[..n]) {
                    Ok(()) => n as i64,
                    Err(_) => EFAULT.neg(),
                }
            }
            OffloadCall::PreadPhys => {
                let (fd, gpa, len, off) = (a[0] as i32, a[1], a[2], a[3]);
                let Ok(p) = self.guest.ptr(gpa, len) else { return EFAULT.neg() };
                // SAFETY: `p..p+len` is inside the guest window; the LWK
                // does not touch the destination until the call returns.
                unsafe { raw_syscall(sys::SYS_pread64, [fd as u64, p as u64, len, off, 0, 0]) }
            }
            OffloadCall::ZeroPhys => {
                let (gpa, len) = (a[0], a[1]);
                // One region at a time (a range may span two).
                let Ok(pieces) = self.guest.split(gpa, len) else { return EFAULT.neg() };
                for (g, l) in pieces {
                    let Ok(p) = self.guest.ptr(g, l) else { return EFAULT.neg() };
                    // SAFETY: inside the guest window; the LWK hands us
                    // memory it has not mapped for anyone yet.
                    unsafe { std::ptr::write_bytes(p, 0, l as usize) };
                }
                0
            }
            OffloadCall::CopyPhys => {
                let (dst, src, len) = (a[0], a[1], a[2]);
                match (self.guest.ptr(dst, len), self.guest.ptr(src, len)) {
                    (Ok(d), Ok(s)) => {
                        // SAFETY: both ranges are inside the guest window;
                        // the LWK keeps them (a parent waiting in fork and
                        // its child's new memory) unchanged meanwhile.
                        unsafe { std::ptr::copy(s, d, len as usize) };
                        0
                    }
                    _ => EFAULT.neg(),
                }
            }
            OffloadCall::OpenExec => {
                let (gpa, len, dirfd, flags) = (a[0], a[1], a[2] as i32, a[3]);
                if dirfd >= 0 && self.reserved(dirfd as u64) {
                    return EBADF.neg();
                }
                let Ok(p) = self.guest.ptr(gpa, len) else { return EFAULT.neg() };
                // SAFETY: `len` bytes in the guest window, stable during the call.
                let path = unsafe { std::slice::from_raw_parts(p, len as usize) }.to_vec();
                open_exec(&path, dirfd, flags)
            }
            OffloadCall::CloseOnExec => {
                close_on_exec(|fd| self.reserved(fd as u64));
                0
            }
            OffloadCall::OpenPhys | OffloadCall::MemfdPhys | OffloadCall::HostCpuinfo | OffloadCall::FdInfo => {
                self.view_call(call, a)
            }
            OffloadCall::ShareFile => crate::share::share_file(a),
            OffloadCall::ShareAnon => crate::share::share_anon(a),
            OffloadCall::SysvAttach => crate::share::sysv_attach(a),
            OffloadCall::ShareSysv => crate::share::share_sysv(a),
            OffloadCall::SignalfdSet => crate::sigfd::set(a),
            OffloadCall::SignalfdSync => {
                crate::sigfd::sync(a[0]);
                0
            }
            OffloadCall::KeepFile => crate::filekeep::keep(a[0] as i32, a[1]),
            OffloadCall::DropFile => crate::filekeep::drop_kept(a[0] as i64),
            OffloadCall::ReadKept => {
                let (h, gpa, len, off) = (a[0] as i64, a[1], a[2], a[3]);
                let Ok(p) = self.guest.ptr(gpa, len) else { return EFAULT.neg() };
                crate::filekeep::read(h, p, len, off)
            }
            OffloadCall::ThreadStart | OffloadCall::ThreadExit | OffloadCall::Fork | OffloadCall::UtiRun => EINVAL.neg(),
        }
    }

    /// `len` bytes of guest memory at `gpa`, copied.
    fn guest_bytes(&self, gpa: u64, len: u64) -> Option<Vec<u8>> {
        if len > 64 << 20 {
            return None;
        }
        let p = self.guest.ptr(gpa, len).ok()?;
        // SAFETY: `len` bytes inside the guest window, which the LWK keeps
        // unchanged while the call is in progress.
        Some(unsafe { std::slice::from_raw_parts(p, len as usize) }.to_vec())
    }

    /// The calls of the LWK's /proc and /sys view (`lwkfs`).
    fn view_call(&self, call: OffloadCall, a: [u64; 6]) -> i64 {
        use crate::lwkfs;
        match call {
            OffloadCall::OpenPhys => match self.guest_bytes(a[0], a[1]) {
                Some(path) => lwkfs::open_path(&path, a[2] as i32, a[3] as u32),
                None => EFAULT.neg(),
            },
            OffloadCall::MemfdPhys => match self.guest_bytes(a[0], a[1]) {
                Some(data) => lwkfs::memfd_with(&data, a[2] as i32),
                None => EFAULT.neg(),
            },
            OffloadCall::HostCpuinfo => match self.guest_bytes(a[0], a[1].saturating_mul(4)) {
                Some(raw) => {
                    let cpus: Vec<u32> = raw.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
                    lwkfs::host_cpuinfo(&cpus, a[2] as i32)
                }
                None => EFAULT.neg(),
            },
            OffloadCall::FdInfo => {
                // Describing (not using) a descriptor: mcexec's own program
                // file is allowed too (the LWK's /proc/self/exe).
                match lwkfs::fd_info(a[0] as i32) {
                    Ok((info, path)) => {
                        let head = std::mem::size_of::<ihk_abi::offload::FdInfo>();
                        let cap = a[2] as usize;
                        if cap < head {
                            return EINVAL.neg();
                        }
                        let n = path.len().min(cap - head);
                        let mut out = Vec::with_capacity(head + n);
                        // SAFETY: FdInfo is repr(C) plain data without padding holes.
                        out.extend_from_slice(unsafe {
                            std::slice::from_raw_parts(&info as *const _ as *const u8, head)
                        });
                        out.extend_from_slice(&path[..n]);
                        match self.guest.write(a[1], &out) {
                            Ok(()) => 0,
                            Err(_) => EFAULT.neg(),
                        }
                    }
                    Err(e) => e,
                }
            }
            _ => EINVAL.neg(),
        }
    }
}

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EMPTY_PATH: u64 = 0x1000;

/// Open `path` for execve and execveat: relative to `dirfd` (AT_FDCWD:
/// the working directory), the file `dirfd` names itself with an empty
/// path and AT_EMPTY_PATH, not through a final symbolic link with
/// AT_SYMLINK_NOFOLLOW (ELOOP, as Linux). It must be a regular file the
/// caller may execute.
fn open_exec(path: &[u8], dirfd: i32, flags: u64) -> i64 {
    let errno = || -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as i64);
    let fd = if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return errno::ENOENT.neg();
        }
        // The file behind the descriptor (also one opened O_PATH); the
        // working directory for AT_FDCWD (EACCES: a directory).
        let name = if dirfd == libc::AT_FDCWD { ".".to_string() } else { format!("/proc/self/fd/{dirfd}") };
        let Ok(c) = std::ffi::CString::new(name) else { return EBADF.neg() };
        // SAFETY: a NUL-terminated path; the descriptor is ours until returned.
        unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
    } else {
        let Ok(c) = std::ffi::CString::new(path) else { return errno::ENOENT.neg() };
        let nofollow = if flags & AT_SYMLINK_NOFOLLOW != 0 { libc::O_NOFOLLOW } else { 0 };
        // SAFETY: as above.
        unsafe { libc::openat(dirfd, c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | nofollow) }
    };
    if fd < 0 {
        let e = errno();
        // An empty path's descriptor that is not open: EBADF, as Linux.
        return if path.is_empty() && e == errno::ENOENT.neg() { EBADF.neg() } else { e };
    }
    // SAFETY: fstat and faccessat2 on our fresh descriptor into a local.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            libc::close(fd);
            return errno::EACCES.neg();
        }
        let x = libc::syscall(
            libc::SYS_faccessat2,
            fd,
            c"".as_ptr(),
            libc::X_OK,
            libc::AT_EMPTY_PATH | libc::AT_EACCESS,
        );
        if x != 0 {
            let e = errno();
            libc::close(fd);
            return e;
        }
    }
    fd as i64
}

/// Close every descriptor marked close-on-exec, except mcexec's own.
fn close_on_exec(reserved: impl Fn(i32) -> bool) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds {
        if reserved(fd) {
            continue;
        }
        // SAFETY: querying and closing descriptors of the program (the
        // directory's own descriptor is gone by now: F_GETFD fails on it).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
                libc::close(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_syscalls_return_negative_errno() {
        // getppid
        let r = unsafe { raw_syscall(sys::SYS_getppid, [0; 6]) };
        assert_eq!(r, nix::unistd::getppid().as_raw() as i64);
        // close(-1) -> -EBADF
        let r = unsafe { raw_syscall(sys::SYS_close, [u64::MAX, 0, 0, 0, 0, 0]) };
        assert_eq!(r, EBADF.neg());
    }

    #[test]
    fn dangerous_calls_are_refused() {
        for n in [sys::SYS_mmap, sys::SYS_execve, sys::SYS_exit_group, sys::SYS_rt_sigaction, sys::SYS_clone, sys::SYS_arch_prctl, sys::SYS_rseq, 5000] {
            assert!(is_refused(n), "{n}");
        }
        for n in [0u64, 1, 2, 257, 72, 16] {
            assert!(!is_refused(n), "{n}");
        }
    }

    /// Everything mcexec refused by its own list before the routing table
    /// became the one list: still never executed here. Since threads, the
    /// LWK answers rt_sigqueueinfo (129), rt_tgsigqueueinfo (297), tkill
    /// (200) and sched_setaffinity (203) for its own processes and threads
    /// and offloads them for other pids (LocalOrOffload): they are not in
    /// this list any more.
    #[test]
    fn the_former_refusal_list_is_still_refused() {
        let former = [
            9, 10, 11, 12, 25, 28, 30, 67, 216, 149, 150, 151, 152, 325, 237, 238, 239, 256, 279, 329,
            330, 331, 323, 440, 453, 425, 13, 14, 15, 127, 128, 130, 131, 56, 435, 57, 58, 59, 322, 60,
            231, 272, 308, 101, 317, 158, 218, 273, 274, 334, 202, 449, 1024,
        ];
        for n in [129, 297, 200, 203] {
            assert!(!is_refused(n), "{n} ({:?})", ihk_abi::linux::sys::name(n));
        }
        for n in former {
            assert!(is_refused(n), "{n} ({:?})", ihk_abi::linux::sys::name(n));
        }
    }
}
