//! Signals of a utility thread (docs/uti.md, `uti.rs`): `signal::deliver`
//! for a thread whose user code runs on Linux.
//!
//! The LWK keeps the thread's pending set, mask, dispositions and
//! `sigaltstack` as for any thread, and takes a signal at each of the
//! thread's visits (the return of a forwarded call or fault, or
//! `UTI_CHECK` after the proxy interrupt that a signal directed at it
//! raises). Here: default actions (ignore, or end the process), restart
//! or EINTR of an interrupted call, SA_RESETHAND, the handler's mask, and
//! the frame's room (alternate stack or below the red zone), backed here
//! so the proxy's writes find memory. The proxy builds Linux's
//! `rt_sigframe` there, because the thread's registers and FPU state are
//! on Linux ([`UtiSignal`]).
//!
//! Must not: build the frame (the registers are not here), or take a
//! signal the thread blocks.

use core::sync::atomic::Ordering;

use ihk_abi::offload::UtiSignal;

use super::signal::{self, Default, SigAction, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SIG_DFL, SIG_IGN};
use super::signal::{SIGSEGV, SS_DISABLE, SS_ONSTACK, UNBLOCKABLE};
use super::Thread;

const PAGE: u64 = 4096;

/// Fill `out` with what the proxy must do before continuing the program of
/// `t` (stack pointer `sp`; `restart`: the call interrupted for a signal).
/// False: nothing (no handler, no restart). A signal whose default action
/// ends the process ends it here.
pub fn take(t: &Thread, sp: u64, restart: Option<u64>, out: &mut UtiSignal) -> bool {
    *out = UtiSignal::default();
    while let Some((sig, info)) = signal::dequeue(t) {
        let a = t.process.signals.lock().actions[(sig - 1) as usize];
        if a.handler == SIG_IGN {
            continue;
        }
        if a.handler == SIG_DFL {
            if signal::default_action(sig) == Default::Ignore {
                continue;
            }
            super::service::exit_process(t, 0, sig);
        }
        if let Some(nr) = restart {
            // Without SA_RESTART the call's result (-EINTR) stands.
            if a.flags & SA_RESTART != 0 && !signal::never_restarted(nr) {
                out.restart = nr;
            }
        }
        if a.flags & SA_RESETHAND != 0 {
            t.process.signals.lock().actions[(sig - 1) as usize] = SigAction::default();
        }
        if room(t, sp, &a, out).is_none() {
            // Linux: SIGSEGV when the frame cannot be written.
            super::service::exit_process(t, 0, SIGSEGV);
        }
        let saved = t.saved_sigmask.swap(super::NO_SAVED_MASK, Ordering::Relaxed);
        let old = t.sig_mask.load(Ordering::Relaxed);
        out.mask = if saved != super::NO_SAVED_MASK { saved } else { old };
        out.sig = sig as u64;
        out.handler = a.handler;
        out.flags = a.flags;
        out.restorer = a.restorer;
        out.info = info.to_bytes(sig);
        let mut m = old | a.mask;
        if a.flags & SA_NODEFER == 0 {
            m |= signal::bit(sig);
        }
        t.sig_mask.store(m & !UNBLOCKABLE, Ordering::Relaxed);
        return true;
    }
    // No handler: an interrupted restartable call is restarted.
    let saved = t.saved_sigmask.swap(super::NO_SAVED_MASK, Ordering::Relaxed);
    if saved != super::NO_SAVED_MASK {
        t.sig_mask.store(saved, Ordering::Relaxed);
    }
    match restart {
        Some(nr) => {
            out.restart = nr;
            true
        }
        None => false,
    }
}

/// The program's `rt_sigreturn` on Linux, after the proxy restored its
/// registers and FPU image from the frame: the frame's mask (at `mask`)
/// and `uc_stack` (at `stack`) become the thread's, as Linux's
/// rt_sigreturn does; `sp` is the restored stack pointer. A frame the LWK
/// cannot read ends the process with SIGSEGV (Linux: a bad frame).
pub fn sigreturn(t: &Thread, mask: u64, stack: u64, sp: u64) -> i64 {
    let m = t.process.aspace.lock().read_u64(mask);
    match m.and_then(|m| {
        t.sig_mask.store(m & !UNBLOCKABLE, Ordering::Relaxed);
        signal::restore_altstack(t, stack, sp)
    }) {
        Ok(()) => 0,
        Err(e) => {
            let p = &t.process;
            crate::printk!("{}[{}]: bad signal frame in utility thread {} (on Linux)", p.comm.lock(), p.pid, t.tid());
            super::service::kill_process(p, SIGSEGV, false);
            -(e.0 as i64)
        }
    }
}

/// Where the frame goes (`out.sp`, `uc_stack`), its pages backed: the
/// LWK's own frame size must fit; one more page (Linux's FPU image may be
/// larger) is backed if it can be.
fn room(t: &Thread, sp: u64, a: &SigAction, out: &mut UtiSignal) -> Option<()> {
    let (alt_sp, alt_size, alt_flags) = *t.altstack.lock();
    let enabled = alt_flags & SS_DISABLE == 0;
    let on_alt = enabled && sp > alt_sp && sp <= alt_sp + alt_size;
    let top = if a.flags & SA_ONSTACK != 0 && enabled && !on_alt { alt_sp + alt_size } else { sp - 128 };
    out.sp = top;
    out.alt_sp = alt_sp;
    out.alt_size = alt_size;
    out.alt_flags = if !enabled { SS_DISABLE as u64 } else if on_alt { SS_ONSTACK as u64 } else { 0 };
    let need = signal::min_sigstack_size();
    let floor = if enabled && top > alt_sp && top <= alt_sp + alt_size { alt_sp } else { 0 };
    let mut aspace = t.process.aspace.lock();
    let mut page = (top - 1) & !(PAGE - 1);
    let (must, may) = (top.checked_sub(need)?, top.saturating_sub(need + PAGE).max(floor));
    loop {
        let ok = aspace.fault(page, true, false);
        if !ok && page + PAGE > must {
            return None;
        }
        if !ok || page <= may || page < PAGE {
            return Some(());
        }
        page -= PAGE;
    }
}
