//! Futexes: wait queues keyed by the guest-physical address of the futex
//! word, so that a private futex (same address space) and a shared one
//! (the same page mapped by several processes) find the same queue. LWK
//! user memory is pinned (never swapped or moved), which makes the physical
//! address a stable key, as Linux's (inode, offset) key is for shared ones.
//!
//! One lock guards the whole table and the check of the futex word, so a
//! wake can never slip between a waiter's value check and its enqueueing.
//! Waiters sleep in the scheduler (`sched::wait_event`); a waker takes them
//! off the queue and sets their `woken` flag, so a waiter that finds itself
//! still queued after waking was not woken (timeout, signal, process end).
//!
//! The queue logic (FIFO per key, bitsets, requeue) is `futex_queue`,
//! tested on the host; this file reads and changes user memory.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;

use super::futex_queue::FutexTable;
use super::{sched, Thread};
use crate::mm::phys;
use crate::errno::*;

static TABLE: Mutex<FutexTable<Arc<Thread>>> = Mutex::new(FutexTable::new());

pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// The futex word at user address `uaddr` as an atomic in the direct map,
/// and its key. Faults the page in if needed.
fn word(t: &Thread, uaddr: u64, write: bool) -> Result<(&'static AtomicU32, u64), Errno> {
    if uaddr % 4 != 0 {
        return Err(EINVAL);
    }
    let pa = t.process.aspace.lock().user_pa(uaddr, write)?;
    // SAFETY: `pa` is a 4-byte aligned word of a user page of this process
    // (pinned guest memory), reached through the direct map; user code
    // accesses it atomically too.
    Ok((unsafe { &*(phys::to_virt(pa) as *const AtomicU32) }, pa))
}

/// Current thread `t` as an `Arc` (the futex queue keeps one).
fn arc_of(t: &Thread) -> Arc<Thread> {
    t.process.thread(t.tid()).expect("the current thread is live")
}

/// FUTEX_WAIT(_BITSET): sleep while `*uaddr == val` until woken through a
/// bitset meeting `bitset`, `deadline` (TSC, 0: none), a signal or the
/// process's end.
pub fn wait(t: &Thread, uaddr: u64, val: u32, bitset: u32, deadline: u64) -> Result<u64, Errno> {
    if bitset == 0 {
        return Err(EINVAL);
    }
    let (w, key) = word(t, uaddr, false)?;
    {
        let mut q = TABLE.lock();
        if w.load(Ordering::SeqCst) != val {
            return Err(EAGAIN);
        }
        t.woken.store(false, Ordering::Relaxed);
        q.enqueue(key, bitset, arc_of(t));
    }
    sched::wait_event(t, deadline);
    let still_queued = TABLE.lock().remove(|x| core::ptr::eq(Arc::as_ptr(x), t));
    if !still_queued {
        return Ok(0);
    }
    if deadline != 0 && crate::arch::x86_64::tsc::now() >= deadline {
        return Err(ETIMEDOUT);
    }
    Err(EINTR)
}

/// FUTEX_WAKE(_BITSET): wake up to `n` waiters. Returns how many.
pub fn wake(t: &Thread, uaddr: u64, n: u32, bitset: u32) -> Result<u64, Errno> {
    if bitset == 0 {
        return Err(EINVAL);
    }
    let (_, key) = word(t, uaddr, false)?;
    Ok(wake_key(key, n as usize, bitset) as u64)
}

fn wake_key(key: u64, n: usize, bitset: u32) -> usize {
    let woken = TABLE.lock().wake(key, n, bitset);
    for w in &woken {
        sched::wake(w);
    }
    woken.len()
}

/// Wake one waiter of the futex at `uaddr` in `t`'s address space, if the
/// word is mapped (thread exit: CLONE_CHILD_CLEARTID, robust futexes).
pub fn wake_one_at(t: &Thread, uaddr: u64) {
    if let Ok((_, key)) = word(t, uaddr, false) {
        wake_key(key, 1, FUTEX_BITSET_MATCH_ANY);
    }
}

/// FUTEX_REQUEUE / FUTEX_CMP_REQUEUE (`cmp`: the expected `*uaddr`).
pub fn requeue(t: &Thread, uaddr: u64, uaddr2: u64, n_wake: u32, n_requeue: u32, cmp: Option<u32>) -> Result<u64, Errno> {
    if (n_wake as i32) < 0 || (n_requeue as i32) < 0 {
        return Err(EINVAL);
    }
    let (w, from) = word(t, uaddr, false)?;
    let (_, to) = word(t, uaddr2, false)?;
    let (woken, moved) = {
        let mut q = TABLE.lock();
        if let Some(v) = cmp {
            if w.load(Ordering::SeqCst) != v {
                return Err(EAGAIN);
            }
        }
        q.requeue(from, to, n_wake as usize, n_requeue as usize)
    };
    for x in &woken {
        sched::wake(x);
    }
    Ok((woken.len() + moved) as u64)
}

/// FUTEX_WAKE_OP: `oldval = *uaddr2; *uaddr2 = oldval OP oparg`; wake up to
/// `n` on `uaddr`, and up to `n2` on `uaddr2` if `oldval CMP cmparg`.
pub fn wake_op(t: &Thread, uaddr: u64, uaddr2: u64, n: u32, n2: u32, encoded: u32) -> Result<u64, Errno> {
    let (_, key1) = word(t, uaddr, false)?;
    let (w2, key2) = word(t, uaddr2, true)?;
    let op = (encoded >> 28) & 0xf;
    let cmp = (encoded >> 24) & 0xf;
    let mut oparg = sign_extend12((encoded >> 12) & 0xfff);
    let cmparg = sign_extend12(encoded & 0xfff);
    if op & 8 != 0 {
        // FUTEX_OP_OPARG_SHIFT
        if !(0..=31).contains(&oparg) {
            return Err(EINVAL);
        }
        oparg = 1 << oparg;
    }
    let apply = |old: u32| -> Option<u32> {
        let a = oparg as u32;
        Some(match op & 7 {
            0 => a,             // SET
            1 => old.wrapping_add(a), // ADD
            2 => old | a,       // OR
            3 => old & !a,      // ANDN
            4 => old ^ a,       // XOR
            _ => return None,
        })
    };
    if apply(0).is_none() || cmp > 5 {
        return Err(ENOSYS);
    }
    let woken;
    {
        let mut q = TABLE.lock();
        let old = w2.fetch_update(Ordering::SeqCst, Ordering::SeqCst, apply).map_err(|_| ENOSYS)? as i32;
        let hit = match cmp {
            0 => old == cmparg,
            1 => old != cmparg,
            2 => old < cmparg,
            3 => old <= cmparg,
            4 => old > cmparg,
            _ => old >= cmparg,
        };
        let mut v = q.wake(key1, n as usize, FUTEX_BITSET_MATCH_ANY);
        if hit {
            v.extend(q.wake(key2, n2 as usize, FUTEX_BITSET_MATCH_ANY));
        }
        woken = v;
    }
    for x in &woken {
        sched::wake(x);
    }
    Ok(woken.len() as u64)
}

use super::futex_queue::sign_extend12;

// ---- robust futexes ---------------------------------------------------------

const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Linux's ROBUST_LIST_LIMIT: a corrupt or circular list ends here.
const ROBUST_LIST_LIMIT: usize = 2048;

/// The thread is exiting: mark the robust futexes it still holds as
/// OWNER_DIED and wake one waiter of each (Linux's exit_robust_list).
/// `struct robust_list_head { next; long futex_offset; list_op_pending; }`.
pub fn exit_robust_list(t: &Thread) {
    let head = t.robust_list.load(Ordering::Relaxed);
    if head == 0 || t.robust_len.load(Ordering::Relaxed) != 24 {
        return;
    }
    let read = |va: u64| t.process.aspace.lock().read_u64(va);
    let (Ok(mut entry), Ok(offset), Ok(pending)) = (read(head), read(head + 8), read(head + 16)) else {
        return;
    };
    let offset = offset as i64;
    let mut n = 0;
    while entry != head && entry != 0 && n < ROBUST_LIST_LIMIT {
        let next = read(entry);
        if entry != pending {
            handle_died(t, entry.wrapping_add(offset as u64));
        }
        match next {
            Ok(nx) => entry = nx,
            Err(_) => break,
        }
        n += 1;
    }
    if pending != 0 {
        handle_died(t, pending.wrapping_add(offset as u64));
    }
}

fn handle_died(t: &Thread, uaddr: u64) {
    let Ok((w, key)) = word(t, uaddr, true) else { return };
    let r = w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        (v & FUTEX_TID_MASK == t.tid()).then_some((v & FUTEX_WAITERS) | FUTEX_OWNER_DIED)
    });
    if let Ok(old) = r {
        if old & FUTEX_WAITERS != 0 {
            wake_key(key, 1, FUTEX_BITSET_MATCH_ANY);
        }
    }
}
