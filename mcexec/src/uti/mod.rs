//! Utility threads on Linux (`mcexec --enable-uti`, docs/uti.md).
//!
//! An LWK thread created after `util_indicate_clone` sends its proxy
//! `OffloadCall::UtiRun(UTI_START, regs)`. The proxy thread then *becomes*
//! the utility thread: it narrows its affinity to the Linux CPUs
//! (`cpus.rs`), installs the seccomp filter (`filter.rs`) and enters the
//! program with the clone child's registers (`entry.rs`). Its host tid is
//! already the LWK tid. The program's calls that the LWK owns trap
//! (SIGSYS); the handler answers the pending UtiRun with the call
//! (number, arguments, stack pointer), serves the offload requests the LWK
//! makes while running it, and returns its result to the program when the
//! LWK sends `UtiRun(UTI_RESUME, result)`. `exit` ends with the LWK's
//! `ThreadExit`, after which this host thread ends too. Faults on memory
//! not mirrored yet are forwarded the same way (`UTI_FAULT`), and the
//! proxy interrupt (SIGURG) in the program's code answers `UTI_CHECK`.
//! A resume may carry a signal: its handler runs on this thread
//! (`signal.rs`).
//!
//! The mirror: every request carries the map sequence it needs, so the
//! mirror is brought up to date at the thread's start and at each return
//! from a forwarded call (after its own mmap, say). Memory another thread
//! maps while this one runs is mirrored at this thread's next forwarded
//! call or offload request (docs/uti.md).
//!
//! When the LWK thread exits (`ThreadExit`), the handler returns from
//! `entry::enter_program` on the thread's own stack (`leave_program`):
//! `run` restores the signal mask, frees the alternate stack and returns,
//! and the proxy thread ends as any other, so glibc takes back its stack.
//!
//! Must not: run mcexec code on the program's FS base (`entry.rs` swaps it
//! first), or free the thread's alternate stack while the program runs.

mod cpus;
mod entry;
mod filter;
mod signal;

use std::cell::RefCell;
use std::sync::{Arc, Mutex, Once, OnceLock};

use ihk_abi::offload::{OffloadCall, UtiRegs, UtiSignal, UTI_CHECK, UTI_FAULT, UTI_RESUME};

use crate::proxy::{Process, SPIN_MAX};

pub use cpus::{environment, set_linux_cpus};

/// What a utility thread's SIGSYS handler needs: its process and slot.
struct Ctx {
    process: Arc<Process>,
    slot: u32,
}

thread_local! {
    static CTX: RefCell<Option<Ctx>> = const { RefCell::new(None) };
}

/// Host tids of the utility threads of this mcexec.
static TIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn is_utility_thread(tid: u64) -> bool {
    let me = tid == 0 && CTX.with(|c| c.borrow().is_some());
    me || TIDS.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|&t| t as u64 == tid)
}

/// A call the proxy runs that concerns a utility thread and needs more
/// than running it: `sched_setaffinity` of one stays within the Linux
/// CPUs (`cpus::set_affinity`). None: run it as usual.
pub fn intercept(number: u64, args: &[u64; 6]) -> Option<i64> {
    (number == libc::SYS_sched_setaffinity as u64 && is_utility_thread(args[0]))
        .then(|| cpus::set_affinity(args[0], args[1], args[2]))
}

const EFAULT: i64 = libc::EFAULT as i64;

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("its registers are not in guest memory: {0}")]
    Regs(crate::guest::GuestError),
    #[error("installing its signal handlers: {0}")]
    Handler(std::io::Error),
    #[error("seccomp filter: {0}")]
    Filter(std::io::Error),
}

/// Become the utility thread of slot `i` (`args` of its UtiRun(UTI_START)).
/// Returns when the LWK thread has exited (the proxy thread then ends).
pub fn run(process: &Arc<Process>, i: u32, args: [u64; 6]) {
    let regs = match prepare(process, i, args[1]) {
        Ok(regs) => regs,
        Err(e) => {
            let tid = process.slot(i).tid.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!("mcexec: utility thread {tid}: cannot run it on Linux: {e}");
            // The LWK ends the process on a negative answer.
            process.publish(i, -EFAULT, None);
            process.serve_slot(i);
            return;
        }
    };
    let mut alt = vec![0u8; entry::ALTSTACK_SIZE].into_boxed_slice();
    // SAFETY: `alt` is ours, large enough and aligned for the header.
    unsafe {
        (alt.as_mut_ptr() as *mut entry::AltHeader)
            .write(entry::AltHeader { mcexec_fs: entry::fs_base(), return_rsp: 0 })
    };
    // SAFETY: reads this thread's signal mask into a local.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask) };
    // SAFETY: mirror up to date (take_request), handler and filter
    // installed by `prepare`, `alt` lives until after the return.
    unsafe { entry::enter_program(&regs, alt.as_mut_ptr()) };
    // Back from the handler of the exiting thread: its mask, and `alt`
    // still registered (no longer in use: we are on our own stack).
    let off = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
    // SAFETY: restores the mask read above; disables the alternate stack
    // before it is freed (a signal now runs on this stack, and the entries
    // do nothing outside the program's code).
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
        libc::sigaltstack(&off, std::ptr::null_mut());
    }
    drop(alt);
}

/// Everything but the jump: registers, affinity, handler, context, filter.
fn prepare(process: &Arc<Process>, i: u32, regs_gpa: u64) -> Result<UtiRegs, StartError> {
    let p = process.mirror.guest().ptr(regs_gpa, std::mem::size_of::<UtiRegs>() as u64).map_err(StartError::Regs)?;
    // SAFETY: the LWK keeps the registers on its thread's stack until we
    // answer; `ptr` checked the bounds.
    let regs = unsafe { std::ptr::read_unaligned(p as *const UtiRegs) };
    cpus::narrow_own_affinity();
    // `top -H` and /proc show it as the utility thread of slot i.
    let name = std::ffi::CString::new(format!("uti{i}")).expect("no NUL");
    // SAFETY: PR_SET_NAME copies at most 16 bytes of a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    install_handler().map_err(StartError::Handler)?;
    CTX.with(|c| *c.borrow_mut() = Some(Ctx { process: Arc::clone(process), slot: i }));
    // SAFETY: gettid has no arguments.
    TIDS.lock().unwrap_or_else(|e| e.into_inner()).push(unsafe { libc::gettid() } as u32);
    filter::install().map_err(StartError::Filter)?;
    Ok(regs)
}

/// SIGSEGV's disposition before ours (Rust's stack-overflow report).
static PREVIOUS_SIGSEGV: OnceLock<libc::sigaction> = OnceLock::new();

fn install_handler() -> std::io::Result<()> {
    static ONCE: Once = Once::new();
    let mut r = Ok(());
    ONCE.call_once(|| {
        // SAFETY: installs the entries, which swap to mcexec's TLS before
        // running any mcexec code.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_sigaction = entry::sigsys_entry as *const () as usize;
            if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
                r = Err(std::io::Error::last_os_error());
                return;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = entry::sigsegv_entry as *const () as usize;
            if libc::sigaction(libc::SIGSEGV, &sa, &mut old) != 0 {
                r = Err(std::io::Error::last_os_error());
                return;
            }
            let _ = PREVIOUS_SIGSEGV.set(old);
            // Replaces the proxies' no-op SIGURG handler (same flags but
            // SA_SIGINFO|SA_ONSTACK; it does nothing outside the program).
            sa.sa_sigaction = entry::sigurg_entry as *const () as usize;
            if libc::sigaction(libc::SIGURG, &sa, std::ptr::null_mut()) != 0 {
                r = Err(std::io::Error::last_os_error());
            }
        }
    });
    r
}

/// A SIGSEGV of mcexec's own code: what the previous disposition does.
///
/// # Safety
/// The kernel's handler arguments.
unsafe fn previous_sigsegv(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    match PREVIOUS_SIGSEGV.get() {
        Some(old) if old.sa_flags & libc::SA_SIGINFO != 0 && old.sa_sigaction > 1 => {
            // SAFETY: the previous handler, installed with SA_SIGINFO.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(old.sa_sigaction) };
            f(sig, info, uc);
        }
        _ => {
            // Default action: the faulting instruction runs again and the
            // kernel ends mcexec.
            // SAFETY: SIG_DFL installs no code.
            unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
        }
    }
}

/// SIGURG while the program runs: if the LWK asked to interrupt this
/// thread's pending UtiRun (another thread's execve ends it, a signal is
/// directed at it), answer it with UTI_CHECK so the LWK half looks at what
/// it must do, and continue the program when it resumes us.
///
/// # Safety
/// `uc` as the kernel passed it to a SA_SIGINFO handler.
unsafe fn on_sigurg(_info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let uc = uc as *mut libc::ucontext_t;
    // SAFETY: per the contract.
    let sp = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as u64 };
    CTX.with(|c| {
        let c = c.borrow();
        let Some(c) = c.as_ref() else { return };
        let s = c.process.slot(c.slot);
        if s.interrupt.load(std::sync::atomic::Ordering::Acquire) != 0 {
            let (_, sig) = forward(&c.process, c.slot, UTI_CHECK as u64, [0; 6], sp);
            // SAFETY: the program's context; the LWK backed the frame's room.
            if let Some(sig) = sig {
                unsafe { signal::deliver(uc, &sig) };
            }
        }
    });
}

/// A fault of the program's code on Linux: let the LWK back the page (the
/// answer brings the mirror up to date) and run the instruction again.
///
/// # Safety
/// `info` and `uc` as the kernel passed them to a SA_SIGINFO handler.
unsafe fn on_sigsegv(info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: per the contract: si_addr is the pointer at byte 16.
    let (addr, g) = unsafe {
        (*(info as *const u8).add(16).cast::<u64>(), &(*(uc as *const libc::ucontext_t)).uc_mcontext.gregs)
    };
    let write = g[libc::REG_ERR as usize] as u64 & 2 != 0;
    let sp = g[libc::REG_RSP as usize] as u64;
    let sig = CTX.with(|c| {
        let c = c.borrow();
        let c = c.as_ref().expect("program fault in a thread that is not a utility thread");
        forward(&c.process, c.slot, UTI_FAULT, [addr, write as u64, 0, 0, 0, 0], sp).1
    });
    if let Some(sig) = sig {
        // SAFETY: the program's context; the LWK backed the frame's room.
        unsafe { signal::deliver(uc as *mut libc::ucontext_t, &sig) };
    }
}

/// The SIGSYS handler proper, on mcexec's TLS: forward the trapped call
/// and put its result in the program's rax, then run the signal handler
/// the LWK asks for. The program's `rt_sigreturn` restores its frame here
/// and forwards the frame's mask and `uc_stack` (`signal.rs`; the LWK's
/// `uti_signal::sigreturn`).
///
/// # Safety
/// `info` and `uc` as the kernel passed them to a SA_SIGINFO handler.
unsafe fn on_sigsys(info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let uc = uc as *mut libc::ucontext_t;
    // SAFETY: per the contract; `struct siginfo`'s SIGSYS fields: the call
    // number is the int at byte 24.
    let (nr, g) = unsafe { (*(info as *const u8).add(24).cast::<i32>() as u64, (*uc).uc_mcontext.gregs) };
    let reg = |r: libc::c_int| g[r as usize] as u64;
    let sigreturn = nr == libc::SYS_rt_sigreturn as u64;
    let (sp, args) = if sigreturn {
        // SAFETY: the program's context, its frame at its stack pointer.
        let (mask, stack) = unsafe { signal::sigreturn(uc) };
        // The LWK checks the alternate stack against the restored context.
        // SAFETY: per the contract.
        (unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as u64 }, [mask, stack, 0, 0, 0, 0])
    } else {
        (reg(libc::REG_RSP), [reg(libc::REG_RDI), reg(libc::REG_RSI), reg(libc::REG_RDX), reg(libc::REG_R10), reg(libc::REG_R8), reg(libc::REG_R9)])
    };
    let (result, sig) = CTX.with(|c| {
        let c = c.borrow();
        let c = c.as_ref().expect("SIGSYS in a thread that is not a utility thread");
        forward(&c.process, c.slot, nr, args, sp)
    });
    // SAFETY: per the contract; the LWK backed the frame's room.
    unsafe {
        if !sigreturn {
            // rt_sigreturn keeps the frame's rax.
            (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = result;
        }
        if let Some(sig) = sig {
            signal::deliver(uc, &sig);
        }
    }
}

/// The [`UtiSignal`] at `gpa` (on the LWK thread's stack until we answer).
fn read_signal(process: &Process, gpa: u64) -> Option<UtiSignal> {
    let p = process.mirror.guest().ptr(gpa, std::mem::size_of::<UtiSignal>() as u64).ok()?;
    // SAFETY: `ptr` checked the bounds; the LWK wrote it before the request.
    Some(unsafe { std::ptr::read_unaligned(p as *const UtiSignal) })
}

/// Answer the pending UtiRun with call `nr`, serve the slot until the LWK
/// resumes us, and return the call's result and the signal to deliver.
fn forward(process: &Arc<Process>, i: u32, nr: u64, args: [u64; 6], sp: u64) -> (i64, Option<UtiSignal>) {
    process.publish(i, nr as i64, Some((args, sp)));
    loop {
        process.wait_for_request(i, SPIN_MAX);
        let req = process.take_request(i);
        match req.call() {
            Some(OffloadCall::UtiRun) if req.failed.is_none() && req.args[0] == UTI_RESUME => {
                let sig = (req.args[2] != 0).then(|| read_signal(process, req.args[2]));
                return (req.args[1] as i64, sig.flatten());
            }
            Some(OffloadCall::UtiRun) => process.publish(i, req.failed.unwrap_or(-EFAULT), None),
            Some(OffloadCall::ThreadExit) => {
                process.answer(i, &req, 0);
                process.forget_proxy(i);
                // SAFETY: gettid has no arguments.
                let me = unsafe { libc::gettid() } as u32;
                TIDS.lock().unwrap_or_else(|e| e.into_inner()).retain(|&t| t != me);
                // SAFETY: in this utility thread's handler, on mcexec's FS
                // base; nothing here is used afterwards.
                unsafe { entry::leave_program() }
            }
            _ => {
                let r = process.execute(i, &req);
                process.answer(i, &req, r);
            }
        }
    }
}
