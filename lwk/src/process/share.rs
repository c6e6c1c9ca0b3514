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

pub use crate::mm::window::WindowRef;

/// Serializes lookup-or-create, so two processes mapping the same file at
/// once get the same window (and so the same futex keys).
static CREATING: ThreadMutex<()> = ThreadMutex::new(());

/// Registry key of SysV segments (device number no file has).
pub const SYSV_DEV: u64 = u64::MAX;

fn res(r: i64) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno((-r) as i32))
    } else {
        Ok(())
    }
}

/// The window of `len` bytes of the host object `key` (device, inode, file
/// offset; `None`: new anonymous memory, never shared with a lookup).
/// `tell(gpa, create)` hands it to the proxy, which keeps its own handle to
/// mirror it and, with `create`, has ihkd map it at `gpa`.
fn obtain(key: Option<(u64, u64, u64)>, len: u64, writable: bool, tell: impl Fn(u64, bool) -> i64) -> Result<WindowRef, Errno> {
    let _g = CREATING.lock();
    if let Some((dev, ino, off)) = key {
        if let Some((base, gpa)) = window::lookup(dev, ino, off, len, writable) {
            let w = WindowRef { base, gpa, writable };
            res(tell(gpa, false))?;
            return Ok(w);
        }
    }
    let (dev, ino, off) = key.unwrap_or((0, 0, 0));
    let base = window::reserve(len, dev, ino, off, writable).ok_or(ENOMEM)?;
    let w = WindowRef { base, gpa: base, writable };
    res(tell(base, true))?;
    window::ready(base);
    Ok(w)
}

fn flags(writable: bool, create: bool) -> u64 {
    (if writable { SHARE_WRITE } else { 0 }) | if create { SHARE_CREATE } else { 0 }
}

/// The window for `len` bytes (page multiple) of host descriptor `fd` at
/// file offset `off` (file `dev`/`ino`); `writable` when the descriptor
/// allows writing.
pub fn file(t: &Thread, fd: u64, dev: u64, ino: u64, off: u64, len: u64, writable: bool) -> Result<WindowRef, Errno> {
    obtain(Some((dev, ino, off)), len, writable, |gpa, create| {
        offload::call(t, OffloadCall::ShareFile as u64, [fd, off, len, gpa, flags(writable, create), 0])
    })
}

/// A window of `len` bytes of new shared anonymous memory (zeroed).
pub fn anon(t: &Thread, len: u64) -> Result<WindowRef, Errno> {
    obtain(None, len, true, |gpa, _| offload::call(t, OffloadCall::ShareAnon as u64, [len, gpa, 0, 0, 0, 0]))
}

/// The window of SysV segment `shmid` for `shmat` (`shmflg` as given):
/// returns it and the segment's size in bytes.
pub fn sysv(t: &Thread, shmid: u64, shmflg: u64, writable: bool) -> Result<(WindowRef, u64), Errno> {
    // The proxy attaches it first, with the program's rights.
    let r = offload::call(t, OffloadCall::SysvAttach as u64, [shmid, shmflg, 0, 0, 0, 0]);
    res(r)?;
    let size = r as u64;
    let len = crate::mm::aspace::align_up(size.max(1), crate::mm::phys::PAGE);
    let w = obtain(Some((SYSV_DEV, shmid, 0)), len, writable, |gpa, create| {
        offload::call(t, OffloadCall::ShareSysv as u64, [shmid, len, gpa, flags(writable, create), 0, 0])
    })?;
    Ok((w, size))
}
