//! Processes and threads of the LWK (ARCHITECTURE.md §6).
//!
//! A process is started by `mcexec` through a slot of the offload area
//! (`service`), owns an address space (`mm::aspace`) and threads; each
//! thread has a kernel stack, saved FPU/SIMD state (`fpu`), and an offload
//! slot served by one proxy thread in `mcexec` (`offload`; the offloaded
//! half of file mappings is `filemap_io`). Threads are scheduled
//! cooperatively per CPU (`sched`). User-mode faults and signal delivery
//! are in `trap` and `signal` (frame layout in `sigframe`); exec and fork in `exec` and `fork` (ELF
//! loading, `crate::elf`, belongs to this layer).
//!
//! Must not: let kernel code that may run under a process's page table use
//! identity-mapped (lower-half) addresses: everything here goes through the
//! direct map (`phys::to_virt`).

pub mod cpuset;
pub mod cputime;
pub mod exec;
pub mod filemap_io;
pub mod fork;
pub mod fpu;
pub mod futex;
pub mod futex_queue;
pub mod offload;
pub mod ptimer;
pub mod sched;
pub mod service;
pub mod share;
pub mod sigfd;
pub mod sigframe;
pub mod signal;
pub mod sync;
pub mod thread;
pub mod trap;
pub mod uti;
pub mod uti_signal;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ihk_abi::offload::{ProcessSlot, StartParams, ThreadSlot};
use spin::Mutex;

use crate::mm::aspace::AddressSpace;
use crate::mm::phys;
use cpuset::CpuSet;
use signal::SignalState;

/// Kernel stack of every thread.
pub const KSTACK_SIZE: u64 = 32 * 1024;

/// One LWK process (the program one `mcexec` runs).
pub struct Process {
    /// Equal to the host pid of its `mcexec`.
    pub pid: u32,
    pub ppid: u32,
    /// Index of its slot in the offload area.
    pub slot_index: u32,
    pub slot: &'static ProcessSlot,
    pub start: StartParams,
    /// The proxy area (guest-physical) and its thread slots.
    pub area_pa: u64,
    pub area_size: u64,
    threads_ptr: *mut ThreadSlot,
    pub thread_capacity: u32,
    pub aspace: sync::ThreadMutex<AddressSpace>,
    /// CR3 of the process (its page table root; fixed for its life).
    pub cr3: u64,
    pub signals: Mutex<SignalState>,
    /// Process-directed pending signals (bit n-1 for signal n).
    pub sig_pending: AtomicU64,
    /// What each pending process-directed signal's siginfo says.
    pub sig_info: Mutex<[signal::SigInfo; 64]>,
    /// Threads alive (main thread included).
    pub live_threads: AtomicU32,
    /// Set when the process is being ended; threads leave at the next
    /// kernel exit or offload wake-up.
    pub dying: AtomicBool,
    /// Exit status once decided: (code, signal).
    pub exit_status: Mutex<Option<(u32, u32)>>,
    /// Short name for messages (`comm`).
    pub comm: Mutex<String>,
    /// Bitmap of thread slots in use.
    pub slot_bitmap: Mutex<alloc::vec::Vec<bool>>,
    /// TSC at start (times()).
    pub start_tsc: u64,
    /// Offloaded calls in flight (shared with the address space).
    pub in_flight: alloc::sync::Arc<AtomicU32>,
    /// A fork in progress (fork.rs): what the child copies, and the result
    /// the child reports (0 pending, child pid, or -errno).
    pub fork_req: Mutex<Option<fork::ForkReq>>,
    pub fork_result: core::sync::atomic::AtomicI64,
    /// Held by the thread forking (threads of one process fork one by one).
    pub fork_lock: sync::ThreadMutex<()>,
    /// The LWK CPUs the process may use (its share of the partition).
    pub cpu_set: CpuSet,
    /// Its live threads (a thread leaves the list in `service::thread_gone`).
    pub threads: Mutex<alloc::vec::Vec<Arc<Thread>>>,
    /// Code of the latest `exit` of a thread: the process's exit code when
    /// its last thread ends that way.
    pub last_exit_code: AtomicU32,
    /// The path of the program an execve loaded (`/proc/self/exe`, see
    /// `exec::exe_path`); `None`: the one mcexec started (`start.exe_fd`).
    pub exe_path: Mutex<Option<String>>,
    /// Descriptors of directories the LWK's /proc and /sys view lists.
    pub view_dirs: Mutex<alloc::vec::Vec<ViewDir>>,
    /// CPU time of its threads, dead ones included (`cputime`).
    pub times: cputime::Times,
    /// Its POSIX timers and CPU-time interval timers (`ptimer`).
    pub timers: Mutex<ptimer::Timers>,
    /// How many CPU-time timers run (0: nothing to check on the way to
    /// user mode, no CPU-time deadline).
    pub cpu_timers: AtomicU32,
    /// How many of `view_dirs` are `comm` files open for writing (0: a
    /// `write` needs no look at them).
    pub view_writers: AtomicU32,
    /// Its signalfds (`sigfd`), and how many (0: a `read` or a change of
    /// the pending signals needs no look at them).
    pub sigfds: Mutex<alloc::vec::Vec<sigfd::SigFd>>,
    pub sigfd_count: AtomicU32,
}

/// A descriptor of a directory that the LWK's /proc and /sys view lists
/// its own way (`lwkfs` says how, by `kind`), or of a thread's `comm`
/// file open for writing (`kind` [`VIEW_COMM`], `tid` its thread), and
/// the file it was opened on: a number closed and reused for another file
/// on Linux no longer matches, so no close needs to be watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewDir {
    pub fd: i32,
    pub kind: u8,
    pub dev: u64,
    pub ino: u64,
    pub tid: u32,
}

/// `ViewDir::kind` of a `comm` file open for writing.
pub const VIEW_COMM: u8 = 0x80;

// SAFETY: `threads_ptr` points into the proxy area (direct map) owned by
// the process; slots are used per the offload protocol.
unsafe impl Send for Process {}
unsafe impl Sync for Process {}

impl Process {
    pub fn thread_slot(&self, i: u32) -> &ThreadSlot {
        assert!(i < self.thread_capacity);
        // SAFETY: in bounds of the slot array in the proxy area.
        unsafe { &*self.threads_ptr.add(i as usize) }
    }

    pub fn thread_slot_ptr(&self, i: u32) -> *mut ThreadSlot {
        assert!(i < self.thread_capacity);
        // SAFETY: as above.
        unsafe { self.threads_ptr.add(i as usize) }
    }

    /// The current (even) sequence of the map table mcexec mirrors.
    pub fn map_seq(&self) -> u64 {
        // SAFETY: the proxy area header lives as long as the process.
        let h = unsafe { &*(phys::to_virt(self.area_pa) as *const ihk_abi::offload::ProxyAreaHeader) };
        h.map_seq.load(Ordering::Acquire)
    }

    pub fn is_dying(&self) -> bool {
        self.dying.load(Ordering::Acquire)
    }

    /// The live thread with id `tid`.
    pub fn thread(&self, tid: u32) -> Option<Arc<Thread>> {
        self.threads.lock().iter().find(|t| t.tid() == tid).cloned()
    }
}

/// What a thread is doing, for the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    Runnable,
    /// Waiting for its offload slot to become DONE.
    WaitingOffload,
    /// In sigsuspend: waiting for a signal it does not block.
    WaitingSignal,
    /// Waiting for a wake-up (`Thread::woken`: futex wake), its deadline
    /// (`Thread::deadline`), a signal it does not block, or its process's
    /// end (futex waits, sigtimedwait).
    WaitingEvent,
    Dead,
}

/// One LWK thread.
pub struct Thread {
    /// Its thread id ([`Thread::tid`]): the host tid of its proxy thread,
    /// the process's pid for the main thread and for the thread whose
    /// execve ended the others (Linux's de_thread).
    pub tid: AtomicU32,
    pub process: Arc<Process>,
    /// Its offload slot (index in the proxy area).
    pub slot: u32,
    pub kstack_pa: u64,
    /// Saved kernel stack pointer while switched out.
    pub ctx_rsp: AtomicU64,
    pub state: Mutex<ThreadState>,
    pub fpu: fpu::FpuState,
    pub fs_base: AtomicU64,
    pub clear_child_tid: AtomicU64,
    pub sig_mask: AtomicU64,
    /// Signals directed at this thread.
    pub sig_pending: AtomicU64,
    pub sig_info: Mutex<[signal::SigInfo; 64]>,
    /// The signals the thread waits for in sigtimedwait (Linux's
    /// real_blocked): their default action does not end the process then.
    pub sigwait_set: AtomicU64,
    /// The LWK CPU whose run queue holds the thread.
    pub cpu: AtomicU32,
    /// Where the thread may run (`sched_setaffinity`), inside its process's set.
    pub affinity: Mutex<CpuSet>,
    /// A CPU the thread moves to at its next return to user mode
    /// (`NO_MIGRATION`: none).
    pub migrate_to: AtomicU32,
    /// Set by a waker (futex wake) for a thread in `WaitingEvent`.
    pub woken: AtomicBool,
    /// TSC deadline of a timed wait (0: none).
    pub deadline: AtomicU64,
    /// set_robust_list: head of the list (user address) and its length.
    pub robust_list: AtomicU64,
    pub robust_len: AtomicU64,
    /// The thread must end at its next chance (another thread's execve).
    pub leave: AtomicBool,
    /// Its user code runs on Linux in its proxy thread (`uti`).
    pub uti: AtomicBool,
    /// `util_indicate_clone` was called: the thread's next clone creates a
    /// utility thread.
    pub uti_next: AtomicBool,
    /// Entry work of a new thread (run before entering user mode).
    pub start: Mutex<Option<sched::ThreadStart>>,
    /// sigaltstack: (sp, size, flags).
    pub altstack: Mutex<(u64, u64, u32)>,
    /// Number of an offloaded call the proxy interrupted for a signal
    /// (`NO_RESTART` if none): restarted after the handler if SA_RESTART.
    pub restart_nr: AtomicU64,
    /// The mask to restore after a signal taken in sigsuspend
    /// (`NO_SAVED_MASK` if none): what the handler's frame records.
    pub saved_sigmask: AtomicU64,
    /// Its CPU time (`cputime`).
    pub acct: cputime::Acct,
    /// Its name (`prctl(PR_SET_NAME)`, `comm`, `thread::name_of`); None:
    /// the process's (`Process::comm`). The main thread's is always the
    /// process's.
    pub name: Mutex<Option<String>>,
}

/// `Thread::saved_sigmask` when nothing is saved (a mask never has the
/// SIGKILL and SIGSTOP bits).
pub const NO_SAVED_MASK: u64 = u64::MAX;

pub const NO_RESTART: u64 = u64::MAX;

/// `Thread::migrate_to` when no move is pending.
pub const NO_MIGRATION: u32 = u32::MAX;

impl Thread {
    pub fn tid(&self) -> u32 {
        self.tid.load(Ordering::Relaxed)
    }

    pub fn cpu(&self) -> u32 {
        self.cpu.load(Ordering::Relaxed)
    }

    /// Must the thread stop running its program (its process ends, or
    /// another thread's execve ends it)?
    pub fn must_leave(&self) -> bool {
        self.process.is_dying() || self.leave.load(Ordering::Acquire)
    }

    pub fn kstack_top(&self) -> u64 {
        phys::to_virt(self.kstack_pa) as u64 + KSTACK_SIZE
    }

    pub fn set_state(&self, s: ThreadState) {
        *self.state.lock() = s;
    }

    pub fn get_state(&self) -> ThreadState {
        *self.state.lock()
    }

    pub fn take_restart(&self) -> Option<u64> {
        let n = self.restart_nr.swap(NO_RESTART, Ordering::Relaxed);
        (n != NO_RESTART).then_some(n)
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        phys::free(self.kstack_pa, KSTACK_SIZE);
    }
}

/// Per-CPU setup for running processes (every CPU, after its GDT/IDT).
pub fn init_this_cpu() {
    fpu::init_this_cpu();
    if crate::smp::cpu_id() == 0 {
        service::publish_user_fpu(fpu::xcr0());
    }
    crate::arch::x86_64::entry::init_this_cpu();
}

/// Boot-time setup on the BSP (after the frame allocator): the offload area.
pub fn init() {
    crate::mm::bulk::register(offload::zero_user, offload::copy_phys, offload::read_file);
    service::init();
    sched::init();
}

