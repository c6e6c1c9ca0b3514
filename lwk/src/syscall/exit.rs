//! exit (of the calling thread) and exit_group (of the whole process).

use super::current;
use super::errno::SysResult;
use crate::arch::x86_64::idt::TrapFrame;
use core::sync::atomic::Ordering;

pub fn exit_group(f: &mut TrapFrame) -> SysResult {
    let t = current();
    crate::process::filemap_io::write_back_all(t);
    crate::process::service::exit_process(t, f.rdi as u32, 0)
}

/// The last thread's exit ends the process with its code.
pub fn exit(f: &mut TrapFrame) -> SysResult {
    let t = current();
    if t.process.live_threads.load(Ordering::Acquire) <= 1 {
        crate::process::filemap_io::write_back_all(t);
        crate::process::service::exit_process(t, f.rdi as u32, 0)
    }
    crate::process::thread::exit_thread(t, f.rdi as u32)
}
