//! Where one system call's kernel time goes (`pvm_profile=<nr>`, a kernel
//! argument for the experiment of docs/pvm.md): the 5th (or, with
//! `pvm_profile_skip=<n>`, the n+1st) system call number `<nr>` that arrives by the emulated SYSCALL path (a user-mode #PF) is
//! single-stepped from the start of interrupt dispatch to the end of its
//! return path (TF set in the kernel's RFLAGS; each #DB records the
//! instruction's address). `take_profile` hands the addresses to the layer
//! that logs them (`probe`), for the host to attribute
//! to functions with the kernel's symbol table (`scripts/pvm-probe.sh`). Not counted: the ~20 instructions of the entry
//! stub before dispatch and the ~18 after it (`idt`).
//!
//! Without the kernel argument nothing is armed: one load and compare on
//! each emulated system call.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

const NONE: u64 = u64::MAX;
static TARGET: AtomicU64 = AtomicU64::new(NONE);
/// Calls of the target number still to let pass before the profiled one.
static SKIP: AtomicU32 = AtomicU32::new(4);
static ACTIVE: AtomicBool = AtomicBool::new(false);
static DONE: AtomicBool = AtomicBool::new(false);
const MAX: usize = 16384;
static RIPS: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
static N: AtomicUsize = AtomicUsize::new(0);
const TF: u64 = 1 << 8;

/// Profile the call of system call `nr` that follows `skip` others (BSP,
/// at boot).
pub fn enable(nr: u64, skip: u32) {
    SKIP.store(skip, Relaxed);
    TARGET.store(nr, Relaxed);
}

/// At the start of dispatching an emulated system call `nr`: start
/// single-stepping if it is the one to profile. Returns whether it did.
pub fn begin(nr: u64) -> bool {
    if TARGET.load(Relaxed) != nr || ACTIVE.load(Relaxed) {
        return false;
    }
    if SKIP.load(Relaxed) > 0 {
        SKIP.fetch_sub(1, Relaxed);
        return false;
    }
    TARGET.store(NONE, Relaxed);
    ACTIVE.store(true, Relaxed);
    N.store(0, Relaxed);
    set_tf(true);
    true
}

/// A #DB from kernel mode: record it if single-stepping. Returns whether
/// it was ours.
pub fn on_debug(rip: u64) -> bool {
    if !ACTIVE.load(Relaxed) {
        return false;
    }
    let n = N.load(Relaxed);
    if n < MAX {
        RIPS[n].store(rip, Relaxed);
    }
    N.store(n + 1, Relaxed);
    true
}

/// At the end of the profiled entry's return path: stop.
pub fn end() {
    set_tf(false);
    ACTIVE.store(false, Relaxed);
    DONE.store(true, Relaxed);
}

/// Once a profile is complete (and only once): the recorded addresses
/// (at most the first 16384) and the number of instructions stepped.
pub fn take_profile() -> Option<(alloc::vec::Vec<u64>, usize)> {
    if !DONE.swap(false, Relaxed) {
        return None;
    }
    let n = N.load(Relaxed);
    Some((RIPS.iter().take(n.min(MAX)).map(|r| r.load(Relaxed)).collect(), n))
}

fn set_tf(on: bool) {
    // SAFETY: only RFLAGS.TF changes; with TF set every kernel instruction
    // raises #DB, which `idt` hands to `on_debug` while ACTIVE.
    unsafe {
        if on {
            core::arch::asm!("pushfq", "or qword ptr [rsp], {tf}", "popfq", tf = const TF);
        } else {
            core::arch::asm!("pushfq", "and qword ptr [rsp], {m}", "popfq", m = const !(TF as i64));
        }
    }
}
