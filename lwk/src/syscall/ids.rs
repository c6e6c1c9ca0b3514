//! Process and thread ids, answered locally (as McKernel does). The LWK
//! pid is the host pid of the process's mcexec, so ids seen through
//! offloaded calls (/proc, lock files) agree.

use super::current;
use super::errno::SysResult;
use crate::arch::x86_64::idt::TrapFrame;

pub fn getpid(_: &mut TrapFrame) -> SysResult {
    Ok(current().process.pid as u64)
}

pub fn gettid(_: &mut TrapFrame) -> SysResult {
    Ok(current().tid() as u64)
}

pub fn getppid(_: &mut TrapFrame) -> SysResult {
    Ok(current().process.ppid as u64)
}
