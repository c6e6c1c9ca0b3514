//! exit and exit_group.

use super::current;
use super::errno::SysResult;
use crate::arch::x86_64::idt::TrapFrame;
use core::sync::atomic::Ordering;

pub fn exit_group(f: &mut TrapFrame) -> SysResult {
    let t = current();
    crate::process::filemap_io::write_back_all(t);
    crate::process::service::exit_process(t, f.rdi as u32, 0)
}

pub fn exit(f: &mut TrapFrame) -> SysResult {
    let t = current();
    if t.process.live_threads.load(Ordering::Acquire) <= 1 {
        crate::process::filemap_io::write_back_all(t);
        crate::process::service::exit_process(t, f.rdi as u32, 0)
    }
    let ctid = t.clear_child_tid.load(Ordering::Relaxed);
    if ctid != 0 {
        let _ = t.process.aspace.lock().write_u32(ctid, 0);
    }
    crate::process::sched::exit_current(t)
}
