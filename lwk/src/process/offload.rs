//! Offloading: a call the LWK does not handle goes to the thread's proxy in
//! `mcexec` through its offload slot (ARCHITECTURE.md §5), which executes
//! it on Linux with the raw arguments.
//!
//! Hot path: write the request, publish REQUEST, ring the process doorbell
//! only if the proxy declared it sleeps, then spin on the slot. After
//! [`SPIN_US`] the thread yields its CPU (`sched`); the scheduler resumes it
//! when the slot is DONE, halting meanwhile with `lwk_waiting` set so the
//! proxy's irqfd wakes the CPU.

use core::ptr::addr_of_mut;
use core::sync::atomic::{fence, Ordering};

use ihk_abi::offload::{OffloadCall, SLOT_DONE, SLOT_IDLE, SLOT_REQUEST};

use crate::arch::x86_64::idt::TrapFrame;
use crate::errno::*;
use ihk_abi::linux::sys;
use crate::process::{sched, Thread, ThreadState};

/// How long a thread spins for its answer before yielding the CPU.
pub const SPIN_US: u64 = 50;

const SIGPIPE: u32 = 13;

/// Offload `nr` with `args` for thread `t` and wait for the result (a raw
/// value: negative errno on failure). Returns -EINTR without an answer if
/// the process is ended meanwhile.
pub fn call(t: &Thread, nr: u64, args: [u64; 6]) -> i64 {
    call_interruptible(t, nr, args).0
}

/// What the proxy wrote besides `result` when it answered a call that
/// returns more (`OffloadCall::UtiRun`: the forwarded call's arguments in
/// `args`, the program's stack pointer in `number`).
#[derive(Clone, Copy, Default)]
pub struct Reply {
    pub args: [u64; 6],
    pub sp: u64,
}

/// As [`call`], also returning the slot's [`Reply`] fields.
pub fn call_with_reply(t: &Thread, nr: u64, args: [u64; 6]) -> (i64, Reply) {
    let mut reply = Reply::default();
    let (r, _) = call_inner(t, nr, args, Some(&mut reply));
    (r, reply)
}

/// As [`call`]; also says whether the proxy was asked to interrupt the
/// call for a signal.
fn call_interruptible(t: &Thread, nr: u64, args: [u64; 6]) -> (i64, bool) {
    call_inner(t, nr, args, None)
}

fn call_inner(t: &Thread, nr: u64, args: [u64; 6], reply: Option<&mut Reply>) -> (i64, bool) {
    let p = &t.process;
    if p.is_dying() {
        return (-(EINTR.0 as i64), false);
    }
    let mut interrupted = false;
    p.in_flight.fetch_add(1, Ordering::AcqRel);
    let seq = p.map_seq();
    let slot = p.thread_slot(t.slot);
    let sp = p.thread_slot_ptr(t.slot);
    // SAFETY: the slot is IDLE and ours; the proxy reads the payload only
    // after the Release store of REQUEST below.
    unsafe {
        addr_of_mut!((*sp).number).write_volatile(nr);
        addr_of_mut!((*sp).args).write_volatile(args);
        addr_of_mut!((*sp).map_seq).write_volatile(seq);
    }
    slot.cpu.store(t.cpu(), Ordering::Relaxed);
    slot.lwk_waiting.store(0, Ordering::Relaxed);
    slot.state.store(SLOT_REQUEST, Ordering::Release);
    fence(Ordering::SeqCst);
    if slot.host_sleeping.load(Ordering::Relaxed) != 0 {
        crate::process::service::ring_host(p.slot_index);
    }
    let deadline = crate::arch::x86_64::tsc::now() + us_to_ticks(SPIN_US);
    let mut answered = false;
    let mut asked_interrupt = false;
    loop {
        if slot.state.load(Ordering::Acquire) == SLOT_DONE {
            answered = true;
            break;
        }
        if p.is_dying() {
            break;
        }
        if crate::arch::x86_64::tsc::now() > deadline {
            if t.leave.load(Ordering::Acquire) && !asked_interrupt {
                // Another thread's execve ends this one: the proxy stops
                // the call (the slot must be idle before the thread ends).
                slot.interrupt.store(1, Ordering::Release);
                crate::process::service::ring_host(p.slot_index);
                asked_interrupt = true;
            }
            // Ask the proxy to ring this CPU when it answers: another
            // thread may compute here meanwhile (the CPU need not halt).
            slot.lwk_waiting.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if slot.state.load(Ordering::Acquire) == SLOT_DONE {
                continue;
            }
            t.set_state(ThreadState::WaitingOffload);
            sched::yield_now(t);
            continue;
        }
        core::hint::spin_loop();
    }
    let r = if answered {
        // SAFETY: the proxy wrote `result` before the Release store of DONE.
        let r = unsafe { addr_of_mut!((*sp).result).read_volatile() };
        if let Some(reply) = reply {
            // SAFETY: as `result`, written before DONE; the slot is ours
            // until we set it IDLE.
            unsafe {
                reply.args = addr_of_mut!((*sp).args).read_volatile();
                reply.sp = addr_of_mut!((*sp).number).read_volatile();
            }
        }
        interrupted = slot.interrupt.load(Ordering::Relaxed) != 0;
        slot.lwk_waiting.store(0, Ordering::Relaxed);
        slot.interrupt.store(0, Ordering::Relaxed);
        slot.state.store(SLOT_IDLE, Ordering::Release);
        r
    } else {
        -(EINTR.0 as i64)
    };
    if p.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
        // Memory freed meanwhile can go back now (unless the caller holds
        // the address space: then its next change flushes it).
        if let Some(mut a) = p.aspace.try_lock() {
            a.flush_deferred();
        }
    }
    (r, interrupted)
}

/// Zero new user memory `[pa, pa+len)`: by the calling thread's proxy
/// (native memory speed on the host; kernel code may run much slower, e.g.
/// under a nested hypervisor's instruction emulation), else here.
pub fn zero_user(pa: u64, len: u64) {
    if let Some(t) = sched::current() {
        if call(t, OffloadCall::ZeroPhys as u64, [pa, len, 0, 0, 0, 0]) == 0 {
            return;
        }
    }
    crate::mm::phys::zero(pa, len);
}

/// Copy `len` bytes of guest-physical memory from `src` to `dst`, by the
/// calling thread's proxy (see [`zero_user`]), else here.
pub fn copy_phys(dst: u64, src: u64, len: u64) -> Result<(), Errno> {
    if let Some(t) = sched::current() {
        let r = call(t, OffloadCall::CopyPhys as u64, [dst, src, len, 0, 0, 0]);
        if r == 0 {
            return Ok(());
        }
        if r == -(EINTR.0 as i64) {
            return Err(EINTR);
        }
    }
    // SAFETY: both ranges are guest memory owned by the caller (a fork
    // child's new memory, its parent's waiting in fork).
    unsafe {
        core::ptr::copy(crate::mm::phys::to_virt(src), crate::mm::phys::to_virt(dst), len as usize)
    };
    Ok(())
}

/// Copy `len` bytes of kept file `handle` (`OffloadCall::KeepFile`) from
/// `off` into guest-physical `[pa, pa+len)` by the calling thread's proxy:
/// bytes copied (0 past the kept size).
pub fn read_file(handle: i32, pa: u64, len: u64, off: u64) -> Result<u64, Errno> {
    let t = sched::current().ok_or(EIO)?;
    let r = call(t, OffloadCall::ReadKept as u64, [handle as u64, pa, len, off, 0, 0]);
    if r < 0 {
        Err(Errno((-r) as i32))
    } else {
        Ok(r as u64)
    }
}

fn us_to_ticks(us: u64) -> u64 {
    let khz = crate::boot_params::get().tsc_khz;
    us * khz / 1000
}

/// A system call the LWK does not handle (the table's `offload` entry).
pub fn syscall(f: &mut TrapFrame) -> SysResult {
    let t = sched::current().expect("syscall without a thread");
    let nr = f.vector;
    let args = f.syscall_args();
    // Buffers on the stack below what the program touched so far must be
    // backed before the proxy writes them through the mirror.
    {
        let mut a = t.process.aspace.lock();
        let sp = f.rsp.saturating_sub(4096);
        // Usually mapped already: the table walk spares the VMA lookup.
        if !a.is_mapped_now(sp) && a.vma_at(sp).is_none() {
            a.grow_stack(sp);
        }
        fault_in_args(&mut a, nr, &args);
    }
    let (r, interrupted) = call_interruptible(t, nr, args);
    if r == -(EINTR.0 as i64) && interrupted {
        // Interrupted for a signal: restarted after the handler if it has
        // SA_RESTART (signal::deliver), else the program sees EINTR.
        t.restart_nr.store(nr, Ordering::Relaxed);
    }
    if r == -(EPIPE.0 as i64)
        && matches!(nr, sys::SYS_write | sys::SYS_pwrite64 | sys::SYS_writev | sys::SYS_sendto | sys::SYS_sendmsg | sys::SYS_pwritev | sys::SYS_sendmmsg | sys::SYS_pwritev2)
    {
        // mcexec ignores SIGPIPE so that the LWK can apply the program's
        // disposition (MSG_NOSIGNAL sends do not raise it).
        let nosignal = matches!(nr, sys::SYS_sendto | sys::SYS_sendmsg | sys::SYS_sendmmsg) && flags_have_nosignal(nr, &args);
        if !nosignal {
            let info = crate::process::signal::SigInfo::from(t, crate::process::signal::SI_USER);
            crate::process::signal::send_to_thread(t, SIGPIPE, info);
        }
    }
    Ok(r as u64)
}

/// Largest buffer backed ahead of one offloaded call.
const MAX_FAULT_IN: u64 = 64 << 20;
/// Most iovecs looked at in one call.
const MAX_IOVECS: u64 = 64;

/// Back the on-demand memory (private file mappings, MAP_NORESERVE) that
/// the call's buffers lie in: the proxy reaches them through the mirror,
/// where a page not backed yet is an EFAULT, not a fault. A pointer
/// argument followed by a plausible length covers that length; the
/// buffers of an iovec array (readv/writev family, sendmsg/recvmsg) too.
/// A buffer is looked at one page per granule and per VMA (memory is
/// backed a granule at a time); a long one on a partition without large
/// pages is faulted in without looking.
fn fault_in_args(a: &mut crate::mm::aspace::AddressSpace, nr: u64, args: &[u64; 6]) {
    use ihk_abi::offload::{USER_END, USER_START};
    let buf = |a: &mut crate::mm::aspace::AddressSpace, p: u64, len: u64| {
        if !(USER_START..USER_END).contains(&p) {
            return;
        }
        let len = len.clamp(1, MAX_FAULT_IN);
        if a.is_backed_now(p, len, 64) != Some(true) {
            let _ = a.fault_in(p, len);
        }
    };
    for i in 0..6 {
        let len = args.get(i + 1).copied().filter(|&n| n <= MAX_FAULT_IN).unwrap_or(1);
        buf(a, args[i], len);
    }
    let iov = match nr {
        sys::SYS_readv | sys::SYS_writev | sys::SYS_preadv | sys::SYS_pwritev | sys::SYS_preadv2 | sys::SYS_pwritev2 => {
            Some((args[1], args[2]))
        }
        sys::SYS_sendmsg | sys::SYS_recvmsg => {
            // struct msghdr: msg_iov at 16, msg_iovlen at 24.
            match (a.read_u64(args[1].wrapping_add(16)), a.read_u64(args[1].wrapping_add(24))) {
                (Ok(v), Ok(n)) => Some((v, n)),
                _ => None,
            }
        }
        _ => None,
    };
    if let Some((v, n)) = iov {
        for i in 0..n.min(MAX_IOVECS) {
            if let (Ok(base), Ok(len)) = (a.read_u64(v + i * 16), a.read_u64(v + i * 16 + 8)) {
                buf(a, base, len);
            }
        }
    }
}

fn flags_have_nosignal(nr: u64, args: &[u64; 6]) -> bool {
    const MSG_NOSIGNAL: u64 = 0x4000;
    let flags = match nr {
        sys::SYS_sendto | sys::SYS_sendmsg => args[if nr == sys::SYS_sendto { 3 } else { 2 }],
        sys::SYS_sendmmsg => args[3],
        _ => 0,
    };
    flags & MSG_NOSIGNAL != 0
}
