//! getrusage for the calling process or thread: the LWK's accounting (the
//! proxy's own usage on Linux says nothing about the program). User and
//! system time are what the LWK charged at the threads' changes of state
//! (`process::cputime`), as `CLOCK_PROCESS_CPUTIME_ID` reports them
//! (`time.rs`). RUSAGE_CHILDREN is Linux's: the children's proxies are
//! mcexec's children.

use super::errno::*;
use super::{args, current, offload};
use crate::arch::x86_64::idt::TrapFrame;

const RUSAGE_SELF: i64 = 0;
const RUSAGE_CHILDREN: i64 = -1;
const RUSAGE_THREAD: i64 = 1;
/// `sizeof(struct rusage)` on x86-64: two timevals then 14 longs.
const RUSAGE_SIZE: usize = 144;
const MAXRSS: usize = 32;

pub fn getrusage(f: &mut TrapFrame) -> SysResult {
    let [who, usage, ..] = args(f);
    // `who` is a C int: -1 arrives as 0xffff_ffff in the 64-bit register.
    match who as i32 as i64 {
        RUSAGE_CHILDREN => return offload::syscall(f),
        RUSAGE_SELF | RUSAGE_THREAD => {}
        _ => return Err(EINVAL),
    }
    let t = current();
    let p = &t.process;
    let (user, system) = if who as i32 as i64 == RUSAGE_THREAD {
        crate::process::cputime::thread_ns(t)
    } else {
        crate::process::cputime::process_ns(p, t)
    };
    let mut r = [0u8; RUSAGE_SIZE];
    for (i, ns) in [user, system].into_iter().enumerate() {
        let us = ns / 1000;
        r[i * 16..i * 16 + 8].copy_from_slice(&(us / 1_000_000).to_le_bytes());
        r[i * 16 + 8..i * 16 + 16].copy_from_slice(&(us % 1_000_000).to_le_bytes());
    }
    let mut a = p.aspace.lock();
    r[MAXRSS..MAXRSS + 8].copy_from_slice(&(a.backed_bytes / 1024).to_le_bytes());
    a.write(usage, &r)?;
    Ok(0)
}
