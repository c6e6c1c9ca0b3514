//! System call number → handler. Every call is either handled here
//! (`Local`) or executed by the proxy on Linux (`Offload`, the default).
//! Answer "is `madvise` local?" by finding its line.

use super::errno::{SysResult, ENOSYS};
use super::{exit, fsview, ids, mm, process, rusage, signal, sysinfo, thread, time, uname};
use crate::arch::x86_64::idt::TrapFrame;

pub type Handler = fn(&mut TrapFrame) -> SysResult;

pub enum Entry {
    Local(Handler),
    Offload,
}

use Entry::{Local, Offload};

fn enosys(_: &mut TrapFrame) -> SysResult {
    Err(ENOSYS)
}

pub fn lookup(nr: u64) -> Entry {
    match nr {
        2 => Local(fsview::open),    // LWK /proc, /sys view; else offloaded
        9 => Local(mm::mmap),
        10 => Local(mm::mprotect),
        11 => Local(mm::munmap),
        12 => Local(mm::brk),
        13 => Local(signal::rt_sigaction),
        14 => Local(signal::rt_sigprocmask),
        15 => Local(signal::rt_sigreturn),
        24 => Local(thread::sched_yield),
        25 => Local(mm::mremap),
        26 => Local(mm::msync),
        27 => Local(mm::mincore),
        28 => Local(mm::madvise),
        39 => Local(ids::getpid),
        56 => Local(process::clone), // threads (process::thread) and fork-like clones
        57 => Local(process::fork),
        58 => Local(process::vfork),
        59 => Local(process::execve),
        60 => Local(exit::exit),
        62 => Local(signal::kill),
        63 => Local(uname::uname),
        89 => Local(fsview::readlink),
        96 => Local(time::gettimeofday),
        98 => Local(rusage::getrusage),
        99 => Local(sysinfo::sysinfo),
        110 => Local(ids::getppid),
        127 => Local(signal::rt_sigpending),
        128 => Local(signal::rt_sigtimedwait),
        129 => Local(signal::rt_sigqueueinfo),
        130 => Local(signal::rt_sigsuspend),
        131 => Local(signal::sigaltstack),
        149..=152 => Local(mm::mlock_family), // mlock munlock mlockall munlockall
        157 => Local(thread::prctl),
        158 => Local(thread::arch_prctl),
        186 => Local(ids::gettid),
        200 => Local(signal::tkill),
        201 => Local(time::time),
        202 => Local(thread::futex),
        203 => Local(thread::sched_setaffinity),
        204 => Local(thread::sched_getaffinity),
        218 => Local(thread::set_tid_address),
        228 => Local(time::clock_gettime),
        229 => Local(time::clock_getres),
        231 => Local(exit::exit_group),
        234 => Local(signal::tgkill),
        237..=239 => Local(mm::mempolicy), // mbind set_mempolicy get_mempolicy
        256 => Local(enosys), // migrate_pages (McKernel: ENOSYS)
        257 => Local(fsview::openat),
        267 => Local(fsview::readlinkat),
        273 => Local(thread::set_robust_list),
        274 => Local(thread::get_robust_list),
        279 => Local(enosys), // move_pages (McKernel: ENOSYS)
        297 => Local(signal::rt_tgsigqueueinfo),
        309 => Local(thread::getcpu),
        322 => Local(enosys), // execveat
        324 => Local(mm::membarrier),
        325 => Local(mm::mlock_family), // mlock2
        329..=331 => Local(enosys), // pkey_*
        334 => Local(enosys), // rseq: glibc runs without it
        435 => Local(process::clone3),
        _ => Offload,
    }
}
