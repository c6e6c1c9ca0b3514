//! Signal system calls, local (the state is in `process::signal`):
//! rt_sigaction, rt_sigprocmask, rt_sigreturn, rt_sigpending, sigaltstack,
//! and kill/tkill/tgkill aimed at the calling process (others are offloaded
//! to reach host processes).

use core::sync::atomic::Ordering;

use super::errno::*;
use super::{args, current, offload};
use crate::arch::x86_64::idt::TrapFrame;
use crate::process::signal as sig;

pub fn rt_sigaction(f: &mut TrapFrame) -> SysResult {
    let [signo, act, oact, size, ..] = args(f);
    if size != 8 {
        return Err(EINVAL);
    }
    sig::sigaction(current(), signo, act, oact)
}

pub fn rt_sigprocmask(f: &mut TrapFrame) -> SysResult {
    let [how, set, oset, size, ..] = args(f);
    if size != 8 {
        return Err(EINVAL);
    }
    sig::sigprocmask(current(), how, set, oset)
}

pub fn rt_sigreturn(f: &mut TrapFrame) -> SysResult {
    let t = current();
    match sig::sigreturn(t, f) {
        Ok(rax) => Ok(rax),
        Err(_) => crate::process::service::exit_process(t, 0, sig::SIGSEGV),
    }
}

pub fn rt_sigpending(f: &mut TrapFrame) -> SysResult {
    let [set, size, ..] = args(f);
    if size != 8 {
        return Err(EINVAL);
    }
    let t = current();
    let pending = t.sig_pending.load(Ordering::Relaxed) | t.process.sig_pending.load(Ordering::Relaxed);
    t.process.aspace.lock().write_u64(set, pending)?;
    Ok(0)
}

pub fn rt_sigsuspend(f: &mut TrapFrame) -> SysResult {
    let [mask, size, ..] = args(f);
    if size != 8 {
        return Err(EINVAL);
    }
    let t = current();
    let m = t.process.aspace.lock().read_u64(mask)?;
    sig::suspend(t, m)
}

pub fn sigaltstack(f: &mut TrapFrame) -> SysResult {
    let [ss, old, ..] = args(f);
    sig::sigaltstack(current(), ss, old, f.rsp)
}

fn check_sig(s: u64) -> Result<u32, Errno> {
    if s > 64 {
        Err(EINVAL)
    } else {
        Ok(s as u32)
    }
}

pub fn kill(f: &mut TrapFrame) -> SysResult {
    let [pid, s, ..] = args(f);
    let t = current();
    let p = &t.process;
    if pid as i32 == p.pid as i32 {
        let s = check_sig(s)?;
        if s != 0 {
            sig::send_to_process(p, s);
        }
        return Ok(0);
    }
    offload::syscall(f)
}

pub fn tgkill(f: &mut TrapFrame) -> SysResult {
    let [tgid, tid, s, ..] = args(f);
    let t = current();
    if tgid as u32 != t.process.pid {
        return offload::syscall(f);
    }
    let s = check_sig(s)?;
    if tid as u32 != t.tid {
        return Err(ESRCH);
    }
    if s != 0 {
        sig::send_to_thread(t, s);
    }
    Ok(0)
}

pub fn tkill(f: &mut TrapFrame) -> SysResult {
    let [tid, s, ..] = args(f);
    let t = current();
    if tid as u32 != t.tid {
        return offload::syscall(f);
    }
    let s = check_sig(s)?;
    if s != 0 {
        sig::send_to_thread(t, s);
    }
    Ok(0)
}
