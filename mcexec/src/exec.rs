//! Executing one offloaded call on Linux, with its raw arguments.
//!
//! Pointer arguments are valid as they are: they point into the mirrored
//! user range (see `mirror.rs`). The LWK's table decides what is offloaded;
//! this module only refuses calls that would break `mcexec` itself if they
//! ever arrived (its memory map, its signal handling, its threads, its own
//! file descriptors), as a second line of defence.

use std::sync::Arc;

use ihk_abi::offload::OffloadCall;

use crate::guest::GuestMemory;

/// Linux x86-64 system call numbers used here.
mod nr {
    pub const CLOSE: u64 = 3;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const RT_SIGRETURN: u64 = 15;
    pub const MREMAP: u64 = 25;
    pub const MADVISE: u64 = 28;
    pub const SHMAT: u64 = 30;
    pub const DUP2: u64 = 33;
    pub const CLONE: u64 = 56;
    pub const FORK: u64 = 57;
    pub const VFORK: u64 = 58;
    pub const EXECVE: u64 = 59;
    pub const EXIT: u64 = 60;
    pub const KILL: u64 = 62;
    pub const SHMDT: u64 = 67;
    pub const PTRACE: u64 = 101;
    pub const RT_SIGPENDING: u64 = 127;
    pub const RT_SIGTIMEDWAIT: u64 = 128;
    pub const RT_SIGQUEUEINFO: u64 = 129;
    pub const RT_SIGSUSPEND: u64 = 130;
    pub const SIGALTSTACK: u64 = 131;
    pub const MLOCK: u64 = 149;
    pub const MUNLOCK: u64 = 150;
    pub const MLOCKALL: u64 = 151;
    pub const MUNLOCKALL: u64 = 152;
    pub const PRCTL: u64 = 157;
    pub const ARCH_PRCTL: u64 = 158;
    pub const TKILL: u64 = 200;
    pub const FUTEX: u64 = 202;
    pub const SCHED_SETAFFINITY: u64 = 203;
    pub const REMAP_FILE_PAGES: u64 = 216;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const EXIT_GROUP: u64 = 231;
    pub const TGKILL: u64 = 234;
    pub const MBIND: u64 = 237;
    pub const SET_MEMPOLICY: u64 = 238;
    pub const GET_MEMPOLICY: u64 = 239;
    pub const MIGRATE_PAGES: u64 = 256;
    pub const UNSHARE: u64 = 272;
    pub const SET_ROBUST_LIST: u64 = 273;
    pub const GET_ROBUST_LIST: u64 = 274;
    pub const MOVE_PAGES: u64 = 279;
    pub const DUP3: u64 = 292;
    pub const RT_TGSIGQUEUEINFO: u64 = 297;
    pub const SETNS: u64 = 308;
    pub const SECCOMP: u64 = 317;
    pub const EXECVEAT: u64 = 322;
    pub const USERFAULTFD: u64 = 323;
    pub const MLOCK2: u64 = 325;
    pub const PKEY_MPROTECT: u64 = 329;
    pub const PKEY_ALLOC: u64 = 330;
    pub const PKEY_FREE: u64 = 331;
    pub const RSEQ: u64 = 334;
    pub const IO_URING_SETUP: u64 = 425;
    pub const CLONE3: u64 = 435;
    pub const CLOSE_RANGE: u64 = 436;
    pub const PROCESS_MADVISE: u64 = 440;
    pub const FUTEX_WAITV: u64 = 449;
    pub const MAP_SHADOW_STACK: u64 = 453;
}

/// Calls that must never run in the proxy: they would change mcexec's own
/// address space, signal state, threads or process image.
pub fn is_refused(number: u64) -> bool {
    use nr::*;
    matches!(
        number,
        MMAP | MPROTECT | MUNMAP | BRK | MREMAP | MADVISE | SHMAT | SHMDT | REMAP_FILE_PAGES
            | MLOCK | MUNLOCK | MLOCKALL | MUNLOCKALL | MLOCK2 | MBIND | SET_MEMPOLICY
            | GET_MEMPOLICY | MIGRATE_PAGES | MOVE_PAGES | PKEY_MPROTECT | PKEY_ALLOC | PKEY_FREE
            | USERFAULTFD | PROCESS_MADVISE | MAP_SHADOW_STACK | IO_URING_SETUP
            | RT_SIGACTION | RT_SIGPROCMASK | RT_SIGRETURN | RT_SIGPENDING | RT_SIGTIMEDWAIT
            | RT_SIGQUEUEINFO | RT_SIGSUSPEND | SIGALTSTACK | RT_TGSIGQUEUEINFO | TKILL
            | CLONE | CLONE3 | FORK | VFORK | EXECVE | EXECVEAT | EXIT | EXIT_GROUP | UNSHARE
            | SETNS | PTRACE | SECCOMP | ARCH_PRCTL | SET_TID_ADDRESS | SET_ROBUST_LIST
            | GET_ROBUST_LIST | RSEQ | FUTEX | FUTEX_WAITV | SCHED_SETAFFINITY
    ) || number >= 1024
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

const EBADF: i64 = 9;
const ENOSYS: i64 = 38;
const EFAULT: i64 = 14;
const EINVAL: i64 = 22;
const EPERM: i64 = 1;

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

    fn reserved(&self, fd: u64) -> bool {
        self.reserved_fds.contains(&(fd as i32))
    }

    /// Execute one request; returns the value for the LWK (negative errno on
    /// error). `ThreadStart`/`ThreadExit` are handled by the proxy loop.
    pub fn execute(&self, number: u64, a: [u64; 6]) -> i64 {
        if let Some(call) = OffloadCall::from_u64(number) {
            return self.protocol_call(call, a);
        }
        if is_refused(number) {
            return -ENOSYS;
        }
        match number {
            // mcexec's own descriptors are not the program's to close.
            nr::CLOSE if self.reserved(a[0]) => return -EBADF,
            nr::DUP2 | nr::DUP3 if self.reserved(a[1]) => return -EBADF,
            nr::CLOSE_RANGE => return self.close_range(a),
            // Signals to ourselves would reach mcexec, not the program: the
            // LWK handles those locally; refuse if one slips through.
            nr::KILL | nr::TGKILL if a[0] as i32 == self.host_pid || a[0] as i32 == 0 => return -EPERM,
            nr::PRCTL if matches!(a[0], 22 /* PR_SET_SECCOMP */ | 35 /* PR_SET_MM */) => return -EINVAL,
            _ => {}
        }
        // SAFETY: not refused; pointer arguments point into the mirror.
        unsafe { raw_syscall(number, a) }
    }

    /// close_range(first, last, flags) that skips our descriptors.
    fn close_range(&self, a: [u64; 6]) -> i64 {
        let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2]);
        if first > last {
            return -EINVAL;
        }
        let mut cuts: Vec<u32> = self.reserved_fds.iter().map(|&f| f as u32).filter(|f| (first..=last).contains(f)).collect();
        cuts.sort_unstable();
        let mut lo = first;
        for c in cuts {
            if c > lo {
                // SAFETY: close_range on descriptors that are the program's.
                let r = unsafe { raw_syscall(nr::CLOSE_RANGE, [lo as u64, (c - 1) as u64, flags, 0, 0, 0]) };
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
            return unsafe { raw_syscall(nr::CLOSE_RANGE, [lo as u64, last as u64, flags, 0, 0, 0]) };
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
                    Err(_) => -EFAULT,
                }
            }
            OffloadCall::PreadPhys => {
                let (fd, gpa, len, off) = (a[0] as i32, a[1], a[2], a[3]);
                let Ok(p) = self.guest.ptr(gpa, len) else { return -EFAULT };
                // SAFETY: `p..p+len` is inside the guest window; the LWK
                // does not touch the destination until the call returns.
                unsafe { raw_syscall(17 /* pread64 */, [fd as u64, p as u64, len, off, 0, 0]) }
            }
            OffloadCall::ZeroPhys => {
                let (gpa, len) = (a[0], a[1]);
                // One region at a time (a range may span two).
                let Ok(pieces) = self.guest.split(gpa, len) else { return -EFAULT };
                for (g, l) in pieces {
                    let Ok(p) = self.guest.ptr(g, l) else { return -EFAULT };
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
                    _ => -EFAULT,
                }
            }
            OffloadCall::OpenExec => {
                let (gpa, len) = (a[0], a[1]);
                let Ok(p) = self.guest.ptr(gpa, len) else { return -EFAULT };
                // SAFETY: `len` bytes in the guest window, stable during the call.
                let path = unsafe { std::slice::from_raw_parts(p, len as usize) }.to_vec();
                open_exec(&path)
            }
            OffloadCall::CloseOnExec => {
                close_on_exec(&self.reserved_fds);
                0
            }
            OffloadCall::OpenPhys | OffloadCall::MemfdPhys | OffloadCall::HostCpuinfo | OffloadCall::FdInfo => {
                self.view_call(call, a)
            }
            OffloadCall::ThreadStart | OffloadCall::ThreadExit | OffloadCall::Fork => -EINVAL,
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
                None => -EFAULT,
            },
            OffloadCall::MemfdPhys => match self.guest_bytes(a[0], a[1]) {
                Some(data) => lwkfs::memfd_with(&data, a[2] as i32),
                None => -EFAULT,
            },
            OffloadCall::HostCpuinfo => match self.guest_bytes(a[0], a[1].saturating_mul(4)) {
                Some(raw) => {
                    let cpus: Vec<u32> = raw.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
                    lwkfs::host_cpuinfo(&cpus, a[2] as i32)
                }
                None => -EFAULT,
            },
            OffloadCall::FdInfo => {
                // Describing (not using) a descriptor: mcexec's own program
                // file is allowed too (the LWK's /proc/self/exe).
                match lwkfs::fd_info(a[0] as i32) {
                    Ok((info, path)) => {
                        let head = std::mem::size_of::<ihk_abi::offload::FdInfo>();
                        let cap = a[2] as usize;
                        if cap < head {
                            return -EINVAL;
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
                            Err(_) => -EFAULT,
                        }
                    }
                    Err(e) => e,
                }
            }
            _ => -EINVAL,
        }
    }
}

/// Open `path` for execve: a regular file with execute permission.
fn open_exec(path: &[u8]) -> i64 {
    let Ok(c) = std::ffi::CString::new(path) else { return -(libc::ENOENT as i64) };
    let errno = || -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as i64);
    // SAFETY: plain libc calls on a NUL-terminated path and local buffers.
    unsafe {
        if libc::access(c.as_ptr(), libc::X_OK) != 0 {
            return errno();
        }
        let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return errno();
        }
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            libc::close(fd);
            return -(libc::EACCES as i64);
        }
        fd as i64
    }
}

/// Close every descriptor marked close-on-exec, except mcexec's own.
fn close_on_exec(reserved: &[i32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds {
        if reserved.contains(&fd) {
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
        let r = unsafe { raw_syscall(110, [0; 6]) };
        assert_eq!(r, nix::unistd::getppid().as_raw() as i64);
        // close(-1) -> -EBADF
        let r = unsafe { raw_syscall(3, [u64::MAX, 0, 0, 0, 0, 0]) };
        assert_eq!(r, -EBADF);
    }

    #[test]
    fn dangerous_calls_are_refused() {
        for n in [nr::MMAP, nr::EXECVE, nr::EXIT_GROUP, nr::RT_SIGACTION, nr::CLONE, nr::ARCH_PRCTL, nr::RSEQ, 5000] {
            assert!(is_refused(n), "{n}");
        }
        for n in [0u64, 1, 2, 257, 72, 16] {
            assert!(!is_refused(n), "{n}");
        }
    }
}
