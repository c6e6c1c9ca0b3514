//! signalfds of the LWK process, proxy side (docs/threads.md,
//! "signalfd"): each is an eventfd we create (`OffloadCall::SignalfdSet`),
//! so `poll`, `epoll` and `select`, which run here on Linux, see it. We
//! keep it readable (counter 1) while the LWK reports a signal of its mask
//! pending (`ProxyAreaHeader::sig_pending`, synced at every doorbell ring
//! and at `OffloadCall::SignalfdSync`), and empty otherwise. `read` of it
//! is the LWK's: the counter is only ever written and read here.
//!
//! Records are process-wide and a fork child inherits them with the
//! descriptors. Each holds our own close-on-exec duplicate at a high
//! number (out of the program's reach: `owns`), so a program that closes
//! its descriptor cannot make us write into another file; a record whose
//! program descriptor is gone stays until the process ends (at most
//! [`MAX`] of them).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use ihk_abi::linux::errno::{EINVAL, EMFILE};

struct Record {
    fd: OwnedFd,
    dev: u64,
    ino: u64,
    mask: u64,
    /// The counter is 1 (readable).
    raised: bool,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());
const MAX: usize = 64;

fn neg_errno() -> i64 {
    -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as i64)
}

fn identity(fd: RawFd) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat into a local buffer; an invalid descriptor fails.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } < 0 {
        return None;
    }
    // SAFETY: fstat succeeded and filled it.
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

/// `OffloadCall::SignalfdSet(fd, mask, flags, pending)`.
pub fn set(a: [u64; 6]) -> i64 {
    let (fd, mask, flags, pending) = (a[0] as i64 as i32, a[1], a[2] as i32, a[3]);
    let mut l = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    let r = if fd == -1 {
        if l.len() >= MAX {
            return -(EMFILE.0 as i64);
        }
        // SFD_CLOEXEC and SFD_NONBLOCK are EFD_CLOEXEC and EFD_NONBLOCK.
        let efd_flags = flags & (libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
        // SAFETY: eventfd with plain flags.
        let n = unsafe { libc::eventfd(0, efd_flags) };
        if n < 0 {
            return neg_errno();
        }
        let own = crate::session::dup_high(n).unwrap_or(-1);
        let Some((dev, ino)) = (own >= 0).then(|| identity(n)).flatten() else {
            let e = neg_errno();
            // SAFETY: closing the descriptors just made.
            unsafe {
                libc::close(n);
                if own >= 0 {
                    libc::close(own);
                }
            }
            return e;
        };
        // SAFETY: a fresh descriptor we own.
        l.push(Record { fd: unsafe { OwnedFd::from_raw_fd(own) }, dev, ino, mask, raised: false });
        n as i64
    } else {
        let Some(id) = identity(fd) else { return -(libc::EBADF as i64) };
        match l.iter_mut().find(|r| (r.dev, r.ino) == id) {
            Some(r) => {
                r.mask = mask;
                fd as i64
            }
            None => return -(EINVAL.0 as i64),
        }
    };
    sync_locked(&mut l, pending);
    r
}

/// Make each signalfd readable iff a signal of its mask is in `pending`.
pub fn sync(pending: u64) {
    let mut l = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    sync_locked(&mut l, pending);
}

fn sync_locked(l: &mut [Record], pending: u64) {
    for r in l.iter_mut() {
        let want = pending & r.mask != 0;
        if want == r.raised {
            continue;
        }
        let fd = r.fd.as_raw_fd();
        if !want {
            // Never block here: read only a counter that is there (the
            // program may have read it itself, through readv or pread).
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: polling one descriptor of ours without waiting.
            if unsafe { libc::poll(&mut pfd, 1, 0) } != 1 {
                r.raised = false;
                continue;
            }
        }
        let mut v: u64 = 1;
        // SAFETY: 8 bytes from or to a local, on our eventfd. Only we move
        // its counter, between 0 and 1, so neither call blocks.
        let n = unsafe {
            if want {
                libc::write(fd, &v as *const u64 as *const libc::c_void, 8)
            } else {
                libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8)
            }
        };
        if n == 8 {
            r.raised = want;
        }
    }
}

/// Whether `fd` is one of our duplicates (not the program's).
pub fn owns(fd: RawFd) -> bool {
    RECORDS.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|r| r.fd.as_raw_fd() == fd)
}

/// Our duplicates.
pub fn fds() -> Vec<RawFd> {
    RECORDS.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|r| r.fd.as_raw_fd()).collect()
}
