//! The offloaded half of share windows (`mm/window.rs`): finding or
//! creating the window of a host file range (or of new shared anonymous
//! memory) with the calling thread's proxy, which keeps its own descriptor
//! of the file to mirror the window and asks ihkd to map it as guest memory.

use ihk_abi::offload::{OffloadCall, SHARE_CREATE, SHARE_WRITE};

use super::offload;
use super::sync::ThreadMutex;
use super::Thread;
use crate::errno::*;
use crate::mm::window;

/// A window piece for the caller to map: `gpa` of window `base`.
pub struct Share {
    pub base: u64,
    pub gpa: u64,
    pub writable: bool,
}

/// Serializes lookup-or-create, so two processes mapping the same file at
/// once get the same window (and so the same futex keys).
static CREATING: ThreadMutex<()> = ThreadMutex::new(());

fn res(r: i64) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno((-r) as i32))
    } else {
        Ok(())
    }
}

/// The window for `len` bytes (page multiple) of host descriptor `fd` at
/// file offset `off` (file `dev`/`ino`); `writable` when the descriptor
/// allows writing. The caller owns one reference to the result.
pub fn file(t: &Thread, fd: u64, dev: u64, ino: u64, off: u64, len: u64, writable: bool) -> Result<Share, Errno> {
    let _g = CREATING.lock();
    let w = if writable { SHARE_WRITE } else { 0 };
    if let Some((base, gpa)) = window::lookup(dev, ino, off, len, writable) {
        // The proxy still needs its own descriptor to mirror it.
        if let Err(e) = res(offload::call(t, OffloadCall::ShareFile as u64, [fd, off, len, gpa, w, 0])) {
            window::put(base);
            return Err(e);
        }
        return Ok(Share { base, gpa, writable });
    }
    let base = window::reserve(len, dev, ino, off, writable).ok_or(ENOMEM)?;
    match res(offload::call(t, OffloadCall::ShareFile as u64, [fd, off, len, base, w | SHARE_CREATE, 0])) {
        Ok(()) => {
            window::ready(base);
            Ok(Share { base, gpa: base, writable })
        }
        Err(e) => {
            window::put(base);
            Err(e)
        }
    }
}

/// A window of `len` bytes of new shared anonymous memory (zeroed).
pub fn anon(t: &Thread, len: u64) -> Result<Share, Errno> {
    let base = window::reserve(len, 0, 0, 0, true).ok_or(ENOMEM)?;
    match res(offload::call(t, OffloadCall::ShareAnon as u64, [len, base, 0, 0, 0, 0])) {
        Ok(()) => {
            window::ready(base);
            Ok(Share { base, gpa: base, writable: true })
        }
        Err(e) => {
            window::put(base);
            Err(e)
        }
    }
}

/// Registry key of SysV segments (device number no file has).
pub const SYSV_DEV: u64 = u64::MAX;

/// The window of SysV segment `shmid` for `shmat` (`shmflg` as given):
/// returns it and the segment's size in bytes.
pub fn sysv(t: &Thread, shmid: u64, shmflg: u64, writable: bool) -> Result<(Share, u64), Errno> {
    // The proxy attaches it first, with the program's rights.
    let r = offload::call(t, OffloadCall::SysvAttach as u64, [shmid, shmflg, 0, 0, 0, 0]);
    res(r)?;
    let size = r as u64;
    let len = crate::mm::aspace::align_up(size.max(1), crate::mm::phys::PAGE);
    let _g = CREATING.lock();
    let w = if writable { SHARE_WRITE } else { 0 };
    if let Some((base, gpa)) = window::lookup(SYSV_DEV, shmid, 0, len, writable) {
        if let Err(e) = res(offload::call(t, OffloadCall::ShareSysv as u64, [shmid, len, gpa, w, 0, 0])) {
            window::put(base);
            return Err(e);
        }
        return Ok((Share { base, gpa, writable }, size));
    }
    let base = window::reserve(len, SYSV_DEV, shmid, 0, writable).ok_or(ENOMEM)?;
    match res(offload::call(t, OffloadCall::ShareSysv as u64, [shmid, len, base, w | SHARE_CREATE, 0, 0])) {
        Ok(()) => {
            window::ready(base);
            Ok((Share { base, gpa: base, writable }, size))
        }
        Err(e) => {
            window::put(base);
            Err(e)
        }
    }
}
