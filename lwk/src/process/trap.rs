//! Entering user mode, leaving the kernel for user mode (where kills and
//! signals take effect), and exceptions raised by user code: page faults
//! that the address space resolves (stack growth, lazily backed memory),
//! and everything else as a signal with Linux's kmsg report
//! ("a.out[pid]: segfault at ... ip ... sp ... error ...").

use core::sync::atomic::{AtomicBool, Ordering};

use ihk_abi::boot_params::MAX_CPUS;

use super::{sched, service, signal, Thread};
use crate::arch::x86_64::idt::TrapFrame;
use crate::arch::x86_64::entry::{enter_user, USER_CS, USER_DS};

/// Set by the offload doorbell interrupt; the next return to user mode on
/// that CPU handles the offload area's events (a thread may run in user
/// mode for long, and the scheduler loop only runs between threads).
static DOORBELL: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// A user-mode frame for the first entry at `ip` with stack `sp`.
pub fn initial_frame(ip: u64, sp: u64) -> TrapFrame {
    TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0x202,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: 0,
        rsi: 0,
        rdx: 0,
        rcx: ip,
        rbx: 0,
        rax: 0,
        vector: 0,
        error_code: 0,
        rip: ip,
        cs: USER_CS,
        rflags: 0x202,
        rsp: sp,
        ss: USER_DS,
    }
}

/// Leave for user mode with `frame`, from a thread's own context.
pub fn enter_with_frame(t: &Thread, mut frame: TrapFrame) -> ! {
    return_to_user(&mut frame);
    let at = (t.kstack_top() - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame;
    // SAFETY: the top of the thread's own kernel stack is free (we run
    // below it), and the frame is a complete user frame.
    unsafe {
        at.write(frame);
        enter_user(at)
    }
}

/// The offload doorbell interrupt arrived on this CPU.
pub fn doorbell() {
    if let Some(d) = DOORBELL.get(crate::smp::cpu_id() as usize) {
        d.store(true, Ordering::Release);
    }
    // An answered offload may make a waiting thread of this CPU runnable
    // while another one computes: the scheduler looks at its queues.
    sched::note_resched();
}

/// Handle the offload area's events if the host rang this CPU since the
/// last time (every event comes with a ring, so nothing is scanned
/// otherwise).
#[inline]
pub fn poll_events_if_rung() {
    if DOORBELL.get(crate::smp::cpu_id() as usize).is_some_and(|d| d.swap(false, Ordering::AcqRel)) {
        poll_events_now();
    }
}

/// Out of line: `poll_events` has a large stack frame whose set-up would
/// otherwise cost every return to user mode (~20 instructions, each
/// emulated on KVM PVM hosts: docs/pvm.md).
#[cold]
#[inline(never)]
fn poll_events_now() {
    service::poll_events();
}

/// Last kernel step before a frame returns to user mode (system calls and
/// interrupts from user mode): process-area events, the process's death,
/// signal delivery.
pub fn return_to_user(f: &mut TrapFrame) {
    if f.cs & 3 != 3 {
        return;
    }
    poll_events_if_rung();
    if let Some(t) = sched::current() {
        // Time sharing, wake-ups and moves between CPUs (may switch threads).
        sched::resched_point(t);
        if t.process.is_dying() {
            sched::exit_current(t);
        }
        if t.leave.load(Ordering::Acquire) {
            super::thread::exit_thread(t, 0);
        }
        // POSIX timers due on this CPU, then the CPU-time ones of `t`'s
        // process: their signals are taken right below.
        super::ptimer::run_due();
        super::cputime::leaving_for_user(t);
        let restart = t.take_restart();
        signal::deliver(t, f, restart);
        crate::arch::x86_64::tlb::leaving_for_user();
    }
    crate::monitor::set_cpu_state(ihk_abi::CpuState::RunningUser);
}

const SIGTRAP: u32 = 5;
const SIGILL: u32 = 4;
const SIGBUS: u32 = 7;
const SIGFPE: u32 = 8;

/// An exception raised in user mode (vector < 32, not NMI).
pub fn user_exception(f: &mut TrapFrame) {
    let Some(t) = sched::current() else {
        panic!("user-mode exception {} without a current thread", f.vector);
    };
    let p = &t.process;
    if crate::arch::x86_64::entry::is_emulated_syscall(f) {
        // A SYSCALL delivered without the switch to CPL0: finish it here.
        static EMULATED_LOGGED: AtomicBool = AtomicBool::new(false);
        if !EMULATED_LOGGED.load(core::sync::atomic::Ordering::Relaxed) && !EMULATED_LOGGED.swap(true, core::sync::atomic::Ordering::Relaxed) {
            crate::printk!("syscall entry: SYSCALL arrives as a user-mode page fault (emulated path, no CPL switch)");
        }
        f.rip = f.rcx;
        f.rflags = f.r11;
        f.vector = f.rax;
        crate::arch::x86_64::hooks::syscall(f);
        return;
    }
    let comm = p.comm.lock().clone();
    let sig = match f.vector {
        14 => {
            let addr = crate::arch::x86_64::read_cr2();
            let (write, exec) = (f.error_code & 2 != 0, f.error_code & 16 != 0);
            let vma = {
                let mut a = p.aspace.lock();
                if a.fault(addr, write, exec) {
                    return;
                }
                a.vma_at(f.rip).map(|(s, v)| (s, v.end - s))
            };
            // Linux's show_signal_msg() line, with the VMA of ip as
            // print_vma_addr() prints it.
            let mut r#in = crate::mm::frame::LineBuf::new();
            if let Some((s, len)) = vma {
                let _ = core::fmt::Write::write_fmt(&mut r#in, format_args!(" in {}[{:x}+{:x}]", comm, s, len));
            }
            crate::printk!(
                "{}[{}]: segfault at {:x} ip {:016x} sp {:016x} error {:x}{}",
                comm,
                p.pid,
                addr,
                f.rip,
                f.rsp,
                f.error_code,
                r#in.as_str()
            );
            signal::SIGSEGV
        }
        0 => {
            crate::printk!("traps: {}[{}] trap divide error ip:{:x} sp:{:x} error:0", comm, p.pid, f.rip, f.rsp);
            SIGFPE
        }
        6 => {
            crate::printk!("traps: {}[{}] trap invalid opcode ip:{:x} sp:{:x} error:0", comm, p.pid, f.rip, f.rsp);
            SIGILL
        }
        13 => {
            crate::printk!(
                "traps: {}[{}] general protection fault ip:{:x} sp:{:x} error:{:x}",
                comm,
                p.pid,
                f.rip,
                f.rsp,
                f.error_code
            );
            signal::SIGSEGV
        }
        1 | 3 => SIGTRAP,
        16 | 19 => SIGFPE,
        17 | 11 | 12 => SIGBUS,
        _ => signal::SIGSEGV,
    };
    // The fault address for SIGSEGV/SIGBUS (cr2 of a page fault), the
    // instruction for the others; SI_KERNEL when no finer code is known.
    let (code, addr) = match f.vector {
        14 => (if f.error_code & 1 != 0 { 2 } else { 1 }, crate::arch::x86_64::read_cr2()), // SEGV_ACCERR / MAPERR
        _ => (signal::SI_KERNEL, f.rip),
    };
    force_signal(t, sig, signal::SigInfo { code, addr, ..signal::SigInfo::default() });
}

/// Deliver a synchronous fault signal: if the program blocks or ignores
/// it, the default action applies (as Linux's force_sig).
fn force_signal(t: &Thread, sig: u32, info: signal::SigInfo) {
    {
        let mut st = t.process.signals.lock();
        let a = &mut st.actions[(sig - 1) as usize];
        let blocked = t.sig_mask.load(Ordering::Relaxed) & (1 << (sig - 1)) != 0;
        if a.handler == signal::SIG_IGN || blocked {
            *a = signal::SigAction::default();
        }
    }
    t.sig_mask.fetch_and(!(1 << (sig - 1)), Ordering::Relaxed);
    t.sig_info.lock()[(sig - 1) as usize] = info;
    t.sig_pending.fetch_or(1 << (sig - 1), Ordering::AcqRel);
}
