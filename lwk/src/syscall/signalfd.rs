//! signalfd, signalfd4 and read of a signalfd: the LWK process's signals
//! (the state is in `process::sigfd`; a signalfd is an eventfd of mcexec
//! that `poll`, `epoll` and `select` on Linux see). `read` of any other
//! descriptor is offloaded after one counter read.

use core::sync::atomic::Ordering;

use super::errno::*;
use super::{args, current, offload};
use crate::arch::x86_64::idt::TrapFrame;
use crate::process::sigfd;

const SFD_NONBLOCK: u64 = 0o4000;
const SFD_CLOEXEC: u64 = 0o2000000;

fn signalfd_common(fd: u64, mask_va: u64, size: u64, flags: u64) -> SysResult {
    if size != 8 || flags & !(SFD_NONBLOCK | SFD_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let t = current();
    let mask = t.process.aspace.lock().read_u64(mask_va)?;
    sigfd::set(t, fd as i32, mask, flags)
}

/// signalfd(fd, mask, sizemask).
pub fn signalfd(f: &mut TrapFrame) -> SysResult {
    let [fd, mask, size, ..] = args(f);
    signalfd_common(fd, mask, size, 0)
}

/// signalfd4(fd, mask, sizemask, flags).
pub fn signalfd4(f: &mut TrapFrame) -> SysResult {
    let [fd, mask, size, flags, ..] = args(f);
    signalfd_common(fd, mask, size, flags)
}

/// read(fd, buf, count): a signalfd's is the LWK's; others offloaded.
pub fn read(f: &mut TrapFrame) -> SysResult {
    let t = current();
    if t.process.sigfd_count.load(Ordering::Relaxed) == 0 {
        return offload::syscall(f);
    }
    let [fd, buf, count, ..] = args(f);
    match sigfd::read(t, fd as i32, buf, count) {
        Some(r) => r,
        None => offload::syscall(f),
    }
}
