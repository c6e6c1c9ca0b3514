//! Process and thread creation and replacement: clone and clone3 (threads
//! go to `process::thread`, fork-like flag sets to `process::fork`), fork,
//! vfork, execve and execveat (`process::exec`; a path of the LWK's view,
//! `/proc/self/exe`, runs the file the view names there).

use super::errno::*;
use super::{args, current};
use crate::arch::x86_64::idt::TrapFrame;
use crate::process::fork::{self, CLONE_VFORK, CLONE_VM};
use crate::process::{exec, thread};
use crate::lwkfs::{self, View};

const SIGCHLD: u64 = 17;

/// clone(flags, stack, parent_tid, child_tid, tls) (x86-64 argument order).
pub fn clone(f: &mut TrapFrame) -> SysResult {
    let [flags, stack, ptid, ctid, tls, _] = args(f);
    do_clone(f, flags, stack, ptid, ctid, tls)
}

fn do_clone(f: &TrapFrame, flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64) -> SysResult {
    let t = current();
    if thread::is_thread(flags) {
        return thread::create(t, f, flags, stack, ptid, ctid, tls);
    }
    if stack != 0 {
        // The child starts on the stack it was given.
        let mut g = TrapFrame { ..*f };
        g.rsp = stack;
        return fork::fork(t, &g, flags, ptid, ctid, tls);
    }
    fork::fork(t, f, flags, ptid, ctid, tls)
}

/// `struct clone_args` as of Linux 5.5 (`CLONE_ARGS_SIZE_VER0` is 64).
const CLONE_ARGS_SIZE_VER0: u64 = 64;
const CLONE_ARGS_SIZE_MAX: u64 = 4096;
const CLONE_NEWTIME: u64 = 0x80;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CSIGNAL: u64 = 0xff;

/// clone3(args, size): the same clones as `clone`, with the arguments in a
/// struct. Fields past the ones we read must be zero (as Linux checks).
pub fn clone3(f: &mut TrapFrame) -> SysResult {
    let [uargs, size, ..] = args(f);
    if !(CLONE_ARGS_SIZE_VER0..=CLONE_ARGS_SIZE_MAX).contains(&size) {
        return Err(EINVAL);
    }
    let t = current();
    let mut b = alloc::vec![0u8; size as usize];
    t.process.aspace.lock().read(uargs, &mut b)?;
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    let (flags, _pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls) =
        (w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7));
    // set_tid, set_tid_size, cgroup (VER1, VER2): only zero is supported.
    if (8..(size as usize / 8)).any(|i| w(i) != 0) {
        return Err(EINVAL);
    }
    if flags & (CLONE_NEWTIME | CLONE_INTO_CGROUP | CLONE_CLEAR_SIGHAND | CSIGNAL) != 0 || exit_signal > 64 {
        return Err(EINVAL);
    }
    if (stack == 0) != (stack_size == 0) {
        return Err(EINVAL);
    }
    let top = if stack != 0 { stack.checked_add(stack_size).ok_or(EINVAL)? } else { 0 };
    do_clone(f, flags | exit_signal, top, parent_tid, child_tid, tls)
}

/// execve(path, argv, envp): returns only on failure.
pub fn execve(f: &mut TrapFrame) -> SysResult {
    let [path, argv, envp, ..] = args(f);
    exec(exec::AT_FDCWD, path, argv, envp, 0)
}

/// execveat(dirfd, path, argv, envp, flags): returns only on failure.
pub fn execveat(f: &mut TrapFrame) -> SysResult {
    let [dirfd, path, argv, envp, flags, _] = args(f);
    exec(dirfd as i32, path, argv, envp, flags)
}

fn exec(dirfd: i32, path_va: u64, argv: u64, envp: u64, flags: u64) -> SysResult {
    let t = current();
    let path = exec::read_cstr(t, path_va, exec::PATH_MAX)?;
    // Only an absolute path (or one relative to the working directory,
    // which the view leaves to Linux) can be in the view.
    let open = if dirfd == exec::AT_FDCWD || path.first() == Some(&b'/') {
        match lwkfs::lookup(t, &path) {
            View::Redirect(p) => Some(p.into_bytes()),
            View::Missing => return Err(ENOENT),
            _ => None,
        }
    } else {
        None
    };
    exec::execve(t, exec::Target { dirfd, path, flags, open }, argv, envp)
}

pub fn fork(f: &mut TrapFrame) -> SysResult {
    fork::fork(current(), f, SIGCHLD, 0, 0, 0)
}

/// vfork: a fork here (the parent still waits only for the copy).
pub fn vfork(f: &mut TrapFrame) -> SysResult {
    fork::fork(current(), f, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0)
}
