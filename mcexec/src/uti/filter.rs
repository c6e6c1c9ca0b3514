//! Which system calls of a utility thread go to the LWK, and the seccomp
//! filter that traps them (SECCOMP_RET_TRAP: SIGSYS in that thread only).
//!
//! A call is forwarded when the LWK owns it: the routing table
//! (`ihk_abi::linux::route`, lwk/src/syscall/table.rs) says Local,
//! LocalOrOffload or Refused, so memory management, futex, exit, signal
//! state, ids and the LWK's /proc view stay the LWK's. Offloaded calls run
//! on Linux directly, as they would through a proxy. Exceptions that must
//! act on the Linux thread itself run on Linux: `getcpu`, `sched_yield`,
//! `arch_prctl` (the thread's FS base), the clock reads
//! (the same clocks, without a round trip), and `read` and `write`
//! (LocalOrOffload only for a signalfd and for a thread's `comm` file of
//! the LWK's /proc view: a utility thread's I/O must not take a round trip
//! per call; its read of a signalfd reads the eventfd's counter, and its
//! write to such a file renames nothing). The program's `rt_sigreturn` is
//! trapped too: its handler's frame is restored by the thread's SIGSYS
//! handler, which gives the frame's mask and `uc_stack` to the LWK (`signal.rs`).
//!
//! Only calls made from the program's code are trapped: the filter lets
//! every call whose instruction pointer lies outside the LWK user range
//! through, which is mcexec's own code (its handler serving the thread,
//! its libc), so the filter never applies to mcexec itself.

use ihk_abi::linux::route::{route, Route};
use ihk_abi::linux::sys;
use ihk_abi::offload::USER_END;

/// Must a utility thread's call `nr` run in the LWK?
pub fn forwarded(nr: u64) -> bool {
    match nr {
        sys::SYS_getcpu
        | sys::SYS_sched_yield
        | sys::SYS_arch_prctl
        | sys::SYS_clock_gettime
        | sys::SYS_clock_getres
        | sys::SYS_gettimeofday
        | sys::SYS_time
        | sys::SYS_read
        | sys::SYS_write => false,
        _ => !matches!(route(nr), Route::Offload),
    }
}

/// Highest number the filter looks at (beyond: Linux's own answer).
const LAST_NR: u64 = sys::SYS_util_indicate_clone;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
// struct seccomp_data: nr @0, arch @4, instruction_pointer @8 (u64), args @16.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_IP_HIGH: u32 = 12;

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program: allow other architectures' and mcexec's calls,
/// trap the forwarded ones, allow the rest.
pub fn program() -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_LD_W_ABS, OFF_IP_HIGH),
        jump(BPF_JGE_K, (USER_END >> 32) as u32, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    for nr in (0..=LAST_NR).filter(|&n| forwarded(n)) {
        p.push(jump(BPF_JEQ_K, nr as u32, 0, 1));
        p.push(stmt(BPF_RET_K, SECCOMP_RET_TRAP));
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p
}

/// Install the filter in the calling thread (not the others of mcexec).
pub fn install() -> std::io::Result<()> {
    let prog = program();
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prctl and seccomp with valid arguments; `prog` outlives the
    // call (the kernel copies the program). No TSYNC: this thread only.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, &fprog) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter's verdict, by a small interpreter of the instructions it uses.
    fn run(p: &[libc::sock_filter], nr: u32, arch: u32, ip: u64) -> u32 {
        let word = |off: u32| match off {
            OFF_NR => nr,
            OFF_ARCH => arch,
            8 => ip as u32,
            OFF_IP_HIGH => (ip >> 32) as u32,
            _ => panic!("load of {off}"),
        };
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = p[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => a = word(i.k),
                BPF_JEQ_K => pc += if a == i.k { i.jt } else { i.jf } as usize,
                BPF_JGE_K => pc += if a >= i.k { i.jt } else { i.jf } as usize,
                BPF_RET_K => return i.k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn program_code_traps_lwk_calls_only() {
        let p = program();
        assert!(p.len() < 4096, "{} instructions", p.len());
        let user_ip = 0x40_1234;
        let trap = |nr: u64| run(&p, nr as u32, AUDIT_ARCH_X86_64, user_ip) == SECCOMP_RET_TRAP;
        for nr in [sys::SYS_mmap, sys::SYS_munmap, sys::SYS_mprotect, sys::SYS_brk, sys::SYS_futex, sys::SYS_exit,
            sys::SYS_exit_group, sys::SYS_gettid, sys::SYS_rt_sigaction, sys::SYS_rt_sigprocmask, sys::SYS_clone,
            sys::SYS_set_robust_list, sys::SYS_openat, sys::SYS_rseq, sys::SYS_util_indicate_clone, sys::SYS_rt_sigreturn]
        {
            assert!(trap(nr), "{nr} must go to the LWK");
        }
        for nr in [sys::SYS_read, sys::SYS_write, sys::SYS_getcpu, sys::SYS_sched_yield, sys::SYS_arch_prctl,
            sys::SYS_clock_gettime, sys::SYS_nanosleep, sys::SYS_close, 600]
        {
            assert!(!trap(nr), "{nr} runs on Linux");
        }
        // mcexec's own calls (above the user range) and other ABIs pass.
        assert_eq!(run(&p, sys::SYS_mmap as u32, AUDIT_ARCH_X86_64, 0x5555_5555_0000), SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, sys::SYS_mmap as u32, AUDIT_ARCH_X86_64, USER_END), SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, sys::SYS_mmap as u32, AUDIT_ARCH_X86_64, USER_END - 1), SECCOMP_RET_TRAP);
        assert_eq!(run(&p, sys::SYS_mmap as u32, 0x4000_0003, user_ip), SECCOMP_RET_ALLOW);
    }
}
