//! signalfd for the LWK process (docs/threads.md, "signalfd"): which of
//! its descriptors are signalfds and what each watches, reading them
//! (dequeuing signals as `struct signalfd_siginfo`), and publishing the
//! pending set that makes them readable.
//!
//! A signalfd is an eventfd of mcexec's (`OffloadCall::SignalfdSet`), so
//! `poll`, `epoll` and `select`, which Linux runs, see it: mcexec keeps it
//! readable while a signal of its mask is pending for the process, from
//! the set the LWK publishes in the proxy area header
//! ([`publish`]: at every change while the process has signalfds, with a
//! ring of the process doorbell). `read` of it is the LWK's ([`read`]).
//! A descriptor is known by number and by its file's identity (dev,
//! inode), so a number closed and reused on Linux is not taken for a
//! signalfd.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use ihk_abi::offload::{OffloadCall, ProxyAreaHeader};

use super::signal::{self, SigInfo};
use super::{offload, Process, Thread};
use crate::errno::*;

/// One signalfd of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigFd {
    pub fd: i32,
    pub dev: u64,
    pub ino: u64,
    pub mask: u64,
}

/// `sizeof(struct signalfd_siginfo)`.
pub const SIGINFO_SIZE: usize = 128;
const O_NONBLOCK: u32 = 0o4000;
const UNBLOCKABLE: u64 = (1 << 8) | (1 << 18); // SIGKILL, SIGSTOP

fn header(p: &Process) -> &ProxyAreaHeader {
    // SAFETY: the proxy area header lives as long as the process.
    unsafe { &*(crate::mm::phys::to_virt(p.area_pa) as *const ProxyAreaHeader) }
}

/// Signals pending for `p` or one of its threads.
fn pending(p: &Process) -> u64 {
    let threads = p.threads.lock().iter().fold(0, |a, t| a | t.sig_pending.load(Ordering::Acquire));
    p.sig_pending.load(Ordering::Acquire) | threads
}

/// The pending set of `p` may have changed: publish it for mcexec (and
/// ring it) if the process has signalfds and the set is new.
pub fn publish(p: &Process) {
    if p.sigfd_count.load(Ordering::Relaxed) == 0 {
        return;
    }
    let now = pending(p);
    if header(p).sig_pending.swap(now, Ordering::AcqRel) != now {
        super::service::ring_host(p.slot_index);
    }
}

/// The signalfd `fd` of `t`'s process, if `fd` still is the file it was
/// created as.
fn lookup(t: &Thread, fd: i32) -> Option<(SigFd, ihk_abi::offload::FdInfo)> {
    let p = &t.process;
    let s = p.sigfds.lock().iter().find(|s| s.fd == fd).copied()?;
    match super::filemap_io::describe(t, fd as u64) {
        Ok((info, _)) if info.dev == s.dev && info.ino == s.ino => Some((s, info)),
        _ => {
            forget(p, |x| *x == s);
            None
        }
    }
}

fn forget(p: &Process, f: impl Fn(&SigFd) -> bool) {
    let mut l = p.sigfds.lock();
    l.retain(|x| !f(x));
    p.sigfd_count.store(l.len() as u32, Ordering::Relaxed);
}

/// signalfd4(fd, mask, flags): a new signalfd (`fd` -1) or a new mask for
/// one; returns its descriptor.
pub fn set(t: &Thread, fd: i32, mask: u64, flags: u64) -> Result<u64, Errno> {
    let p = &t.process;
    let mask = mask & !UNBLOCKABLE;
    let known = if fd == -1 {
        None
    } else {
        match lookup(t, fd) {
            Some((s, _)) => Some(s),
            // Linux: EBADF for no descriptor, EINVAL for one that is not a
            // signalfd.
            None => return Err(super::filemap_io::describe(t, fd as u64).err().unwrap_or(EINVAL)),
        }
    };
    // Published first, so the new descriptor starts with the right state.
    p.sigfd_count.fetch_add(1, Ordering::Relaxed);
    let now = pending(p);
    header(p).sig_pending.store(now, Ordering::Release);
    let r = offload::call(t, OffloadCall::SignalfdSet as u64, [fd as i64 as u64, mask, flags, now, 0, 0]);
    let mut l = p.sigfds.lock();
    let out = if r < 0 {
        Err(Errno((-r) as i32))
    } else if let Some(s) = known {
        for x in l.iter_mut().filter(|x| **x == s) {
            x.mask = mask;
        }
        Ok(fd as u64)
    } else {
        drop(l);
        let info = super::filemap_io::describe(t, r as u64);
        l = p.sigfds.lock();
        match info {
            Ok((info, _)) => {
                l.retain(|x| x.fd != r as i32);
                l.push(SigFd { fd: r as i32, dev: info.dev, ino: info.ino, mask });
                Ok(r as u64)
            }
            Err(e) => Err(e),
        }
    };
    p.sigfd_count.store(l.len() as u32, Ordering::Relaxed);
    out
}

/// `struct signalfd_siginfo` of signal `sig`.
fn record(sig: u32, i: &SigInfo) -> [u8; SIGINFO_SIZE] {
    let mut b = [0u8; SIGINFO_SIZE];
    b[0..4].copy_from_slice(&sig.to_le_bytes());
    b[8..12].copy_from_slice(&i.code.to_le_bytes());
    if matches!(sig, 4 | 7 | 8 | 11) && i.code > 0 {
        b[72..80].copy_from_slice(&i.addr.to_le_bytes());
    } else if i.code == signal::SI_TIMER {
        b[24..28].copy_from_slice(&(i.timerid as u32).to_le_bytes());
        b[32..36].copy_from_slice(&(i.overrun as u32).to_le_bytes());
        b[44..48].copy_from_slice(&(i.value as u32).to_le_bytes());
        b[48..56].copy_from_slice(&i.value.to_le_bytes());
    } else {
        b[12..16].copy_from_slice(&i.pid.to_le_bytes());
        b[16..20].copy_from_slice(&i.uid.to_le_bytes());
        if i.code < 0 {
            b[44..48].copy_from_slice(&(i.value as u32).to_le_bytes());
            b[48..56].copy_from_slice(&i.value.to_le_bytes());
        }
    }
    b
}

/// read(fd, buf, count) if `fd` is a signalfd: the pending signals of its
/// mask (the caller's own, then its process's), as many as fit, dequeued;
/// waits for one unless the descriptor is non-blocking (EAGAIN). None:
/// not a signalfd.
pub fn read(t: &Thread, fd: i32, buf: u64, count: u64) -> Option<Result<u64, Errno>> {
    let p = &t.process;
    if !p.sigfds.lock().iter().any(|s| s.fd == fd) {
        return None;
    }
    let (s, info) = lookup(t, fd)?;
    if (count as usize) < SIGINFO_SIZE {
        return Some(Err(EINVAL));
    }
    let max = (count as usize / SIGINFO_SIZE).min(64);
    let mut out: Vec<u8> = Vec::new();
    while out.len() / SIGINFO_SIZE < max {
        match signal::dequeue_from(t, s.mask) {
            Some((sig, i)) => out.extend_from_slice(&record(sig, &i)),
            None => break,
        }
    }
    if out.is_empty() {
        if info.status_flags & O_NONBLOCK != 0 {
            return Some(Err(EAGAIN));
        }
        // Wait as sigwaitinfo does for the mask (Linux's reader sleeps on
        // the signalfd until one of them is pending).
        match signal::timed_wait(t, s.mask, 0, false) {
            Ok((sig, i)) => out.extend_from_slice(&record(sig, &i)),
            Err(e) => return Some(Err(e)),
        }
    }
    if let Err(e) = p.aspace.lock().write(buf, &out) {
        return Some(Err(e));
    }
    // Readiness follows before the program can poll again.
    publish(p);
    offload::call(t, OffloadCall::SignalfdSync as u64, [pending(p), 0, 0, 0, 0, 0]);
    Some(Ok(out.len() as u64))
}
