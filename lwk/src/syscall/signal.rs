//! Signal system calls, local (the state is in `process::signal`):
//! rt_sigaction, rt_sigprocmask, rt_sigreturn, rt_sigpending, sigaltstack,
//! rt_sigtimedwait, and kill/tkill/tgkill/rt_(tg)sigqueueinfo aimed at the
//! calling process or its threads (others are offloaded to reach host
//! processes).

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
            sig::send_to_process(p, s, sig::SigInfo::from(t, sig::SI_USER));
        }
        return Ok(0);
    }
    offload::syscall(f)
}

pub fn tgkill(f: &mut TrapFrame) -> SysResult {
    let [tgid, tid, s, ..] = args(f);
    let t = current();
    if tgid as i32 <= 0 || tid as i32 <= 0 {
        return Err(EINVAL);
    }
    if tgid as u32 != t.process.pid {
        return offload::syscall(f);
    }
    let s = check_sig(s)?;
    let target = t.process.thread(tid as u32).ok_or(ESRCH)?;
    if s != 0 {
        sig::send_to_thread(&target, s, sig::SigInfo::from(t, sig::SI_TKILL));
    }
    Ok(0)
}

pub fn tkill(f: &mut TrapFrame) -> SysResult {
    let [tid, s, ..] = args(f);
    let t = current();
    if tid as i32 <= 0 {
        return Err(EINVAL);
    }
    let Some(target) = t.process.thread(tid as u32) else { return offload::syscall(f) };
    let s = check_sig(s)?;
    if s != 0 {
        sig::send_to_thread(&target, s, sig::SigInfo::from(t, sig::SI_TKILL));
    }
    Ok(0)
}

/// rt_sigtimedwait(set, info, timeout, sigsetsize): sigwait, sigwaitinfo,
/// sigtimedwait. The siginfo written has si_signo and si_code SI_USER.
pub fn rt_sigtimedwait(f: &mut TrapFrame) -> SysResult {
    let [set, info, timeout, size, ..] = args(f);
    if size != 8 {
        return Err(EINVAL);
    }
    let t = current();
    let (mask, ts) = {
        let mut a = t.process.aspace.lock();
        let m = a.read_u64(set)?;
        let ts = if timeout != 0 { Some((a.read_u64(timeout)? as i64, a.read_u64(timeout + 8)? as i64)) } else { None };
        (m, ts)
    };
    let (deadline, poll) = match ts {
        None => (0, false),
        Some((sec, nsec)) => {
            if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
                return Err(EINVAL);
            }
            let ns = (sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec as u64);
            let now = crate::arch::x86_64::tsc::now();
            (now.saturating_add(crate::arch::x86_64::tsc::ns_to_ticks(ns)).max(1), ns == 0)
        }
    };
    let (signo, si) = sig::timed_wait(t, mask, deadline, poll)?;
    if info != 0 {
        t.process.aspace.lock().write(info, &si.to_bytes(signo))?;
    }
    Ok(signo as u64)
}

/// rt_sigqueueinfo(tgid, sig, info): to the caller's own process here,
/// else to Linux.
pub fn rt_sigqueueinfo(f: &mut TrapFrame) -> SysResult {
    let [tgid, s, uinfo, ..] = args(f);
    let t = current();
    if tgid as u32 != t.process.pid {
        return offload::syscall(f);
    }
    let s = check_sig(s)?;
    let info = queued_info(t, uinfo)?;
    if s != 0 {
        sig::send_to_process(&t.process, s, info);
    }
    Ok(0)
}

/// The sender's siginfo of rt_(tg)sigqueueinfo: code, pid, uid as given
/// (Linux refuses codes >= 0, i.e. posing as the kernel or kill, from
/// another process; to itself a process may send what it likes).
fn queued_info(t: &crate::process::Thread, uinfo: u64) -> Result<sig::SigInfo, Errno> {
    let mut b = [0u8; 32];
    t.process.aspace.lock().read(uinfo, &mut b)?;
    let code = i32::from_le_bytes(b[8..12].try_into().unwrap());
    let pid = u32::from_le_bytes(b[16..20].try_into().unwrap());
    let uid = u32::from_le_bytes(b[20..24].try_into().unwrap());
    let value = u64::from_le_bytes(b[24..32].try_into().unwrap());
    Ok(sig::SigInfo { code, pid, uid, value, ..sig::SigInfo::default() })
}

/// rt_tgsigqueueinfo(tgid, tid, sig, info).
pub fn rt_tgsigqueueinfo(f: &mut TrapFrame) -> SysResult {
    let [tgid, tid, s, uinfo, ..] = args(f);
    let t = current();
    if tgid as u32 != t.process.pid {
        return offload::syscall(f);
    }
    let s = check_sig(s)?;
    let target = t.process.thread(tid as u32).ok_or(ESRCH)?;
    let info = queued_info(t, uinfo)?;
    if s != 0 {
        sig::send_to_thread(&target, s, info);
    }
    Ok(0)
}
