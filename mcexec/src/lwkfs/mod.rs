//! The host half of the LWK's /proc and /sys view (ARCHITECTURE.md §6):
//! the LWK decides which paths it answers and synthesizes their contents;
//! this module turns those contents into descriptors the program reads
//! with ordinary offloaded calls (memfds), filters Linux's /proc/cpuinfo
//! down to the partition's CPUs, opens redirected paths, and describes
//! host descriptors for file-backed mappings (`/proc/self/maps` names).
//!
//! Must not: decide what the LWK shows (the LWK does), or keep state.

mod cpuinfo;

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

pub use cpuinfo::filter_cpuinfo;

use ihk_abi::offload::FdInfo;

fn errno() -> i64 {
    -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as i64)
}

/// `openat(AT_FDCWD, path, flags, mode)`; the fd or -errno.
pub fn open_path(path: &[u8], flags: i32, mode: u32) -> i64 {
    let Ok(c) = CString::new(path) else { return -(libc::ENOENT as i64) };
    // SAFETY: a NUL-terminated path; the descriptor becomes the program's.
    let fd = unsafe { libc::openat(libc::AT_FDCWD, c.as_ptr(), flags, mode) };
    if fd < 0 {
        errno()
    } else {
        fd as i64
    }
}

/// A memfd holding `data` at offset 0; close-on-exec when `flags` (open
/// flags of the program's request) has O_CLOEXEC. The fd or -errno.
pub fn memfd_with(data: &[u8], flags: i32) -> i64 {
    let cloexec = if flags & libc::O_CLOEXEC != 0 { libc::MFD_CLOEXEC } else { 0 };
    // SAFETY: a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"lwk-view".as_ptr(), cloexec) };
    if fd < 0 {
        return errno();
    }
    // SAFETY: a fresh descriptor we own until handed to the program.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if let Err(e) = f.write_all(data) {
        return -(e.raw_os_error().unwrap_or(libc::EIO) as i64);
    }
    // SAFETY: rewinding our own descriptor.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
        return errno();
    }
    f.into_raw_fd() as i64
}

/// The LWK's /proc/cpuinfo for Linux CPUs `cpus` as a memfd.
pub fn host_cpuinfo(cpus: &[u32], flags: i32) -> i64 {
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(text) => memfd_with(filter_cpuinfo(&text, cpus).as_bytes(), flags),
        Err(e) => -(e.raw_os_error().unwrap_or(libc::EIO) as i64),
    }
}

/// Describe host descriptor `fd`: its [`FdInfo`] and path.
pub fn fd_info(fd: i32) -> Result<(FdInfo, Vec<u8>), i64> {
    // SAFETY: fstat/fcntl on a descriptor number into local buffers.
    let (st, fl) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(errno());
        }
        (st, libc::fcntl(fd, libc::F_GETFL))
    };
    let path = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| std::os::unix::ffi::OsStringExt::into_vec(p.into_os_string()))
        .unwrap_or_default();
    let info = FdInfo {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mode: st.st_mode,
        status_flags: fl.max(0) as u32,
        path_len: path.len() as u32,
        _pad: 0,
        mtime_ns: (st.st_mtime as u64).wrapping_mul(1_000_000_000).wrapping_add(st.st_mtime_nsec as u64),
    };
    Ok((info, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn memfd_reads_back_from_offset_zero() {
        let fd = memfd_with(b"0-3\n", libc::O_CLOEXEC);
        assert!(fd >= 0);
        // SAFETY: the fd was just created for us.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "0-3\n");
    }

    #[test]
    fn fd_info_names_the_file() {
        let f = std::fs::File::open("/etc/hostname").or_else(|_| std::fs::File::open("/etc/passwd")).unwrap();
        let (info, path) = fd_info(std::os::fd::AsRawFd::as_raw_fd(&f)).unwrap();
        let md = f.metadata().unwrap();
        assert_eq!(info.size, md.len());
        assert!(path.starts_with(b"/etc/"));
        assert_eq!(info.status_flags as i32 & libc::O_ACCMODE, libc::O_RDONLY);
        assert!(fd_info(-1).is_err());
    }
}
