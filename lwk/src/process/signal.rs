//! Signals, handled in the LWK as in McKernel: dispositions, masks and
//! pending sets live here; delivery happens on the way back to user mode
//! (`trap::return_to_user`) with Linux's x86-64 `rt_sigframe`, and
//! `rt_sigreturn` restores it. Signals come from the program itself
//! (kill/tgkill/raise, faults, SIGPIPE after an offloaded write), from
//! other threads, or from `mcexec` (every catchable signal sent to it,
//! `ihk_abi::offload::FORWARDED_SIGNALS`). A process-directed signal is
//! pending on the process and taken by one thread that does not block it
//! (woken or kicked to take it); a thread-directed one by that thread.
//!
//! Not done yet: stop/continue job control (SIGSTOP and friends are
//! ignored), siginfo details beyond signo/code/pid/uid and fault address,
//! real-time signal queueing (one pending instance per signal).

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::sigframe::{self, *};
use super::{Process, Thread};
use crate::arch::x86_64::idt::TrapFrame;
use crate::errno::*;
use crate::arch::x86_64::entry::{USER_CS, USER_DS};

pub const SIGKILL: u32 = 9;
pub const SIGSEGV: u32 = 11;
pub const SIGSTOP: u32 = 19;
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub(super) const SS_ONSTACK: u32 = 1;
pub(super) const SS_DISABLE: u32 = 2;

/// `struct sigaction` as the kernel ABI has it (x86-64).
#[derive(Clone, Copy, Debug, Default)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// What the receiver's `siginfo_t` says of a pending signal (one pending
/// instance per signal number, so one record each).
#[derive(Clone, Copy, Debug, Default)]
pub struct SigInfo {
    /// `si_code`: SI_USER 0, SI_KERNEL 0x80, SI_QUEUE -1, SI_TKILL -6, or
    /// a fault's code (SEGV_MAPERR 1, ...).
    pub code: i32,
    pub pid: u32,
    pub uid: u32,
    /// Fault address (SIGSEGV, SIGBUS, SIGILL, SIGFPE).
    pub addr: u64,
    /// `si_value` (SI_QUEUE, SI_TIMER).
    pub value: u64,
    /// `si_timerid` and `si_overrun` (SI_TIMER, `ptimer`).
    pub timerid: i32,
    pub overrun: i32,
}

pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;
pub const SI_TIMER: i32 = -2;

impl SigInfo {
    /// Sent by the calling thread's process (kill, tgkill, raise).
    pub fn from(t: &Thread, code: i32) -> SigInfo {
        SigInfo { code, pid: t.process.pid, uid: t.process.start.uid, ..SigInfo::default() }
    }

    /// The bytes of a `siginfo_t` (128) for signal `sig`.
    pub fn to_bytes(&self, sig: u32) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&sig.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        if matches!(sig, 4 | 7 | 8 | 11) && self.code > 0 {
            b[16..24].copy_from_slice(&self.addr.to_le_bytes());
        } else if self.code == SI_TIMER {
            b[16..20].copy_from_slice(&self.timerid.to_le_bytes());
            b[20..24].copy_from_slice(&self.overrun.to_le_bytes());
            b[24..32].copy_from_slice(&self.value.to_le_bytes());
        } else {
            b[16..20].copy_from_slice(&self.pid.to_le_bytes());
            b[20..24].copy_from_slice(&self.uid.to_le_bytes());
            if self.code < 0 {
                // sigqueue, mq_notify, AIO: the sender's si_value.
                b[24..32].copy_from_slice(&self.value.to_le_bytes());
            }
        }
        b
    }
}

/// Dispositions of a process (its pending set is `Process::sig_pending`).
pub struct SignalState {
    pub actions: [SigAction; 64],
}

impl SignalState {
    pub fn new() -> SignalState {
        SignalState { actions: [SigAction::default(); 64] }
    }

    /// A new program's dispositions: default, except the signals of
    /// `ignored` (bit n-1 for signal n) that its starter left ignored, as
    /// execve keeps them (SIGKILL and SIGSTOP cannot be).
    pub fn inherited(ignored: u64) -> SignalState {
        let mut st = SignalState::new();
        for (n, a) in st.actions.iter_mut().enumerate() {
            if ignored & !UNBLOCKABLE & (1 << n) != 0 {
                a.handler = SIG_IGN;
            }
        }
        st
    }
}

/// What a signal does by default.
#[derive(PartialEq, Eq)]
pub(super) enum Default {
    Terminate,
    Ignore,
}

pub(super) fn default_action(sig: u32) -> Default {
    match sig {
        // SIGCHLD, SIGCONT, SIGURG, SIGWINCH, and the stop signals (no job
        // control on the LWK yet).
        17 | 18 | 23 | 28 | 19 | 20 | 21 | 22 => Default::Ignore,
        _ => Default::Terminate,
    }
}

pub(super) fn bit(sig: u32) -> u64 {
    1u64 << (sig - 1)
}

/// Signals that cannot be caught, blocked or ignored.
pub(super) const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// Would `sig` be discarded right away? As Linux's `sig_ignored`: not
/// while the thread it is for (`target`; a process's main thread) blocks
/// it or waits for it in sigwaitinfo, since its disposition may change
/// before it is taken (glibc's SIGEV_THREAD helper waits for its timer
/// signal blocked, whatever the disposition the program inherited).
fn ignored(p: &Process, sig: u32, target: Option<&Thread>) -> bool {
    if sig == SIGKILL {
        return false;
    }
    if target.is_some_and(|t| (t.sig_mask.load(Ordering::Relaxed) | t.sigwait_set.load(Ordering::Acquire)) & bit(sig) != 0) {
        return false;
    }
    let a = p.signals.lock().actions[(sig - 1) as usize];
    a.handler == SIG_IGN || (a.handler == SIG_DFL && default_action(sig) == Default::Ignore)
}

/// Send `sig` to process `p` (forwarded by mcexec, or kill()): pending on
/// the process, taken by one thread that does not block it.
pub fn send_to_process(p: &Arc<Process>, sig: u32, info: SigInfo) {
    if sig == 0 || sig > 64 || ignored(p, sig, p.thread(p.pid).as_deref()) {
        return;
    }
    if sig == SIGKILL {
        super::service::kill_process(p, sig, false);
        return;
    }
    p.sig_info.lock()[(sig - 1) as usize] = info;
    p.sig_pending.fetch_or(bit(sig), Ordering::AcqRel);
    super::sigfd::publish(p);
    let target = {
        let threads = p.threads.lock();
        // Utility threads too: their proxy runs the handler on Linux
        // (uti_signal.rs).
        let unblocked = |t: &&Arc<Thread>| t.sig_mask.load(Ordering::Relaxed) & bit(sig) == 0;
        // The current thread if it can take it (no wake-up needed), else
        // the first that does not block it.
        let cur = super::sched::current().map(|c| c as *const Thread);
        threads
            .iter()
            .filter(unblocked)
            .find(|t| Some(Arc::as_ptr(t)) == cur)
            .or_else(|| threads.iter().find(unblocked))
            .cloned()
    };
    if let Some(t) = target {
        wake_for_signal(&t, sig);
    }
}

/// Send `sig` to thread `t` (tgkill, faults, SIGPIPE).
pub fn send_to_thread(t: &Thread, sig: u32, info: SigInfo) {
    if sig == 0 || sig > 64 || ignored(&t.process, sig, Some(t)) {
        return;
    }
    if sig == SIGKILL {
        super::service::kill_process(&t.process, sig, false);
        return;
    }
    t.sig_info.lock()[(sig - 1) as usize] = info;
    t.sig_pending.fetch_or(bit(sig), Ordering::AcqRel);
    super::sigfd::publish(&t.process);
    if t.sig_mask.load(Ordering::Relaxed) & bit(sig) == 0 {
        wake_for_signal(t, sig);
    }
}

/// `t` does not block `sig`, now pending for it: if the signal's default
/// kills, the process ends now; else make `t` notice it (interrupt its
/// offloaded call, wake it from a wait, or kick its CPU out of user mode).
fn wake_for_signal(t: &Thread, sig: u32) {
    let p = &t.process;
    let a = p.signals.lock().actions[(sig - 1) as usize];
    let waited_for = t.sigwait_set.load(Ordering::Acquire) & bit(sig) != 0;
    if a.handler == SIG_DFL && default_action(sig) == Default::Terminate && !waited_for {
        super::service::kill_process(p, sig, false);
        return;
    }
    if super::sched::current().is_some_and(|c| core::ptr::eq(c, t)) {
        return; // takes it on its way back to user mode
    }
    let s = p.thread_slot(t.slot);
    if s.state.load(Ordering::Acquire) != ihk_abi::offload::SLOT_IDLE {
        s.interrupt.store(1, Ordering::Release);
        super::service::ring_host(p.slot_index);
    }
    super::sched::kick_thread(t);
}

/// Is `sig` pending for `t` (its own or its process's)?
pub fn is_pending(t: &Thread, sig: u32) -> bool {
    (t.sig_pending.load(Ordering::Acquire) | t.process.sig_pending.load(Ordering::Acquire)) & bit(sig) != 0
}

/// Remove and return the lowest signal of `set` pending for `t` (its own
/// first, then its process's), with what its siginfo says.
pub fn dequeue_from(t: &Thread, set: u64) -> Option<(u32, SigInfo)> {
    let p = &t.process;
    for (pending, infos) in [(&t.sig_pending, &t.sig_info), (&p.sig_pending, &p.sig_info)] {
        let hit = pending.load(Ordering::Acquire) & set;
        if hit != 0 {
            let sig = hit.trailing_zeros() + 1;
            let mut info = infos.lock()[(sig - 1) as usize];
            if pending.fetch_and(!bit(sig), Ordering::AcqRel) & bit(sig) != 0 {
                if info.code == SI_TIMER {
                    // Its overrun count, and a periodic timer's next expiry.
                    super::ptimer::delivered(t, &mut info);
                }
                super::sigfd::publish(p);
                return Some((sig, info));
            }
        }
    }
    None
}

/// rt_sigtimedwait: wait (until `deadline`, TSC, 0: none; `poll`: not at
/// all) for a signal of `set`; returns it, removed from the pending sets.
/// While waiting, the signals of `set` are unblocked for the thread so that
/// process-directed ones pick it (as Linux's real_blocked).
pub fn timed_wait(t: &Thread, set: u64, deadline: u64, poll: bool) -> Result<(u32, SigInfo), Errno> {
    let set = set & !UNBLOCKABLE;
    let old = t.sig_mask.load(Ordering::Relaxed);
    loop {
        if let Some(hit) = dequeue_from(t, set) {
            return Ok(hit);
        }
        if poll || (deadline != 0 && crate::arch::x86_64::tsc::now() >= deadline) {
            return Err(EAGAIN);
        }
        if t.must_leave() {
            return Err(EINTR);
        }
        t.sigwait_set.store(set, Ordering::Release);
        t.sig_mask.store(old & !set, Ordering::Relaxed);
        t.woken.store(false, Ordering::Relaxed);
        super::sched::wait_event(t, deadline);
        t.sig_mask.store(old, Ordering::Relaxed);
        t.sigwait_set.store(0, Ordering::Release);
        if let Some(hit) = dequeue_from(t, set) {
            return Ok(hit);
        }
        if has_deliverable(t) {
            return Err(EINTR); // another signal: its handler runs
        }
    }
}

/// Does `t` have a pending signal it does not block?
pub fn has_deliverable(t: &Thread) -> bool {
    let mask = t.sig_mask.load(Ordering::Relaxed) & !UNBLOCKABLE;
    (t.sig_pending.load(Ordering::Acquire) | t.process.sig_pending.load(Ordering::Acquire)) & !mask != 0
}

/// rt_sigsuspend: wait with `mask` until a signal is taken; always EINTR.
/// The handler's frame records the mask from before the call.
pub fn suspend(t: &Thread, mask: u64) -> Result<u64, Errno> {
    let old = t.sig_mask.swap(mask & !UNBLOCKABLE, Ordering::Relaxed);
    t.saved_sigmask.store(old, Ordering::Relaxed);
    while !has_deliverable(t) && !t.process.is_dying() {
        t.set_state(super::ThreadState::WaitingSignal);
        super::sched::yield_now(t);
    }
    Err(EINTR)
}

/// The next signal `t` should take (removed from its pending set).
pub(super) fn dequeue(t: &Thread) -> Option<(u32, SigInfo)> {
    let mask = t.sig_mask.load(Ordering::Relaxed) & !UNBLOCKABLE;
    dequeue_from(t, !mask)
}

/// Calls that a handler interrupts with EINTR even under SA_RESTART
/// (signal(7), "never restarted"): sleeps and waits with a timeout, whose
/// restart would start the full time again.
pub(super) fn never_restarted(nr: u64) -> bool {
    use ihk_abi::linux::sys;
    matches!(
        nr,
        sys::SYS_nanosleep
            | sys::SYS_clock_nanosleep
            | sys::SYS_poll
            | sys::SYS_ppoll
            | sys::SYS_select
            | sys::SYS_pselect6
            | sys::SYS_epoll_wait
            | sys::SYS_epoll_pwait
            | sys::SYS_epoll_pwait2
            | sys::SYS_msgrcv
            | sys::SYS_msgsnd
            | sys::SYS_semop
            | sys::SYS_semtimedop
            | sys::SYS_io_getevents
            | sys::SYS_io_pgetevents
    )
}

/// Take pending signals on the way back to user mode. `restart`: the
/// frame is a system call interrupted by a signal (its number).
pub fn deliver(t: &Thread, f: &mut TrapFrame, mut restart: Option<u64>) {
    while let Some((sig, info)) = dequeue(t) {
        let a = t.process.signals.lock().actions[(sig - 1) as usize];
        if a.handler == SIG_IGN {
            continue;
        }
        if a.handler == SIG_DFL {
            if default_action(sig) == Default::Ignore {
                continue;
            }
            super::service::exit_process(t, 0, sig);
        }
        if let Some(nr) = restart.take() {
            if a.flags & SA_RESTART != 0 && !never_restarted(nr) {
                f.rax = nr;
                f.rip -= 2;
            } else {
                f.rax = (-(EINTR.0 as i64)) as u64;
            }
        }
        if a.flags & SA_RESETHAND != 0 {
            t.process.signals.lock().actions[(sig - 1) as usize] = SigAction::default();
        }
        if setup_frame(t, f, sig, &info, &a).is_err() {
            // Linux: force SIGSEGV when the frame cannot be written.
            super::service::exit_process(t, 0, SIGSEGV);
        }
        let mut m = t.sig_mask.load(Ordering::Relaxed) | a.mask;
        if a.flags & SA_NODEFER == 0 {
            m |= bit(sig);
        }
        t.sig_mask.store(m & !UNBLOCKABLE, Ordering::Relaxed);
        return;
    }
    // No handler ran: an interrupted restartable call is restarted, and a
    // mask saved by sigsuspend comes back.
    if let Some(nr) = restart {
        f.rax = nr;
        f.rip -= 2;
    }
    let saved = t.saved_sigmask.swap(super::NO_SAVED_MASK, Ordering::Relaxed);
    if saved != super::NO_SAVED_MASK {
        t.sig_mask.store(saved, Ordering::Relaxed);
    }
}

// ---- the signal frame (layout: `sigframe`) -----------------------------------

/// Smallest alternate stack a handler frame fits in (AT_MINSIGSTKSZ).
pub fn min_sigstack_size() -> u64 {
    sigframe::min_stack(super::fpu::area_size())
}

fn setup_frame(t: &Thread, f: &mut TrapFrame, sig: u32, info: &SigInfo, a: &SigAction) -> Result<(), Errno> {
    let mut a_ = t.process.aspace.lock();
    let mut sp = f.rsp;
    let (alt_sp, alt_size, alt_flags) = *t_altstack(t);
    let on_alt = alt_flags & SS_DISABLE == 0 && sp > alt_sp && sp <= alt_sp + alt_size;
    if a.flags & SA_ONSTACK != 0 && alt_flags & SS_DISABLE == 0 && !on_alt {
        sp = alt_sp + alt_size;
    } else {
        sp -= 128; // red zone
    }
    let fpsize = super::fpu::area_size();
    let (fp, frame) = sigframe::place(sp, fpsize);
    // FPU state of the thread (it is in this CPU's registers: we run it).
    let mut img = alloc::vec![0u8; fpsize as usize + 64];
    let off = (64 - (img.as_ptr() as usize % 64)) % 64;
    super::fpu::save_to(img[off..].as_mut_ptr());
    let img = &mut img[off..off + fpsize as usize];
    if super::fpu::uses_xsave() {
        // fpx_sw_bytes in the legacy area's software-reserved bytes.
        img[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        img[468..472].copy_from_slice(&((fpsize + 4) as u32).to_le_bytes());
        img[472..480].copy_from_slice(&super::fpu::xcr0().to_le_bytes());
        img[480..484].copy_from_slice(&(fpsize as u32).to_le_bytes());
    }
    a_.write(fp, img)?;
    if super::fpu::uses_xsave() {
        a_.write(fp + fpsize, &FP_XSTATE_MAGIC2.to_le_bytes())?;
    }
    let mut w = [0u64; (FRAME_SIZE / 8) as usize];
    w[0] = a.restorer;
    let uc = (UCONTEXT_OFF / 8) as usize;
    w[uc] = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | if super::fpu::uses_xsave() { UC_FP_XSTATE } else { 0 };
    w[uc + 1] = 0;
    w[uc + 2] = alt_sp;
    w[uc + 3] = if alt_flags & SS_DISABLE != 0 { SS_DISABLE as u64 } else if on_alt { SS_ONSTACK as u64 } else { 0 };
    w[uc + 4] = alt_size;
    let sc = (SIGCONTEXT_OFF / 8) as usize;
    let regs = [
        f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.rdi, f.rsi, f.rbp, f.rbx, f.rdx, f.rax, f.rcx, f.rsp,
        f.rip, f.rflags,
    ];
    w[sc..sc + 18].copy_from_slice(&regs);
    w[sc + 18] = (f.cs & 0xffff) | ((f.ss & 0xffff) << 48); // cs, gs, fs, ss
    w[sc + 19] = f.error_code;
    w[sc + 20] = if f.vector < 32 { f.vector } else { 0 };
    // The mask to restore at sigreturn: sigsuspend's saved one, if any.
    let saved = t.saved_sigmask.swap(super::NO_SAVED_MASK, Ordering::Relaxed);
    let restore_mask = if saved != super::NO_SAVED_MASK { saved } else { t.sig_mask.load(Ordering::Relaxed) };
    w[sc + 21] = restore_mask;
    w[sc + 22] = 0; // cr2
    w[sc + 23] = fp;
    w[(SIGMASK_OFF / 8) as usize] = restore_mask;
    let si = (SIGINFO_OFF / 8) as usize;
    let sib = info.to_bytes(sig);
    for (i, word) in w[si..si + 16].iter_mut().enumerate() {
        *word = u64::from_le_bytes(sib[i * 8..i * 8 + 8].try_into().unwrap());
    }
    let bytes: alloc::vec::Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
    a_.write(frame, &bytes)?;
    drop(a_);
    // The handler runs with a clean FPU state.
    t.fpu.reset();
    t.fpu.restore();
    f.rsp = frame;
    f.rip = a.handler;
    f.rdi = sig as u64;
    f.rsi = frame + SIGINFO_OFF;
    f.rdx = frame + UCONTEXT_OFF;
    f.rax = 0;
    f.rflags &= !(1 << 8 | 1 << 10); // TF, DF
    f.cs = USER_CS;
    f.ss = USER_DS;
    Ok(())
}

fn t_altstack(t: &Thread) -> spin::MutexGuard<'_, (u64, u64, u32)> {
    t.altstack.lock()
}

/// rt_sigreturn: restore the frame below `f.rsp`. Returns the restored rax.
pub fn sigreturn(t: &Thread, f: &mut TrapFrame) -> Result<u64, Errno> {
    let frame = f.rsp - 8;
    let mut a = t.process.aspace.lock();
    let mut buf = [0u8; FRAME_SIZE as usize];
    a.read(frame, &mut buf)?;
    let w = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap());
    let sc = (SIGCONTEXT_OFF / 8) as usize;
    f.r8 = w(sc);
    f.r9 = w(sc + 1);
    f.r10 = w(sc + 2);
    f.r11 = w(sc + 3);
    f.r12 = w(sc + 4);
    f.r13 = w(sc + 5);
    f.r14 = w(sc + 6);
    f.r15 = w(sc + 7);
    f.rdi = w(sc + 8);
    f.rsi = w(sc + 9);
    f.rbp = w(sc + 10);
    f.rbx = w(sc + 11);
    f.rdx = w(sc + 12);
    f.rax = w(sc + 13);
    f.rcx = w(sc + 14);
    f.rsp = w(sc + 15);
    f.rip = w(sc + 16);
    // User-changeable flags only (CF PF AF ZF SF TF DF OF AC ID... as
    // Linux's FIX_EFLAGS), interrupts stay on.
    const FIX: u64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000 | 0x4000 | 0x1_0000;
    f.rflags = (f.rflags & !FIX) | (w(sc + 17) & FIX) | 0x200;
    f.cs = USER_CS;
    f.ss = USER_DS;
    let mask = w((SIGMASK_OFF / 8) as usize);
    t.sig_mask.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
    let fp = w(sc + 23);
    if fp != 0 {
        let size = super::fpu::area_size() as usize;
        let mut img = alloc::vec![0u8; size + 64];
        let off = (64 - (img.as_ptr() as usize % 64)) % 64;
        a.read(fp, &mut img[off..off + size])?;
        let im = &img[off..off + size];
        let mxcsr = u32::from_le_bytes(im[24..28].try_into().unwrap());
        let valid = mxcsr & 0xffff_0000 == 0
            && (!super::fpu::uses_xsave() || {
                let bv = u64::from_le_bytes(im[512..520].try_into().unwrap());
                bv & !super::fpu::xcr0() == 0 && im[520..576].iter().all(|&b| b == 0)
            });
        if !valid {
            return Err(EFAULT);
        }
        super::fpu::restore_from(img[off..].as_ptr());
    }
    drop(a);
    restore_altstack(t, frame + UCONTEXT_OFF + 16, f.rsp)?;
    Ok(f.rax)
}

/// rt_sigreturn's last step, as Linux's `restore_altstack`: the frame's
/// `uc_stack` (at `stack`) becomes the thread's alternate stack, checked
/// against the restored stack pointer `sp`. A refusal (EPERM on the stack,
/// EINVAL, ENOMEM) leaves it as it was; only EFAULT (a bad frame) counts.
pub fn restore_altstack(t: &Thread, stack: u64, sp: u64) -> Result<(), Errno> {
    match sigaltstack(t, stack, 0, sp) {
        Err(EFAULT) => Err(EFAULT),
        _ => Ok(()),
    }
}

// ---- system-call helpers -----------------------------------------------------

/// rt_sigaction(sig, act, oact).
pub fn sigaction(t: &Thread, sig: u64, act: u64, oact: u64) -> Result<u64, Errno> {
    if sig == 0 || sig > 64 {
        return Err(EINVAL);
    }
    let sig = sig as u32;
    let mut a = t.process.aspace.lock();
    let new = if act != 0 {
        let mut b = [0u8; 32];
        a.read(act, &mut b)?;
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(EINVAL);
        }
        Some(SigAction { handler: w(0), flags: w(1), restorer: w(2), mask: w(3) & !UNBLOCKABLE })
    } else {
        None
    };
    let old = {
        let mut st = t.process.signals.lock();
        let old = st.actions[(sig - 1) as usize];
        if let Some(n) = new {
            st.actions[(sig - 1) as usize] = n;
            // Setting SIG_IGN (or DFL of an ignored signal) discards pending ones.
            if n.handler == SIG_IGN || (n.handler == SIG_DFL && default_action(sig) == Default::Ignore) {
                t.process.sig_pending.fetch_and(!bit(sig), Ordering::AcqRel);
                super::sigfd::publish(&t.process);
            }
        }
        old
    };
    if oact != 0 {
        let b: alloc::vec::Vec<u8> =
            [old.handler, old.flags, old.restorer, old.mask].iter().flat_map(|x| x.to_le_bytes()).collect();
        a.write(oact, &b)?;
    }
    Ok(0)
}

/// rt_sigprocmask(how, set, oset).
pub fn sigprocmask(t: &Thread, how: u64, set: u64, oset: u64) -> Result<u64, Errno> {
    let mut a = t.process.aspace.lock();
    let old = t.sig_mask.load(Ordering::Relaxed);
    if set != 0 {
        let s = a.read_u64(set)?;
        let new = match how {
            0 => old | s,  // SIG_BLOCK
            1 => old & !s, // SIG_UNBLOCK
            2 => s,        // SIG_SETMASK
            _ => return Err(EINVAL),
        };
        t.sig_mask.store(new & !UNBLOCKABLE, Ordering::Relaxed);
    }
    if oset != 0 {
        a.write_u64(oset, old)?;
    }
    Ok(0)
}

/// sigaltstack(ss, old_ss).
pub fn sigaltstack(t: &Thread, ss: u64, old: u64, user_sp: u64) -> Result<u64, Errno> {
    let mut a = t.process.aspace.lock();
    let mut st = t.altstack.lock();
    let (sp, size, flags) = *st;
    let on = flags & SS_DISABLE == 0 && user_sp > sp && user_sp <= sp + size;
    if old != 0 {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&sp.to_le_bytes());
        let f = if on { SS_ONSTACK } else { flags & SS_DISABLE };
        b[8..12].copy_from_slice(&f.to_le_bytes());
        b[16..24].copy_from_slice(&size.to_le_bytes());
        a.write(old, &b)?;
    }
    if ss != 0 {
        if on {
            return Err(EPERM);
        }
        let mut b = [0u8; 24];
        a.read(ss, &mut b)?;
        let nsp = u64::from_le_bytes(b[0..8].try_into().unwrap());
        let nflags = u32::from_le_bytes(b[8..12].try_into().unwrap());
        let nsize = u64::from_le_bytes(b[16..24].try_into().unwrap());
        if nflags & !(SS_DISABLE | (1 << 31)) != 0 {
            return Err(EINVAL);
        }
        if nflags & SS_DISABLE != 0 {
            *st = (0, 0, SS_DISABLE);
        } else {
            if nsize < min_sigstack_size() {
                return Err(ENOMEM); // as Linux for a too small stack
            }
            *st = (nsp, nsize, 0);
        }
    }
    Ok(0)
}
