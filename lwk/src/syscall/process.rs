//! Process creation and replacement: fork, vfork and clone (the fork-like
//! flag sets; the work is in `process::fork`), and execve (`process::exec`).

use super::errno::SysResult;
use super::{args, current};
use crate::arch::x86_64::idt::TrapFrame;
use crate::process::fork::{self, CLONE_VFORK, CLONE_VM};

const SIGCHLD: u64 = 17;

/// clone(flags, stack, parent_tid, child_tid, tls) (x86-64 argument order).
pub fn clone(f: &mut TrapFrame) -> SysResult {
    let [flags, stack, ptid, ctid, tls, _] = args(f);
    if stack != 0 && flags & CLONE_VM == 0 {
        // A new stack for a copied address space: the child starts on it.
        let mut g = crate::arch::x86_64::idt::TrapFrame { ..*f };
        g.rsp = stack;
        return fork::fork(current(), &g, flags, ptid, ctid, tls);
    }
    fork::fork(current(), f, flags, ptid, ctid, tls)
}

/// execve(path, argv, envp): returns only on failure.
pub fn execve(f: &mut TrapFrame) -> SysResult {
    let [path, argv, envp, ..] = args(f);
    crate::process::exec::execve(current(), path, argv, envp)
}

pub fn fork(f: &mut TrapFrame) -> SysResult {
    fork::fork(current(), f, SIGCHLD, 0, 0, 0)
}

/// vfork: a fork here (the parent still waits only for the copy).
pub fn vfork(f: &mut TrapFrame) -> SysResult {
    fork::fork(current(), f, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0)
}
