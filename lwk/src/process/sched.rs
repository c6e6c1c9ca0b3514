//! Per-CPU cooperative scheduling of LWK threads (ARCHITECTURE.md §6:
//! per-CPU run queues, round-robin, no tick, no migration).
//!
//! The CPU's idle loop (`main.rs`) calls [`poll`] before halting. `poll`
//! handles the offload area's events for this CPU (`service`), then runs
//! runnable threads one after the other: a thread runs until it waits for
//! an offloaded call longer than the spin time, or exits; then control
//! comes back here. Threads waiting for an offload become runnable again
//! when their slot is DONE (or their process is dying). Before the CPU
//! halts, every waiting thread declares `lwk_waiting` so the proxy rings
//! this CPU's irqfd when it answers.
//!
//! The scheduler context runs on the CPU's boot stack with the kernel page
//! table; a thread runs on its own kernel stack (direct map) with its
//! process's table. [`switch_stack`] changes CR3 and stack together, with
//! no stack access in between, so each side only touches memory mapped in
//! its own table.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicPtr, Ordering};

use ihk_abi::boot_params::MAX_CPUS;

use ihk_abi::offload::SLOT_DONE;
use spin::{Mutex, Once};

use super::{phys, Thread, ThreadState};

core::arch::global_asm!(
    r#"
    .section .text
    .global lwk_switch_stack
    /* lwk_switch_stack(save: *mut u64 [rdi], new_rsp [rsi], new_cr3 [rdx]) */
lwk_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %cr3, %rax
    cmpq %rax, %rdx
    je 1f
    movq %rdx, %cr3
1:
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    .global lwk_thread_trampoline
lwk_thread_trampoline:
    movq %r12, %rdi
    call {thread_main}
    ud2
"#,
    thread_main = sym thread_main,
    options(att_syntax)
);

extern "C" {
    fn lwk_switch_stack(save: *mut u64, new_rsp: u64, new_cr3: u64);
    fn lwk_thread_trampoline();
}

/// What a new thread does before its first return to user mode.
pub enum ThreadStart {
    /// Load the program (main thread of a new process).
    Exec,
    /// Become a copy of this parent (first thread of a fork child).
    Fork(Arc<super::Process>),
}

struct CpuSched {
    /// Saved rsp of the scheduler context while a thread runs.
    idle_rsp: u64,
    current: Option<Arc<Thread>>,
    runq: VecDeque<Arc<Thread>>,
    waiting: Vec<Arc<Thread>>,
    /// Thread whose FPU state is in this CPU's registers.
    fpu_owner: Option<usize>,
}

static CPUS: Once<Vec<Mutex<CpuSched>>> = Once::new();

/// The thread running on each CPU (null in the scheduler context): read on
/// every system call, so kept apart from the locked scheduler state.
static CURRENT: [AtomicPtr<Thread>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

pub fn init() {
    let n = crate::boot_params::get().cores().len();
    CPUS.call_once(|| {
        (0..n)
            .map(|_| {
                Mutex::new(CpuSched {
                    idle_rsp: 0,
                    current: None,
                    runq: VecDeque::new(),
                    waiting: Vec::new(),
                    fpu_owner: None,
                })
            })
            .collect()
    });
}

fn cpu() -> &'static Mutex<CpuSched> {
    &CPUS.get().expect("sched::init")[crate::smp::cpu_id() as usize]
}

/// The thread running on this CPU, if any (None in the scheduler context).
/// The reference is valid while that thread runs: the scheduler holds an
/// `Arc` of it until it switches back, and a thread never outlives its own
/// kernel code.
pub fn current() -> Option<&'static Thread> {
    let p = CURRENT.get(crate::smp::cpu_id() as usize)?.load(Ordering::Relaxed);
    // SAFETY: see above; set in `run` from the Arc it keeps in `current`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Prepare a new thread's kernel stack so the first switch to it enters
/// `thread_main(thread)`.
pub fn prepare_stack(t: &Arc<Thread>) {
    let top = t.kstack_top();
    // Layout popped by lwk_switch_stack: r15 r14 r13 r12 rbx rbp, then ret;
    // two words above keep rsp 16-byte aligned at the trampoline's call.
    let trampoline = lwk_thread_trampoline as *const () as u64;
    let frame = [0u64, 0, 0, Arc::as_ptr(t) as u64, 0, 0, trampoline, 0, 0];
    let sp = top - (frame.len() as u64 * 8);
    // SAFETY: the stack is the thread's own, fresh, and large enough.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut u64, frame.len()) };
    t.ctx_rsp.store(sp, Ordering::Relaxed);
}

/// Make `t` runnable on this CPU.
pub fn enqueue(t: Arc<Thread>) {
    t.set_state(ThreadState::Runnable);
    cpu().lock().runq.push_back(t);
}

/// Scheduler step of the idle loop (interrupts off). Returns false when
/// the CPU may halt: nothing is runnable and every waiting thread has
/// declared `lwk_waiting`.
pub fn poll() -> bool {
    if CPUS.get().is_none() {
        return false;
    }
    // A busy CPU never halts: take interrupts that arrived meanwhile (the
    // doorbells that tell us about new work) in a short window.
    // SAFETY: `sti; nop; cli` opens the interrupt window for exactly one
    // instruction; handlers run on this (kernel) stack as at `hlt`.
    unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
    super::trap::poll_events_if_rung();
    wake_finished();
    let next = cpu().lock().runq.pop_front();
    if let Some(t) = next {
        run(t);
        return true;
    }
    prepare_halt()
}

/// Move waiting threads whose offload finished (or whose process dies)
/// back to the run queue.
fn wake_finished() {
    let mut c = cpu().lock();
    let mut i = 0;
    while i < c.waiting.len() {
        let t = &c.waiting[i];
        let s = t.process.thread_slot(t.slot);
        let ready = match t.get_state() {
            ThreadState::WaitingSignal => super::signal::has_deliverable(t),
            _ => s.state.load(Ordering::Acquire) == SLOT_DONE,
        };
        if ready || t.process.is_dying() {
            let t = c.waiting.swap_remove(i);
            t.set_state(ThreadState::Runnable);
            c.runq.push_back(t);
        } else {
            i += 1;
        }
    }
}

/// Declare every waiting thread sleeping; false if none finished meanwhile.
fn prepare_halt() -> bool {
    let c = cpu().lock();
    for t in &c.waiting {
        t.process.thread_slot(t.slot).lwk_waiting.store(1, Ordering::Relaxed);
    }
    fence(Ordering::SeqCst);
    let ready = c.waiting.iter().any(|t| {
        let signal = t.get_state() == ThreadState::WaitingSignal && super::signal::has_deliverable(t);
        signal || t.process.thread_slot(t.slot).state.load(Ordering::Acquire) == SLOT_DONE || t.process.is_dying()
    });
    !c.runq.is_empty() || ready
}

/// Run `t` until it yields back.
fn run(t: Arc<Thread>) {
    let (save, new_rsp, cr3) = {
        let mut c = cpu().lock();
        let me = Arc::as_ptr(&t) as usize;
        if c.fpu_owner != Some(me) {
            // The previous owner's state was saved when it yielded.
            t.fpu.restore();
            c.fpu_owner = Some(me);
        }
        c.current = Some(Arc::clone(&t));
        CURRENT[crate::smp::cpu_id() as usize].store(Arc::as_ptr(&t) as *mut Thread, Ordering::Relaxed);
        (&mut c.idle_rsp as *mut u64, t.ctx_rsp.load(Ordering::Relaxed), t.process.cr3)
    };
    let top = t.kstack_top();
    crate::arch::x86_64::gdt::set_kernel_stack(top);
    crate::smp::set_syscall_stack(top);
    crate::arch::x86_64::wrmsr(IA32_FS_BASE, t.fs_base.load(Ordering::Relaxed));
    // SAFETY: `save` points into this CPU's scheduler state, which lives
    // for the kernel's life; `new_rsp` is the thread's saved context on its
    // own stack; `cr3` maps the kernel half (direct map, kernel image).
    unsafe { lwk_switch_stack(save, new_rsp, cr3) };
    // Back in the scheduler context.
    CURRENT[crate::smp::cpu_id() as usize].store(core::ptr::null_mut(), Ordering::Relaxed);
    let mut c = cpu().lock();
    let t = c.current.take().expect("current thread");
    t.fs_base.store(crate::arch::x86_64::rdmsr(IA32_FS_BASE), Ordering::Relaxed);
    // The registers still hold t's FPU state; save it now so that it can be
    // resumed on this CPU or read for a signal frame at any time.
    t.fpu.save();
    match t.get_state() {
        ThreadState::Runnable => c.runq.push_back(t),
        ThreadState::WaitingOffload | ThreadState::WaitingSignal => c.waiting.push(t),
        ThreadState::Dead => {
            if c.fpu_owner == Some(Arc::as_ptr(&t) as usize) {
                c.fpu_owner = None;
            }
            drop(c);
            super::service::thread_gone(t);
        }
    }
}

const IA32_FS_BASE: u32 = 0xc000_0100;

/// From thread context: give the CPU back to the scheduler. Returns when
/// the scheduler runs this thread again.
pub fn yield_now(t: &Thread) {
    let idle = cpu().lock().idle_rsp;
    // SAFETY: we run on `t`'s kernel stack; the scheduler context saved in
    // `idle_rsp` is waiting in `run` on this CPU's boot stack, which the
    // kernel page table maps.
    unsafe { lwk_switch_stack(t.ctx_rsp.as_ptr(), idle, phys::kernel_root()) };
}

/// From thread context: end the thread for good.
pub fn exit_current(t: &Thread) -> ! {
    t.set_state(ThreadState::Dead);
    yield_now(t);
    unreachable!("a dead thread was resumed");
}

/// The first code a new thread runs (on its own stack, under its
/// process's page table).
extern "C" fn thread_main(t: *const Thread) -> ! {
    // SAFETY: the run queue holds an Arc of the thread while it runs.
    let t = unsafe { &*t };
    let start = t.start.lock().take();
    match start {
        Some(ThreadStart::Exec) => super::service::exec_main(t),
        Some(ThreadStart::Fork(parent)) => super::fork::child_main(t, parent),
        None => exit_current(t),
    }
}
