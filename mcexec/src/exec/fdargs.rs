//! mcexec's own descriptors kept out of the program's sight: which
//! arguments of an offloaded call are descriptors the call acts on (a
//! program that names one of ours gets EBADF, as for a closed descriptor),
//! and listings of this process's `/proc/<pid>/fd` directories without
//! ours (docs/compat.md, limitation 3).
//!
//! mcexec's descriptors (its IKC connection, eventfds, share windows,
//! signalfd duplicates) sit near the top of RLIMIT_NOFILE, in the same
//! table as the program's, because the program's calls run in this process.

use super::raw_syscall;

/// The descriptors call `nr` acts on, from its arguments `a` (at most two).
/// `pread64` is not checked: the LWK's ELF loader reads the program and
/// its interpreter with it through mcexec's descriptors of them.
/// A `*at` call counts its directory descriptor only with AT_EMPTY_PATH
/// (glibc's `fstat` is `newfstatat(fd, "", AT_EMPTY_PATH)`): otherwise an
/// absolute path makes Linux ignore it.
#[allow(non_upper_case_globals)] // libc's SYS_* constants as patterns
pub fn fd_operands(nr: u64, a: &[u64; 6]) -> [Option<u64>; 2] {
    use libc::*;
    let one = [Some(a[0]), None];
    let empty_path = |flags: u64| flags & AT_EMPTY_PATH as u64 != 0;
    match nr as c_long {
        SYS_close | SYS_read | SYS_write | SYS_pwrite64 | SYS_readv | SYS_writev | SYS_preadv | SYS_pwritev
        | SYS_preadv2 | SYS_pwritev2 | SYS_fstat | SYS_lseek | SYS_ioctl | SYS_fcntl | SYS_flock | SYS_fsync
        | SYS_fdatasync | SYS_ftruncate | SYS_getdents | SYS_getdents64 | SYS_fchdir | SYS_fchmod | SYS_fchown
        | SYS_fstatfs | SYS_dup | SYS_recvfrom | SYS_sendto | SYS_recvmsg | SYS_sendmsg | SYS_recvmmsg
        | SYS_sendmmsg | SYS_accept | SYS_accept4 | SYS_connect | SYS_bind | SYS_listen | SYS_getsockname
        | SYS_getpeername | SYS_setsockopt | SYS_getsockopt | SYS_shutdown | SYS_epoll_wait | SYS_epoll_pwait
        | SYS_epoll_pwait2 | SYS_fadvise64 | SYS_readahead | SYS_fallocate | SYS_fgetxattr | SYS_fsetxattr
        | SYS_flistxattr | SYS_fremovexattr | SYS_sync_file_range | SYS_syncfs | SYS_inotify_add_watch
        | SYS_inotify_rm_watch | SYS_timerfd_settime | SYS_timerfd_gettime | SYS_fanotify_mark => one,
        SYS_sendfile | SYS_tee | SYS_dup2 | SYS_dup3 => [Some(a[0]), Some(a[1])],
        SYS_splice | SYS_copy_file_range | SYS_epoll_ctl => [Some(a[0]), Some(a[2])],
        SYS_newfstatat if empty_path(a[3]) => one,
        SYS_statx if empty_path(a[2]) => one,
        SYS_fchownat if empty_path(a[4]) => one,
        _ => [None, None],
    }
}

/// Is `fd` a directory descriptor on one of this process's `/proc/<pid>/fd`
/// or `/proc/<pid>/task/<tid>/fd` (how the program's `/proc/self/fd` is
/// opened here)?
fn lists_own_fds(fd: u64) -> bool {
    let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else { return false };
    let Some(t) = target.to_str() else { return false };
    let Some(rest) = t.strip_prefix(&format!("/proc/{}/", std::process::id())) else { return false };
    rest == "fd" || rest.strip_prefix("task/").and_then(|r| r.strip_suffix("/fd")).is_some_and(|tid| tid.parse::<u32>().is_ok())
}

/// getdents64(fd, buf, size), leaving out the entries of a `/proc` fd
/// listing that name descriptors `hidden` says are ours (the buffer is
/// compacted in place; a batch of only ours reads on).
///
/// # Safety
/// As [`raw_syscall`]: `buf` points into the mirrored user range.
pub unsafe fn getdents64(a: [u64; 6], hidden: impl Fn(i32) -> bool) -> i64 {
    loop {
        // SAFETY: per the contract.
        let n = unsafe { raw_syscall(libc::SYS_getdents64 as u64, a) };
        if n <= 0 || !lists_own_fds(a[0]) {
            return n;
        }
        let buf = a[1] as *mut u8;
        let (mut r, mut w) = (0usize, 0usize);
        while r + 19 < n as usize {
            // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16,
            // d_type u8, d_name NUL-terminated at 19. Raw reads: the
            // mirror is not referenced from Rust.
            // SAFETY: inside the n bytes the kernel just wrote.
            let reclen = unsafe { (buf.add(r + 16) as *const u16).read_unaligned() } as usize;
            if reclen == 0 || r + reclen > n as usize {
                break;
            }
            let mut name = [0u8; 12];
            let mut len = 0;
            // SAFETY: as above; the name ends before the record does.
            while len < name.len() && r + 19 + len < r + reclen {
                let c = unsafe { buf.add(r + 19 + len).read() };
                if c == 0 {
                    break;
                }
                name[len] = c;
                len += 1;
            }
            let ours = std::str::from_utf8(&name[..len]).ok().and_then(|s| s.parse::<i32>().ok()).is_some_and(&hidden);
            if !ours {
                if w != r {
                    // SAFETY: both ranges are inside the n bytes; copy handles overlap.
                    unsafe { std::ptr::copy(buf.add(r), buf.add(w), reclen) };
                }
                w += reclen;
            }
            r += reclen;
        }
        if w > 0 || r == 0 {
            return w as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_operands() {
        let a = [7, 8, 9, 0x1000, 0x1000, 0];
        assert_eq!(fd_operands(libc::SYS_read as u64, &a), [Some(7), None]);
        assert_eq!(fd_operands(libc::SYS_epoll_ctl as u64, &a), [Some(7), Some(9)]);
        assert_eq!(fd_operands(libc::SYS_sendfile as u64, &a), [Some(7), Some(8)]);
        assert_eq!(fd_operands(libc::SYS_dup2 as u64, &a), [Some(7), Some(8)]);
        assert_eq!(fd_operands(libc::SYS_close as u64, &a), [Some(7), None]);
        assert_eq!(fd_operands(libc::SYS_newfstatat as u64, &a), [Some(7), None]);
        assert_eq!(fd_operands(libc::SYS_newfstatat as u64, &[7, 8, 9, 0, 0, 0]), [None, None]);
        assert_eq!(fd_operands(libc::SYS_statx as u64, &[7, 8, 0x1000, 0, 0, 0]), [Some(7), None]);
        assert_eq!(fd_operands(libc::SYS_openat as u64, &a), [None, None]);
        assert_eq!(fd_operands(libc::SYS_getpid as u64, &a), [None, None]);
    }

    #[test]
    fn a_proc_fd_listing_leaves_out_hidden_descriptors() {
        use std::os::fd::AsRawFd;
        let keep = std::fs::File::open("/dev/null").unwrap();
        let hide = std::fs::File::open("/dev/null").unwrap();
        let (k, h) = (keep.as_raw_fd(), hide.as_raw_fd());
        let dir = std::fs::File::open(format!("/proc/{}/fd", std::process::id())).unwrap();
        let mut buf = vec![0u8; 32768];
        let a = [dir.as_raw_fd() as u64, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0];
        // SAFETY: a buffer of ours stands in for the mirror.
        let n = unsafe { getdents64(a, |fd| fd == h) };
        assert!(n > 0);
        let mut names = Vec::new();
        let mut r = 0;
        while r < n as usize {
            let reclen = u16::from_le_bytes([buf[r + 16], buf[r + 17]]) as usize;
            let name: Vec<u8> = buf[r + 19..r + reclen].iter().copied().take_while(|&c| c != 0).collect();
            names.push(String::from_utf8(name).unwrap());
            r += reclen;
        }
        assert!(names.contains(&k.to_string()), "{names:?}");
        assert!(!names.contains(&h.to_string()), "{names:?}");
        assert!(names.contains(&".".to_string()), "{names:?}");
        // Another directory is listed as it is.
        let other = std::fs::File::open("/proc/self").unwrap();
        let a = [other.as_raw_fd() as u64, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0];
        // SAFETY: as above.
        assert!(unsafe { getdents64(a, |_| true) } > 0);
    }
}
