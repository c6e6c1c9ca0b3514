//! The process service: the LWK end of the offload area
//! (`ihk_abi::offload`). Starts a process when `mcexec` sets its slot to
//! START, delivers forwarded signals, reports exits, and frees everything
//! once the host reports the proxy gone (ending the process first, with a
//! kmsg line, when `mcexec` died before it).
//!
//! A slot's events are handled by the LWK CPU named in its start parameters,
//! from that CPU's scheduler loop (`sched::poll`); the CPU of a process's
//! last thread reports its exit and may free it (`release`). The process
//! table's lock orders the two for a started process.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

use ihk_abi::doorbell::IKC_DOORBELL_PORT;
use ihk_abi::offload::*;
use spin::Mutex;

use crate::mm::aspace::{AddressSpace, MapTable};
use super::sched::{self, ThreadStart};
use super::cpuset::CpuSet;
use super::signal::{self, SignalState};
use super::{phys, Process, Thread, ThreadState, KSTACK_SIZE};
use crate::errno::*;

/// Map table entries per process.
const MAP_CAPACITY: u32 = 8192;

/// Processes by slot index.
static PROCS: Mutex<Vec<Option<Arc<Process>>>> = Mutex::new(Vec::new());

fn area() -> *mut u8 {
    phys::to_virt(OFFLOAD_AREA_GPA)
}

fn slot(i: usize) -> &'static ProcessSlot {
    // SAFETY: the offload area is reserved in the boot area for the
    // kernel's life and initialised by `init`; slots are atomics or fields
    // used per the protocol.
    unsafe { &*(area().add(process_slot_offset(i)) as *const ProcessSlot) }
}

/// Initialise the offload area (BSP, at boot, before RUNNING).
pub fn init() {
    let bp = crate::boot_params::get();
    assert!(
        bp.boot_area.phys <= OFFLOAD_AREA_GPA && OFFLOAD_AREA_GPA + OFFLOAD_AREA_MAX_SIZE <= bp.boot_area.end(),
        "offload area outside the boot area"
    );
    // SAFETY: the area is ours (boot area, not in the allocator), no host
    // side uses it before the header's magic is written (last).
    unsafe {
        core::ptr::write_bytes(area(), 0, OFFLOAD_AREA_SIZE as usize);
        let h = area() as *mut OffloadAreaHeader;
        (*h).version = OFFLOAD_VERSION;
        (*h).nr_slots = MAX_PROCESSES as u32;
        (*h).slot_size = core::mem::size_of::<ProcessSlot>() as u32;
        fence(Ordering::Release);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*h).magic), OFFLOAD_MAGIC);
    }
    *PROCS.lock() = vec![None; MAX_PROCESSES];
}

/// Publish the user FPU state the LWK keeps per thread (BSP, at boot,
/// after its FPU set-up, before RUNNING).
pub fn publish_user_fpu(components: u64) {
    // SAFETY: the header is ours (see `init`); mcexec reads it after RUNNING.
    unsafe {
        let h = area() as *mut OffloadAreaHeader;
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*h).user_fpu_components), components);
    }
}

/// Ring the host doorbell of process slot `i`.
pub fn ring_host(i: u32) {
    crate::arch::x86_64::outl(IKC_DOORBELL_PORT, process_doorbell(i));
}

/// Handle the offload area's work for this CPU (scheduler context).
pub fn poll_events() {
    let me = crate::smp::cpu_id();
    for i in 0..MAX_PROCESSES {
        let s = slot(i);
        let state = s.state.load(Ordering::Acquire);
        if state == ProcState::Free as u32 || state == ProcState::Claimed as u32 {
            continue;
        }
        // SAFETY: `start` is stable once the slot left CLAIMED.
        let cpu = unsafe { core::ptr::read_volatile(&s.start.cpu) };
        if cpu != me {
            continue;
        }
        if state == ProcState::Start as u32 {
            if s.events.load(Ordering::Acquire) & EVENT_PROXY_GONE != 0 {
                // mcexec died before the process started.
                // SAFETY: `start` is stable once the slot left CLAIMED.
                let sp: StartParams = unsafe { core::ptr::read_volatile(&s.start) };
                if let Some(parent) = fork_parent(&sp) {
                    parent.fork_result.store(-(EAGAIN.0 as i64), Ordering::Release);
                }
                s.events.store(0, Ordering::Relaxed);
                s.state.store(ProcState::Free as u32, Ordering::Release);
                continue;
            }
            start_process(i);
            continue;
        }
        // Running or Exited. Under the process table's lock the slot cannot
        // be freed (only `release` frees a started process's slot, and it
        // does so under this lock), so the state, CPU and events read here
        // belong to one process, not to a new one in a reused slot.
        let (events, proc) = {
            let procs = PROCS.lock();
            let now = s.state.load(Ordering::Acquire);
            // SAFETY: as above.
            let cpu = unsafe { core::ptr::read_volatile(&s.start.cpu) };
            if (now != ProcState::Running as u32 && now != ProcState::Exited as u32) || cpu != me {
                continue;
            }
            (s.events.swap(0, Ordering::AcqRel), procs[i].clone())
        };
        if events & EVENT_SIGNAL != 0 {
            let sigs = s.pending_signals.swap(0, Ordering::AcqRel);
            if let Some(p) = &proc {
                for n in 1..=64u32 {
                    if sigs & (1 << (n - 1)) != 0 {
                        super::signal::send_to_process(p, n, super::signal::SigInfo::default());
                    }
                }
            }
        }
        if events & EVENT_PROXY_GONE != 0 {
            match &proc {
                Some(p) if p.live_threads.load(Ordering::Acquire) > 0 => {
                    if !p.is_dying() {
                        crate::printk!(
                            "mcexec (pid {}) is gone: ending process {} ({})",
                            p.pid,
                            p.pid,
                            p.comm.lock().as_str()
                        );
                    }
                    kill_process(p, 9, false);
                    // Freed when its last thread is gone (thread_gone). That
                    // thread may have looked for the flag while it was
                    // swapped out above: then it is ours to free (each side
                    // writes, fences, then reads the other's word).
                    s.events.fetch_or(EVENT_PROXY_GONE, Ordering::AcqRel);
                    fence(Ordering::SeqCst);
                    // (Exited is stored once no thread is left.)
                    if s.state.load(Ordering::Acquire) == ProcState::Exited as u32 {
                        release(i, p);
                    }
                }
                Some(p) => release(i, p),
                // Taken by a release under way on another CPU, which frees
                // the slot when done.
                None => {}
            }
        }
    }
}

/// The process a fork child copies, if `sp` describes one.
fn fork_parent(sp: &StartParams) -> Option<Arc<Process>> {
    if sp.fork_from_slot == NO_FORK {
        return None;
    }
    let p = PROCS.lock().get(sp.fork_from_slot as usize)?.clone()?;
    (p.pid == sp.fork_from_pid && p.fork_req.lock().is_some()).then_some(p)
}

/// Create the process of slot `i` from its start parameters.
fn start_process(i: usize) {
    let s = slot(i);
    // SAFETY: mcexec wrote `start` before the Release store of START.
    let sp: StartParams = unsafe { core::ptr::read_volatile(&s.start) };
    let parent = fork_parent(&sp);
    if sp.fork_from_slot != NO_FORK && parent.is_none() {
        s.start_error.store(-(ESRCH.0 as i64), Ordering::Relaxed);
        s.state.store(ProcState::Failed as u32, Ordering::Release);
        ring_host(i as u32);
        return;
    }
    match create(i, s, &sp) {
        Ok(p) => {
            if let Some(parent) = &parent {
                // A fork child runs its parent's program, with copies of
                // its descriptors.
                *p.exe_path.lock() = parent.exe_path.lock().clone();
                *p.view_dirs.lock() = parent.view_dirs.lock().clone();
            }
            let cpu = crate::smp::cpu_id();
            let res = match ThreadRes::new(&p, Some(0)) {
                Ok(r) => r,
                Err(e) => return fail_start(i, s, e, parent),
            };
            let start = match parent {
                Some(parent) => ThreadStart::Fork(parent),
                None => ThreadStart::Exec,
            };
            let exec = matches!(start, ThreadStart::Exec);
            let main = new_thread(res, p.pid, cpu, start);
            if exec {
                // The mask mcexec started with, as execve keeps it.
                main.sig_mask.store(sp.sig_mask & !signal::UNBLOCKABLE, Ordering::Relaxed);
            }
            PROCS.lock()[i] = Some(p);
            s.state.store(ProcState::Running as u32, Ordering::Release);
            sched::enqueue_on(cpu, main);
        }
        Err(e) => fail_start(i, s, e, parent),
    }
}

/// The process of slot `i` cannot start: tell its mcexec (and the parent
/// of a fork).
fn fail_start(i: usize, s: &ProcessSlot, e: Errno, parent: Option<Arc<Process>>) {
    if let Some(parent) = parent {
        parent.fork_result.store(-(e.0 as i64), Ordering::Release);
    }
    s.start_error.store(-(e.0 as i64), Ordering::Relaxed);
    s.state.store(ProcState::Failed as u32, Ordering::Release);
    ring_host(i as u32);
}

fn create(i: usize, s: &'static ProcessSlot, sp: &StartParams) -> Result<Arc<Process>, Errno> {
    let g = sp.mirror_granule;
    if !g.is_power_of_two() || g < phys::PAGE || sp.max_threads == 0 || sp.max_threads > 1024 {
        return Err(EINVAL);
    }
    let (threads_off, map_off, size) = proxy_area_layout(sp.max_threads, MAP_CAPACITY);
    let size = size.div_ceil(phys::PAGE) * phys::PAGE;
    let area_pa = phys::alloc(size, phys::PAGE).ok_or(ENOMEM)?;
    // Header and thread slots start zeroed; map entries past the count are
    // never read.
    phys::zero(area_pa, map_off as u64);
    let base = phys::to_virt(area_pa);
    // SAFETY: the fresh area is ours; mcexec reads it only after RUNNING.
    unsafe {
        let h = base as *mut ProxyAreaHeader;
        (*h).magic = PROXY_AREA_MAGIC;
        (*h).size = size;
        (*h).thread_capacity = sp.max_threads;
        (*h).map_capacity = MAP_CAPACITY;
        (*h).threads_offset = threads_off;
        (*h).map_offset = map_off;
    }
    let map = MapTable {
        header: base as *mut ProxyAreaHeader,
        // SAFETY: offsets inside the area (proxy_area_layout).
        entries: unsafe { base.add(map_off as usize) } as *mut MapEntry,
        capacity: MAP_CAPACITY,
    };
    let numa = phys::local_numa();
    let in_flight = Arc::new(AtomicU32::new(0));
    let aspace = match AddressSpace::new(g, numa, map, Arc::clone(&in_flight)) {
        Ok(a) => a,
        Err(e) => {
            phys::free(area_pa, size);
            return Err(e);
        }
    };
    let cr3 = aspace.pt.root();
    let comm = comm_of_exe(sp);
    let ncpus = crate::boot_params::get().cores().len() as u32;
    let mut cpu_set = CpuSet::range(sp.cpu_set_first, sp.cpu_set_count).intersect(&CpuSet::range(0, ncpus));
    if cpu_set.is_empty() {
        cpu_set = CpuSet::range(sp.cpu, 1);
    }
    // The main thread runs on this CPU (the one named in the slot).
    cpu_set.insert(crate::smp::cpu_id());
    s.proxy_area.store(area_pa, Ordering::Relaxed);
    s.proxy_area_size.store(size, Ordering::Relaxed);
    s.lwk_pid.store(sp.host_pid, Ordering::Relaxed);
    Ok(Arc::new(Process {
        pid: sp.host_pid,
        ppid: sp.host_ppid,
        slot_index: i as u32,
        slot: s,
        start: *sp,
        area_pa,
        area_size: size,
        // SAFETY: inside the area.
        threads_ptr: unsafe { base.add(threads_off as usize) } as *mut ThreadSlot,
        thread_capacity: sp.max_threads,
        aspace: super::sync::ThreadMutex::new(aspace),
        cr3,
        signals: Mutex::new(SignalState::inherited(sp.sig_ignored)),
        sig_pending: AtomicU64::new(0),
        sig_info: Mutex::new([Default::default(); 64]),
        live_threads: AtomicU32::new(0),
        dying: AtomicBool::new(false),
        exit_status: Mutex::new(None),
        comm: Mutex::new(comm),
        slot_bitmap: Mutex::new(vec![false; sp.max_threads as usize]),
        start_tsc: crate::arch::x86_64::tsc::now(),
        in_flight,
        fork_req: Mutex::new(None),
        fork_result: core::sync::atomic::AtomicI64::new(0),
        fork_lock: super::sync::ThreadMutex::new(()),
        cpu_set,
        threads: Mutex::new(Vec::new()),
        last_exit_code: AtomicU32::new(0),
        exe_path: Mutex::new(None),
        view_dirs: Mutex::new(Vec::new()),
        times: super::cputime::Times::default(),
        timers: Mutex::new(super::ptimer::Timers::default()),
        cpu_timers: AtomicU32::new(0),
        view_writers: AtomicU32::new(0),
        sigfds: Mutex::new(Vec::new()),
        sigfd_count: AtomicU32::new(0),
    }))
}

/// The name Linux would show for the program (its file name, 15 bytes):
/// filled in by the loader from AT_EXECFN; "a.out" until then.
fn comm_of_exe(_sp: &StartParams) -> String {
    String::from("a.out")
}

/// What a thread needs before it exists: a free offload slot (reserved
/// in the process's bitmap), a kernel stack and an FPU save area. Dropped
/// unused, it gives them back.
pub struct ThreadRes {
    process: Arc<Process>,
    slot: u32,
    kstack_pa: u64,
    fpu: Option<super::fpu::FpuState>,
}

impl ThreadRes {
    /// Reserve slot `want` (or the lowest free one) and allocate.
    pub fn new(p: &Arc<Process>, want: Option<u32>) -> Result<ThreadRes, Errno> {
        let slot = {
            let mut b = p.slot_bitmap.lock();
            let i = match want {
                Some(i) => (b.get(i as usize).copied() == Some(false)).then_some(i as usize),
                None => b.iter().position(|&used| !used),
            }
            .ok_or(EAGAIN)?;
            b[i] = true;
            i as u32
        };
        let mut r = ThreadRes { process: Arc::clone(p), slot, kstack_pa: 0, fpu: None };
        r.kstack_pa = phys::alloc(KSTACK_SIZE, phys::PAGE).ok_or(ENOMEM)?;
        r.fpu = Some(super::fpu::FpuState::new().ok_or(ENOMEM)?);
        Ok(r)
    }

    pub fn slot(&self) -> u32 {
        self.slot
    }
}

impl Drop for ThreadRes {
    fn drop(&mut self) {
        if self.kstack_pa != 0 {
            phys::free(self.kstack_pa, KSTACK_SIZE);
        }
        if self.slot != u32::MAX {
            self.process.slot_bitmap.lock()[self.slot as usize] = false;
        }
    }
}

/// A new thread of `p` with `res`, to run on LWK CPU `cpu` (the caller
/// enqueues it there).
pub fn new_thread(mut res: ThreadRes, tid: u32, cpu: u32, start: ThreadStart) -> Arc<Thread> {
    let p = Arc::clone(&res.process);
    let slot_i = res.slot;
    let kstack_pa = core::mem::replace(&mut res.kstack_pa, 0);
    let fpu = res.fpu.take().expect("allocated");
    res.slot = u32::MAX; // the thread owns the slot now
    drop(res);
    let ts = p.thread_slot(slot_i);
    ts.tid.store(tid, Ordering::Relaxed);
    ts.cpu.store(cpu, Ordering::Relaxed);
    let t = Arc::new(Thread {
        tid: AtomicU32::new(tid),
        process: Arc::clone(&p),
        slot: slot_i,
        kstack_pa,
        ctx_rsp: AtomicU64::new(0),
        state: Mutex::new(ThreadState::Runnable),
        fpu,
        fs_base: AtomicU64::new(0),
        clear_child_tid: AtomicU64::new(0),
        sig_mask: AtomicU64::new(0),
        sig_pending: AtomicU64::new(0),
        sig_info: Mutex::new([Default::default(); 64]),
        sigwait_set: AtomicU64::new(0),
        cpu: AtomicU32::new(cpu),
        affinity: Mutex::new(p.cpu_set),
        migrate_to: AtomicU32::new(super::NO_MIGRATION),
        woken: AtomicBool::new(false),
        deadline: AtomicU64::new(0),
        robust_list: AtomicU64::new(0),
        robust_len: AtomicU64::new(0),
        leave: AtomicBool::new(false),
        uti: AtomicBool::new(matches!(start, ThreadStart::Uti(_))),
        uti_next: AtomicBool::new(false),
        start: Mutex::new(Some(start)),
        altstack: Mutex::new((0, 0, 2 /* SS_DISABLE */)),
        restart_nr: AtomicU64::new(super::NO_RESTART),
        saved_sigmask: AtomicU64::new(super::NO_SAVED_MASK),
        acct: super::cputime::Acct::default(),
        name: Mutex::new(None),
    });
    p.live_threads.fetch_add(1, Ordering::AcqRel);
    p.threads.lock().push(Arc::clone(&t));
    sched::prepare_stack(&t);
    t
}

/// Main thread of a new process: load the program and enter user mode.
pub fn exec_main(t: &Thread) -> ! {
    let p = &t.process;
    match crate::elf::exec(t) {
        Ok(frame) => super::trap::enter_with_frame(t, frame),
        Err(e) => {
            if !p.is_dying() {
                p.slot.start_error.store(-(e.0 as i64), Ordering::Relaxed);
            }
            exit_process(t, 0, 0)
        }
    }
}

/// Decide the process's exit status (first caller wins) and end it.
pub fn exit_process(t: &Thread, code: u32, sig: u32) -> ! {
    let p = &t.process;
    kill_process(p, sig, true);
    {
        let mut st = p.exit_status.lock();
        if st.is_none() {
            *st = Some((code & 0xff, sig));
        }
    }
    sched::exit_current(t)
}

/// Mark `p` dying; its threads leave at their next chance.
pub fn kill_process(p: &Arc<Process>, sig: u32, _self_exit: bool) {
    {
        let mut st = p.exit_status.lock();
        if st.is_none() && sig != 0 {
            *st = Some((0, sig));
        }
    }
    p.dying.store(true, Ordering::Release);
    // Threads running on other CPUs leave at their next kernel entry: make
    // one happen now; waiting threads are woken by their CPU's scheduler.
    sched::kick_threads_of(p);
}

/// A thread is gone (scheduler context, off its stack).
pub fn thread_gone(t: Arc<Thread>) {
    let p = Arc::clone(&t.process);
    p.thread_slot(t.slot).tid.store(0, Ordering::Relaxed);
    p.slot_bitmap.lock()[t.slot as usize] = false;
    p.threads.lock().retain(|x| !Arc::ptr_eq(x, &t));
    drop(t);
    if p.live_threads.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    // The last thread: report the exit to mcexec (the code of the last
    // thread's exit when no exit_group or signal decided it).
    let (code, sig) = p.exit_status.lock().unwrap_or((p.last_exit_code.load(Ordering::Relaxed), 0));
    let s = p.slot;
    s.exit_code.store(code, Ordering::Relaxed);
    s.exit_signal.store(sig, Ordering::Relaxed);
    s.state.store(ProcState::Exited as u32, Ordering::Release);
    fence(Ordering::SeqCst);
    ring_host(p.slot_index);
    if s.events.load(Ordering::Acquire) & EVENT_PROXY_GONE != 0 {
        release(p.slot_index as usize, &p);
    }
}

/// Free process `p` of slot `i`, and the slot (its proxy is gone).
///
/// Both the slot's CPU (`poll_events`) and the CPU of the last thread
/// (`thread_gone`) may get here for the same exit, each at any delay (a
/// vCPU can be preempted anywhere). Only the caller that takes `p` itself
/// out of the table frees anything: a late caller may find the slot freed,
/// claimed by a new mcexec, and holding that mcexec's new process, which it
/// must not touch (CI: "process slot in unexpected state Free", the new
/// process's memory torn down under it). The slot's fields are reset and the
/// slot freed under the table's lock, which `poll_events` holds while it
/// reads a started slot.
fn release(i: usize, p: &Arc<Process>) {
    let p = {
        let mut procs = PROCS.lock();
        match &procs[i] {
            Some(q) if Arc::ptr_eq(q, p) => procs[i].take().unwrap(),
            _ => return,
        }
    };
    p.aspace.lock().teardown();
    phys::free(p.area_pa, p.area_size);
    // The page table and heap objects go with the last Arc.
    drop(p);
    let _procs = PROCS.lock();
    let s = slot(i);
    s.events.store(0, Ordering::Relaxed);
    s.pending_signals.store(0, Ordering::Relaxed);
    s.proxy_area.store(0, Ordering::Relaxed);
    s.start_error.store(0, Ordering::Relaxed);
    s.state.store(ProcState::Free as u32, Ordering::Release);
}

/// Call `f` for every live process (the rusage page, ikc/rusage.rs).
pub fn for_each_process(mut f: impl FnMut(&Arc<Process>)) {
    for p in PROCS.lock().iter().flatten() {
        f(p);
    }
}
