//! Per-CPU scheduling of LWK threads (ARCHITECTURE.md §6: per-CPU run
//! queues, round-robin, no tick unless threads share a CPU, no migration
//! unless asked).
//!
//! The CPU's idle loop (`main.rs`) calls [`poll`] before halting. `poll`
//! handles the offload area's events for this CPU (`service`), then runs
//! runnable threads one after the other: a thread runs until it waits (an
//! offloaded call longer than the spin time, a futex, a signal), yields,
//! exits, or its time slice ends; then control comes back here. Waiting
//! threads sit on their CPU's waiting list and become runnable when what
//! they wait for happened (their offload slot is DONE, a waker set
//! `woken`, their deadline passed, a signal they take arrived, or their
//! process is dying). A thread waiting for an offload declares
//! `lwk_waiting` before it yields, so the proxy rings this CPU's irqfd when
//! it answers; before the CPU halts, the timer is set for the earliest
//! deadline.
//!
//! Other CPUs reach this CPU's queues under its lock and kick it with the
//! wake-up IPI ([`WAKEUP_VECTOR`]); the IPI (like the timer) marks the CPU
//! for a look at its queues at the next return to user mode
//! ([`resched_point`]). A CPU with one runnable thread has no timer but
//! the heartbeat; with more, the running thread's slice ([`SLICE_US`])
//! ends with a timer interrupt and the next one runs (time sharing).
//!
//! The scheduler context runs on the CPU's boot stack with the kernel page
//! table; a thread runs on its own kernel stack (direct map) with its
//! process's table. [`switch_stack`] changes CR3 and stack together, with
//! no stack access in between, so each side only touches memory mapped in
//! its own table.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, Ordering};

use ihk_abi::boot_params::MAX_CPUS;
use ihk_abi::doorbell::WAKEUP_VECTOR;
use ihk_abi::offload::SLOT_DONE;
use spin::{Mutex, Once};

use super::cpuset::CpuSet;
use super::{phys, Process, Thread, ThreadState, NO_MIGRATION};
use crate::arch::x86_64::{deadline, tlb, tsc, x2apic};

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
    /// A new thread of a running process (clone with CLONE_THREAD): enter
    /// user mode with this frame.
    Clone(alloc::boxed::Box<crate::arch::x86_64::idt::TrapFrame>),
    /// A utility thread (`mcexec --enable-uti`): its proxy runs the program
    /// on Linux from this frame (`uti`).
    Uti(alloc::boxed::Box<crate::arch::x86_64::idt::TrapFrame>),
}

/// Time slice of a thread when its CPU has more runnable threads.
pub const SLICE_US: u64 = 10_000;

struct CpuSched {
    /// Saved rsp of the scheduler context while a thread runs.
    idle_rsp: u64,
    current: Option<Arc<Thread>>,
    runq: VecDeque<Arc<Thread>>,
    waiting: Vec<Arc<Thread>>,
    /// Thread whose FPU state is in this CPU's registers.
    fpu_owner: Option<usize>,
    /// TSC at which the running thread's slice ends (0: no slice).
    slice_end: u64,
}

static CPUS: Once<Vec<Mutex<CpuSched>>> = Once::new();

/// The thread running on each CPU (null in the scheduler context): read on
/// every system call, so kept apart from the locked scheduler state.
static CURRENT: [AtomicPtr<Thread>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
/// Threads living on each CPU (running, runnable or waiting): the load that
/// placement compares.
static LOAD: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Set by the wake-up IPI, the timer and local wake-ups: look at the
/// queues at the next return to user mode.
static RESCHED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

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
                    slice_end: 0,
                })
            })
            .collect()
    });
}

fn me() -> u32 {
    crate::smp::cpu_id()
}

fn cpu_of(c: u32) -> &'static Mutex<CpuSched> {
    &CPUS.get().expect("sched::init")[c as usize]
}

fn cpu() -> &'static Mutex<CpuSched> {
    cpu_of(me())
}

/// The thread running on this CPU, if any (None in the scheduler context).
/// The reference is valid while that thread runs: the scheduler holds an
/// `Arc` of it until it switches back, and a thread never outlives its own
/// kernel code.
pub fn current() -> Option<&'static Thread> {
    let p = CURRENT.get(me() as usize)?.load(Ordering::Relaxed);
    // SAFETY: see above; set in `run` from the Arc it keeps in `current`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Prepare a new thread's kernel stack so the first switch to it enters
/// `thread_main(thread)`.
pub fn prepare_stack(t: &Arc<Thread>) {
    let top = t.kstack_top();
    // Layout popped by lwk_switch_stack: r15 r14 r13 r12 rbx rbp, then ret;
    // two words above keep rsp 16-byte aligned at the trampoline's call.
    // The thread's kernel code runs below the top TrapFrame, the slot where
    // its user state lives (`trap::enter_with_frame` writes its first one
    // there while running on this stack).
    let trampoline = lwk_thread_trampoline as *const () as u64;
    let frame = [0u64, 0, 0, Arc::as_ptr(t) as u64, 0, 0, trampoline, 0, 0];
    let below = (core::mem::size_of::<crate::arch::x86_64::idt::TrapFrame>() as u64).next_multiple_of(16);
    let sp = top - below - (frame.len() as u64 * 8);
    // SAFETY: the stack is the thread's own, fresh, and large enough.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut u64, frame.len()) };
    t.ctx_rsp.store(sp, Ordering::Relaxed);
}

/// Send the wake-up IPI to LWK CPU `c`.
fn kick(c: u32) {
    if let Some(core) = crate::boot_params::get().cores().get(c as usize) {
        x2apic::send_ipi(core.apic_id, WAKEUP_VECTOR);
    }
}

/// A new thread `t` starts life on CPU `c`'s run queue.
pub fn enqueue_on(c: u32, t: Arc<Thread>) {
    LOAD[c as usize].fetch_add(1, Ordering::Relaxed);
    push_runnable(c, t);
}

/// Put `t` (already counted in `c`'s load) on `c`'s run queue.
fn push_runnable(c: u32, t: Arc<Thread>) {
    t.cpu.store(c, Ordering::Relaxed);
    t.process.thread_slot(t.slot).cpu.store(c, Ordering::Relaxed);
    t.set_state(ThreadState::Runnable);
    cpu_of(c).lock().runq.push_back(t);
    notify(c);
}

/// CPU `c` has new work on its queues: kick it, or, for this CPU, look at
/// the queues at the next return to user mode.
fn notify(c: u32) {
    if c != me() {
        kick(c);
    } else {
        RESCHED[c as usize].store(true, Ordering::Relaxed);
    }
}

/// The least loaded CPU of `set` (lowest id on ties), for a new thread.
pub fn least_loaded(set: &CpuSet) -> Option<u32> {
    let n = crate::boot_params::get().cores().len() as u32;
    set.iter().filter(|&c| c < n).min_by_key(|&c| LOAD[c as usize].load(Ordering::Relaxed))
}

/// Wake `t` from a `WaitingEvent` wait (futex wake): its CPU's scheduler
/// makes it runnable.
pub fn wake(t: &Thread) {
    t.woken.store(true, Ordering::Release);
    notify(t.cpu());
}

/// Make every CPU that runs a thread of `p` enter the kernel (process end,
/// a signal for it): they look at their queues and at the process there.
pub fn kick_threads_of(p: &Process) {
    let mut done = CpuSet::empty();
    let me = me();
    for t in p.threads.lock().iter() {
        let c = t.cpu();
        if c != me && !done.contains(c) {
            done.insert(c);
            kick(c);
        }
    }
}

/// Kick the CPU of thread `t` unless it is this one.
pub fn kick_thread(t: &Thread) {
    notify(t.cpu());
}

/// The wake-up IPI or the scheduler's deadline arrived on this CPU.
pub fn note_resched() {
    RESCHED[me() as usize].store(true, Ordering::Relaxed);
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
    super::ptimer::run_due();
    RESCHED[me() as usize].store(false, Ordering::Relaxed);
    wake_finished(&mut cpu().lock());
    let next = cpu().lock().runq.pop_front();
    if let Some(t) = next {
        run(t);
        return true;
    }
    prepare_halt()
}

/// Is waiting thread `t` ready to run again? `now`: TSC.
fn ready(t: &Thread, now: u64) -> bool {
    if t.must_leave() {
        return true;
    }
    match t.get_state() {
        ThreadState::WaitingSignal => super::signal::has_deliverable(t),
        ThreadState::WaitingEvent => {
            let d = t.deadline.load(Ordering::Relaxed);
            t.woken.load(Ordering::Acquire) || (d != 0 && now >= d) || super::signal::has_deliverable(t)
        }
        _ => t.process.thread_slot(t.slot).state.load(Ordering::Acquire) == SLOT_DONE,
    }
}

/// Move waiting threads that are ready back to the run queue.
fn wake_finished(c: &mut CpuSched) {
    let now = tsc::now();
    let mut i = 0;
    while i < c.waiting.len() {
        if ready(&c.waiting[i], now) {
            let t = c.waiting.swap_remove(i);
            t.set_state(ThreadState::Runnable);
            c.runq.push_back(t);
        } else {
            i += 1;
        }
    }
}

/// Earliest deadline of this CPU's timed waits (0: none).
fn earliest_deadline(c: &CpuSched) -> u64 {
    c.waiting.iter().map(|t| t.deadline.load(Ordering::Relaxed)).filter(|&d| d != 0).min().unwrap_or(0)
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// Before halting: false if a waiting thread became ready meanwhile. (A
/// thread waiting for an offload declared `lwk_waiting` before it yielded,
/// so its proxy rings this CPU when it answers.) Sets the timer for the
/// earliest timed wait.
fn prepare_halt() -> bool {
    let c = cpu().lock();
    fence(Ordering::SeqCst);
    let now = tsc::now();
    let any_ready = c.waiting.iter().any(|t| ready(t, now));
    deadline::set_sched(earliest_deadline(&c));
    !c.runq.is_empty() || any_ready
}

/// Run `t` until it yields back.
fn run(t: Arc<Thread>) {
    let (save, new_rsp, cr3) = {
        let mut c = cpu().lock();
        let me_ = Arc::as_ptr(&t) as usize;
        if c.fpu_owner != Some(me_) {
            // The previous owner's state was saved when it yielded.
            t.fpu.restore();
            c.fpu_owner = Some(me_);
        }
        c.current = Some(Arc::clone(&t));
        // Others waiting to run here: the thread gets a slice.
        c.slice_end = if c.runq.is_empty() { 0 } else { tsc::now() + tsc::us_to_ticks(SLICE_US) };
        deadline::set_sched(min_nonzero(c.slice_end, earliest_deadline(&c)));
        CURRENT[me() as usize].store(Arc::as_ptr(&t) as *mut Thread, Ordering::Relaxed);
        (&mut c.idle_rsp as *mut u64, t.ctx_rsp.load(Ordering::Relaxed), t.process.cr3)
    };
    let top = t.kstack_top();
    crate::arch::x86_64::gdt::set_kernel_stack(top);
    crate::smp::set_syscall_stack(top);
    crate::arch::x86_64::wrmsr(IA32_FS_BASE, t.fs_base.load(Ordering::Relaxed));
    tlb::set_active_root(cr3);
    super::cputime::switched_in(&t);
    // SAFETY: `save` points into this CPU's scheduler state, which lives
    // for the kernel's life; `new_rsp` is the thread's saved context on its
    // own stack; `cr3` maps the kernel half (direct map, kernel image).
    unsafe { lwk_switch_stack(save, new_rsp, cr3) };
    // Back in the scheduler context.
    tlb::set_active_root(0);
    CURRENT[me() as usize].store(core::ptr::null_mut(), Ordering::Relaxed);
    let mut c = cpu().lock();
    let t = c.current.take().expect("current thread");
    c.slice_end = 0;
    super::cputime::switched_out(&t);
    t.fs_base.store(crate::arch::x86_64::rdmsr(IA32_FS_BASE), Ordering::Relaxed);
    // The registers still hold t's FPU state; save it now so that it can be
    // resumed on this CPU or read for a signal frame at any time.
    t.fpu.save();
    match t.get_state() {
        ThreadState::Runnable => {
            let to = t.migrate_to.swap(NO_MIGRATION, Ordering::Relaxed);
            if to != NO_MIGRATION && to != me() {
                // Its FPU state lives in its save area from now on.
                if c.fpu_owner == Some(Arc::as_ptr(&t) as usize) {
                    c.fpu_owner = None;
                }
                drop(c);
                LOAD[me() as usize].fetch_sub(1, Ordering::Relaxed);
                LOAD[to as usize].fetch_add(1, Ordering::Relaxed);
                push_runnable(to, t);
            } else {
                c.runq.push_back(t);
            }
        }
        ThreadState::WaitingOffload | ThreadState::WaitingSignal | ThreadState::WaitingEvent => c.waiting.push(t),
        ThreadState::Dead => {
            if c.fpu_owner == Some(Arc::as_ptr(&t) as usize) {
                c.fpu_owner = None;
            }
            drop(c);
            LOAD[me() as usize].fetch_sub(1, Ordering::Relaxed);
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

/// From thread context: let another runnable thread of this CPU run first
/// (sched_yield). Returns at once when there is none.
pub fn yield_if_others(t: &Thread) {
    let others = {
        let mut c = cpu().lock();
        wake_finished(&mut c);
        !c.runq.is_empty()
    };
    if others {
        t.set_state(ThreadState::Runnable);
        yield_now(t);
    }
}

/// From thread context, on the way back to user mode: if this CPU was
/// kicked or its deadline passed, look at its queues; give the CPU to the
/// next thread when the running one's slice is over, and start a slice
/// when others became runnable.
pub fn resched_point(t: &Thread) {
    let c_id = me() as usize;
    if !RESCHED[c_id].swap(false, Ordering::Relaxed) && t.migrate_to.load(Ordering::Relaxed) == NO_MIGRATION {
        return;
    }
    let switch = {
        let mut c = cpu().lock();
        wake_finished(&mut c);
        let now = tsc::now();
        let switch = if t.migrate_to.load(Ordering::Relaxed) != NO_MIGRATION {
            true
        } else if c.runq.is_empty() {
            c.slice_end = 0;
            false
        } else if c.slice_end == 0 {
            c.slice_end = now + tsc::us_to_ticks(SLICE_US);
            false
        } else {
            now >= c.slice_end
        };
        deadline::set_sched(min_nonzero(c.slice_end, earliest_deadline(&c)));
        switch
    };
    if switch {
        t.set_state(ThreadState::Runnable);
        yield_now(t);
    }
}

/// From thread context: end the thread for good.
pub fn exit_current(t: &Thread) -> ! {
    t.set_state(ThreadState::Dead);
    yield_now(t);
    unreachable!("a dead thread was resumed");
}

/// From thread context: wait (`WaitingEvent`) until woken, `deadline`
/// (TSC, 0: none) passes, a signal `t` takes arrives, or the process dies.
/// The caller cleared `t.woken` before publishing itself to wakers.
pub fn wait_event(t: &Thread, deadline: u64) {
    t.deadline.store(deadline, Ordering::Relaxed);
    loop {
        let now = tsc::now();
        if t.woken.load(Ordering::Acquire)
            || (deadline != 0 && now >= deadline)
            || super::signal::has_deliverable(t)
            || t.must_leave()
        {
            break;
        }
        t.set_state(ThreadState::WaitingEvent);
        yield_now(t);
    }
    t.deadline.store(0, Ordering::Relaxed);
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
        Some(ThreadStart::Clone(frame)) => super::thread::clone_main(t, *frame),
        Some(ThreadStart::Uti(frame)) => super::uti::uti_main(t, *frame),
        None => exit_current(t),
    }
}
