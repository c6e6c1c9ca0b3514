//! Proxy threads: one host thread per LWK thread, each serving that
//! thread's offload slot (ARCHITECTURE.md §5). A proxy spins on its slot
//! for a short while after each call, then declares it sleeps and waits on a
//! futex on the slot's state word; the dispatcher (`session.rs`) wakes it when
//! the LWK rings the process doorbell.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::addr_of_mut;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ihk_abi::offload::{
    OffloadCall, ThreadSlot, SLOT_BUSY, SLOT_DONE, SLOT_REQUEST,
};

use crate::exec::Executor;
use crate::mirror::Mirror;
use crate::session::ForkCtx;

/// Shortest time a proxy spins on its slot before sleeping.
pub const SPIN_MIN: Duration = Duration::from_micros(50);
/// Longest: the spin adapts to the program's pace (a few times the recent
/// gap between calls), within these bounds.
pub const SPIN_MAX: Duration = Duration::from_millis(2);

/// The host side of one LWK process: its thread slots, mirror and executor.
pub struct Process {
    slots: *mut ThreadSlot,
    capacity: u32,
    pub mirror: Mirror,
    pub exec: Executor,
    /// irqfd of each LWK CPU, indexed by LWK CPU id (None: not ours).
    irqfds: Vec<Option<OwnedFd>>,
    /// pthread of the proxy serving each slot.
    proxies: Mutex<Vec<Option<libc::pthread_t>>>,
    /// For forking the proxy (OffloadCall::Fork).
    fork: ForkCtx,
}

// SAFETY: `slots` points into the guest window, which outlives the process
// (the Mirror holds the window); fields are accessed per the slot protocol.
unsafe impl Send for Process {}
unsafe impl Sync for Process {}

const EAGAIN: i64 = ihk_abi::linux::errno::EAGAIN.0 as i64;

impl Process {
    pub fn new(
        slots: *mut ThreadSlot,
        capacity: u32,
        mirror: Mirror,
        exec: Executor,
        irqfds: Vec<Option<OwnedFd>>,
        fork: ForkCtx,
    ) -> Process {
        Process {
            slots,
            capacity,
            mirror,
            exec,
            irqfds,
            proxies: Mutex::new(vec![None; capacity as usize]),
            fork,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub(crate) fn slot_ptr(&self, i: u32) -> *mut ThreadSlot {
        assert!(i < self.capacity);
        // SAFETY: in bounds of the slot array.
        unsafe { self.slots.add(i as usize) }
    }

    /// Shared view of slot `i` for its atomics.
    pub fn slot(&self, i: u32) -> &ThreadSlot {
        // SAFETY: in bounds; the atomics are the only fields read through it.
        unsafe { &*self.slot_ptr(i) }
    }

    /// Ring the irqfd of LWK CPU `cpu`.
    pub fn kick_cpu(&self, cpu: u32) {
        if let Some(Some(fd)) = self.irqfds.get(cpu as usize) {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a local to an eventfd.
            unsafe { libc::write(fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
        }
    }

    /// Start the proxy thread of slot `i`. Returns its host tid.
    pub fn start_proxy(self: &Arc<Self>, i: u32) -> std::io::Result<u32> {
        let me = Arc::clone(self);
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(format!("proxy{i}"))
            .stack_size(256 << 10)
            .spawn(move || {
                // SAFETY: plain getters of the calling thread's ids.
                let _ = tx.send((unsafe { libc::pthread_self() }, unsafe { libc::gettid() } as u32));
                me.serve(i);
            })?;
        let (pthread, tid) = rx.recv().map_err(|_| std::io::Error::other("proxy thread died at start"))?;
        self.proxies.lock().unwrap_or_else(|e| e.into_inner())[i as usize] = Some(pthread);
        drop(handle); // detached: it ends on ThreadExit or with the process
        Ok(tid)
    }

    /// The pthread serving slot `i`, if any.
    pub fn proxy_of(&self, i: u32) -> Option<libc::pthread_t> {
        self.proxies.lock().unwrap_or_else(|e| e.into_inner()).get(i as usize).copied().flatten()
    }

    /// Proxy thread body for slot `i`.
    fn serve(self: &Arc<Self>, i: u32) {
        let mut spin = SPIN_MIN;
        loop {
            let idle_since = Instant::now();
            self.wait_for_request(i, spin);
            // Spin a few times the recent gap between calls (an EWMA),
            // so a program making calls back to back finds us awake.
            let gap = idle_since.elapsed();
            spin = ((spin * 3 + gap * 4) / 4).clamp(SPIN_MIN, SPIN_MAX);
            let req = self.take_request(i);
            if req.failed.is_none() && req.call() == Some(OffloadCall::UtiRun) {
                // This thread becomes the utility thread, until it exits.
                crate::uti::run(self, i, req.args);
                self.forget_proxy(i);
                return;
            }
            let result = self.execute(i, &req);
            self.answer(i, &req, result);
            if req.call() == Some(OffloadCall::ThreadExit) {
                self.proxies.lock().unwrap_or_else(|e| e.into_inner())[i as usize] = None;
                return;
            }
        }
    }

    /// Serve slot `i` as its proxy until the LWK thread ends.
    pub(crate) fn serve_slot(self: &Arc<Self>, i: u32) {
        self.serve(i)
    }

    /// Take the request in slot `i` (REQUEST, now BUSY): its payload, and
    /// the mirror brought up to the sequence it needs.
    pub(crate) fn take_request(&self, i: u32) -> Request {
        let p = self.slot_ptr(i);
        self.slot(i).state.store(SLOT_BUSY, Ordering::Relaxed);
        // SAFETY: the LWK wrote these before publishing REQUEST
        // (Acquire in wait_for_request) and does not touch them until DONE.
        let (number, args, map_seq) = unsafe {
            (
                std::ptr::read_volatile(addr_of_mut!((*p).number)),
                std::ptr::read_volatile(addr_of_mut!((*p).args)),
                std::ptr::read_volatile(addr_of_mut!((*p).map_seq)),
            )
        };
        let mut failed = None;
        if map_seq > self.mirror.applied_seq() {
            if let Err(e) = self.mirror.ensure(map_seq) {
                eprintln!("mcexec: {e}");
                failed = Some(-14); // EFAULT
            }
        }
        if failed.is_none() {
            // Windows this slot's earlier requests made and the LWK no
            // longer maps go (their descriptors close), then new ones are
            // recorded as this request's.
            crate::share::forget_unlisted(i, map_seq, &self.mirror.windows());
        }
        crate::share::set_current(i, map_seq);
        Request { number, args, failed }
    }

    /// Execute a request of slot `i` (not UtiRun).
    pub(crate) fn execute(self: &Arc<Self>, _i: u32, req: &Request) -> i64 {
        if let Some(e) = req.failed {
            return e;
        }
        match req.call() {
            Some(OffloadCall::ThreadStart) => match self.start_proxy(req.args[0] as u32) {
                Ok(tid) => tid as i64,
                Err(_) => -EAGAIN,
            },
            Some(OffloadCall::ThreadExit) => 0,
            Some(OffloadCall::Fork) => self.fork_proxy(),
            _ => crate::uti::intercept(req.number, &req.args).unwrap_or_else(|| self.exec.execute(req.number, req.args)),
        }
    }

    /// Answer `req` of slot `i` with `result`.
    pub(crate) fn answer(&self, i: u32, req: &Request, result: i64) {
        if trace_enabled() {
            let name = req.call().map_or_else(|| format!("syscall {}", req.number), |c| format!("{c:?}"));
            eprintln!("mcexec[{}] slot {i}: {name}({:x?}) = {result}", std::process::id(), &req.args[..4]);
        }
        self.publish(i, result, None);
    }

    /// Write `result` (and, for a UtiRun answer, the reply's arguments and
    /// stack pointer) into slot `i`, set it DONE and wake its LWK CPU if
    /// the thread waits halted.
    pub(crate) fn publish(&self, i: u32, result: i64, reply: Option<([u64; 6], u64)>) {
        let p = self.slot_ptr(i);
        let s = self.slot(i);
        // SAFETY: we own the slot's payload while it is BUSY.
        unsafe {
            if let Some((args, sp)) = reply {
                std::ptr::write_volatile(addr_of_mut!((*p).args), args);
                std::ptr::write_volatile(addr_of_mut!((*p).number), sp);
            }
            std::ptr::write_volatile(addr_of_mut!((*p).result), result);
        }
        s.state.store(SLOT_DONE, Ordering::Release);
        fence(Ordering::SeqCst);
        if s.lwk_waiting.load(Ordering::Relaxed) != 0 {
            self.kick_cpu(s.cpu.load(Ordering::Relaxed));
        }
    }

    /// Forget the proxy thread of slot `i` (it ends).
    pub(crate) fn forget_proxy(&self, i: u32) {
        self.proxies.lock().unwrap_or_else(|e| e.into_inner())[i as usize] = None;
    }

    /// Fork this mcexec for an LWK fork: the host child becomes the proxy
    /// of the LWK child (session::fork_child); here, wait until it has asked
    /// the LWK to start that child and return its pid (the LWK child's pid).
    fn fork_proxy(&self) -> i64 {
        let mut p = [0i32; 2];
        // SAFETY: pipe2 into a local array.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EAGAIN) as i64);
        }
        // SAFETY: fresh descriptors we own.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        // SAFETY: fork of this process; the child runs only this thread's
        // code (fork_child), which uses fresh objects and glibc's malloc
        // (safe after fork in a multi-threaded process).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EAGAIN) as i64);
        }
        if pid == 0 {
            drop(rd);
            crate::session::fork_child(Arc::clone(&self.fork.env), self.fork.slot, self.fork.conn.clone(), wr);
        }
        drop(wr);
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a local from our pipe.
        let n = loop {
            let n = unsafe { libc::read(rd.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) };
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break n;
        };
        if n == 1 {
            pid as i64
        } else {
            // The child failed before the LWK knew of it: reap it here, so
            // the program never sees a pid it was not given.
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            -(libc::EAGAIN as i64)
        }
    }

    /// Spin (for `spin`), then sleep, until slot `i` holds a request.
    pub(crate) fn wait_for_request(&self, i: u32, spin: Duration) {
        let s = self.slot(i);
        let start = Instant::now();
        let mut n = 0u32;
        loop {
            if s.state.load(Ordering::Acquire) == SLOT_REQUEST {
                return;
            }
            std::hint::spin_loop();
            n += 1;
            if n % 64 == 0 && start.elapsed() > spin {
                break;
            }
        }
        loop {
            s.host_sleeping.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let v = s.state.load(Ordering::Acquire);
            if v == SLOT_REQUEST {
                s.host_sleeping.store(0, Ordering::Relaxed);
                return;
            }
            futex_wait(&s.state, v);
            s.host_sleeping.store(0, Ordering::Relaxed);
            if s.state.load(Ordering::Acquire) == SLOT_REQUEST {
                return;
            }
        }
    }

    /// Called by the dispatcher on a doorbell: wake sleeping proxies that
    /// have a request, interrupt those the LWK asked to interrupt.
    pub fn on_doorbell(&self) {
        // The LWK rings when its pending signals change while it has
        // signalfds: their readiness follows.
        crate::sigfd::sync(self.mirror.sig_pending());
        for i in 0..self.capacity {
            let s = self.slot(i);
            let state = s.state.load(Ordering::Acquire);
            if state == SLOT_REQUEST && s.host_sleeping.load(Ordering::Relaxed) != 0 {
                futex_wake(&s.state);
            }
            if state == SLOT_BUSY && s.interrupt.load(Ordering::Relaxed) != 0 {
                if let Some(t) = self.proxy_of(i) {
                    // SAFETY: `t` is a live proxy thread of ours (it clears
                    // its entry before ending); SIGURG has a no-op handler.
                    unsafe { libc::pthread_kill(t, libc::SIGURG) };
                }
            }
        }
    }

    /// True while some slot has an interrupt request pending on a busy call.
    pub fn interrupts_pending(&self) -> bool {
        (0..self.capacity).any(|i| {
            let s = self.slot(i);
            s.state.load(Ordering::Relaxed) == SLOT_BUSY && s.interrupt.load(Ordering::Relaxed) != 0
        })
    }
}

/// One request taken from a slot.
pub(crate) struct Request {
    pub number: u64,
    pub args: [u64; 6],
    /// The mirror could not be brought up to date: the call's result.
    pub failed: Option<i64>,
}

impl Request {
    pub fn call(&self) -> Option<OffloadCall> {
        OffloadCall::from_u64(self.number)
    }
}

/// `MCEXEC_TRACE=1`: print every offloaded call and its result to stderr.
pub(crate) fn trace_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MCEXEC_TRACE").is_some_and(|v| v == "1"))
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 of ours; returns on wake,
    // on a changed value (EAGAIN) or on a signal.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX)
    };
}

/// Install the no-op SIGURG handler (without SA_RESTART) that makes a proxy
/// thread's blocking call return EINTR when the LWK asks to interrupt it.
pub fn install_interrupt_handler() -> nix::Result<()> {
    extern "C" fn noop(_: libc::c_int) {}
    let sa = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(noop),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler is async-signal-safe (it does nothing).
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGURG, &sa) }.map(|_| ())
}
