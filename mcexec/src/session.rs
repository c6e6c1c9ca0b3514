//! One run of `mcexec`: attach, start the LWK process, serve it, and end
//! with its status.
//!
//! The main thread is the dispatcher: it polls the process doorbell (the
//! LWK rings it to wake a sleeping proxy, to ask for an interruption, or to
//! report the exit), a signalfd of the forwarded signals, and the attach
//! socket (closed by ihkd when the OS instance goes away).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ihk_abi::layout::MONITOR_GPA;
use ihk_abi::monitor::MonitorPage;
use ihk_abi::offload::{
    OffloadAreaHeader, ProcState, ProcessSlot, ProxyAreaHeader, StartParams, ThreadSlot,
    DEFAULT_STACK_MAX, DEFAULT_STACK_PREMAP, EVENT_SIGNAL, FORWARDED_SIGNALS, NO_FORK, OFFLOAD_MAGIC,
    OFFLOAD_VERSION, PROXY_AREA_MAGIC,
};
use ihk_abi::OsStatus;
use nix::sys::signal::Signal;

use crate::attach::{attach, Attachment};
use crate::cli::Options;
use crate::exec::Executor;
use crate::guest::GuestMemory;
use crate::mirror::{reserve_user_range, Mirror};
use crate::program::{self, ProgramError};
use crate::proxy::{install_interrupt_handler, Process};

/// Default number of thread slots when `-t` is not given.
pub const DEFAULT_THREADS: u32 = 64;
/// How long the LWK may take to pick up a new process.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure before the program ran, with the exit status to use.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code }
    }
}

impl From<ProgramError> for Failure {
    fn from(e: ProgramError) -> Failure {
        Failure::new(e.exit_code(), e.to_string())
    }
}

/// How the LWK process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signaled(i32),
}

/// What a program's mcexec and its fork children share: guest memory, the
/// descriptors that stay ours for the whole family, where ihkd is.
pub struct Env {
    pub guest: Arc<GuestMemory>,
    pub sigfd: OwnedFd,
    pub os_index: u32,
    pub dir: ihk_client::paths::RuntimeDir,
    pub program: String,
    /// Descriptors of ours the program must not close (memfds, signalfd,
    /// executable and interpreter).
    pub keep_fds: Vec<i32>,
    /// The argument blob of the original program (GetArgs).
    pub blob: Vec<u8>,
    _exe: OwnedFd,
    _interp: Option<OwnedFd>,
}

/// One attachment's descriptors and facts.
pub struct Conn {
    pub sock: OwnedFd,
    pub doorbell: OwnedFd,
    /// irqfd of the main thread's LWK CPU (`info.cpu`).
    pub irqfd: OwnedFd,
    /// irqfds of the process's CPU set (`info.cpu_first ..`).
    pub irqfds: Vec<OwnedFd>,
    pub info: ihk_client::proto::AttachInfo,
}

impl Conn {
    /// The descriptors a fork child must close (the parent's connection).
    fn raw_fds(&self) -> Vec<i32> {
        let mut v = vec![self.sock.as_raw_fd(), self.doorbell.as_raw_fd(), self.irqfd.as_raw_fd()];
        v.extend(self.irqfds.iter().map(|f| f.as_raw_fd()));
        v
    }
}

fn fd_err(e: std::io::Error) -> Failure {
    Failure::new(1, format!("moving a descriptor: {e}"))
}

/// Attach to OS `os` and move the descriptors out of the program's way;
/// returns the connection and the memfds.
fn connect(
    dir: &ihk_client::paths::RuntimeDir,
    os: u32,
    rank: Option<u32>,
    per_node: Option<u32>,
) -> Result<(Conn, Vec<OwnedFd>), Failure> {
    let att = attach(dir, os, rank, per_node).map_err(|e| Failure::new(1, e.to_string()))?;
    let Attachment { sock, info, doorbell, irqfds, memfds } = att;
    let irqfds = irqfds.into_iter().map(relocate).collect::<std::io::Result<Vec<_>>>().map_err(fd_err)?;
    let main = irqfds[(info.cpu - info.cpu_first) as usize].try_clone().map_err(fd_err)?;
    let conn = Conn {
        sock: relocate(OwnedFd::from(sock)).map_err(fd_err)?,
        doorbell: relocate(doorbell).map_err(fd_err)?,
        irqfd: relocate(main).map_err(fd_err)?,
        irqfds,
        info,
    };
    Ok((conn, memfds))
}

/// What the program inherits across execve from mcexec's parent, as Linux
/// passes it on (bit `n-1` for signal `n`): the ignored dispositions
/// (`nohup mcexec ...` keeps SIGHUP ignored) and the signal mask. Read
/// before [`setup_signals`] changes ours. SIGPIPE is left out: Rust's
/// runtime ignores it before `main`, so our parent's choice is lost.
fn inherited_signals() -> (u64, u64) {
    let (mut ignored, mut mask) = (0u64, 0u64);
    // SAFETY: rt_sigaction and pthread_sigmask only read into locals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
        for s in 1..=64 {
            if libc::sigismember(&set, s) == 1 {
                mask |= 1 << (s - 1);
            }
            // The kernel's sigaction (handler, flags, restorer, mask): glibc's
            // refuses its own signals 32 and 33, which a starter may ignore.
            let mut old = [0u64; 4];
            if s != libc::SIGPIPE
                && libc::syscall(libc::SYS_rt_sigaction, s, std::ptr::null::<u64>(), old.as_mut_ptr(), 8) == 0
                && old[0] == libc::SIG_IGN as u64
            {
                ignored |= 1 << (s - 1);
            }
        }
    }
    (ignored, mask)
}

/// Block the forwarded signals (in every thread to come) and return a
/// signalfd for them; ignore SIGPIPE (a write to a closed pipe returns EPIPE
/// to the LWK, which raises SIGPIPE itself); install the interrupt handler.
fn setup_signals() -> Result<OwnedFd, Failure> {
    // A raw sigset: nix's Signal has no real-time signals.
    // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask and
    // signalfd read it.
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED_SIGNALS {
            libc::sigaddset(&mut set, s as i32);
        }
        let e = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if e != 0 {
            return Err(Failure::new(1, format!("blocking signals: {}", std::io::Error::from_raw_os_error(e))));
        }
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    if sigfd < 0 {
        return Err(Failure::new(1, format!("signalfd: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) }
        .map_err(|e| Failure::new(1, format!("ignoring SIGPIPE: {e}")))?;
    install_interrupt_handler().map_err(|e| Failure::new(1, format!("SIGURG handler: {e}")))?;
    // SAFETY: a fresh descriptor we own.
    relocate(unsafe { OwnedFd::from_raw_fd(sigfd) }).map_err(fd_err)
}

/// Run the program; returns how it ended (the caller mirrors that).
pub fn run(opts: &Options) -> Result<Ending, Failure> {
    // The user range first, before anything could make Linux map there.
    reserve_user_range().map_err(|e| Failure::new(1, e.to_string()))?;

    let path = program::resolve(&opts.program, std::env::var_os("PATH").as_deref())?;
    let argv: Vec<OsString> = std::iter::once(opts.program.clone()).chain(opts.args.iter().cloned()).collect();
    let launch = program::open_launch(&path, argv)?;
    let prog = launch.program;
    let interp = match &prog.interp {
        Some(i) => Some(std::fs::File::open(i).map_err(|e| {
            Failure::new(126, format!("{}: cannot open its ELF interpreter {}: {e}", prog.path.display(), i.display()))
        })?),
        None => None,
    };
    let (sig_ignored, sig_mask) = inherited_signals();
    let sigfd = setup_signals()?;

    let dir = ihk_client::paths::RuntimeDir::from_env();
    // `-n`, or the launcher's count of processes on this node (with its
    // local rank) when both are in the environment.
    let launcher = crate::rank::local_rank().zip(crate::rank::local_size());
    let per_node = match (opts.procs_per_node, launcher) {
        (Some(n), _) => Some(n),
        // More ranks on this node than LWK CPUs (an allow_oversubscribe
        // partition): no shares to give, the ranks share every CPU, as
        // the SPANK plugin does by leaving -n out. An explicit -n that
        // large stays an error.
        (None, Some((_, n)))
            if crate::affinity::partition_cpus(&dir, opts.os_index).is_some_and(|c| n as usize > c.len()) =>
        {
            None
        }
        (None, l) => l.map(|(_, n)| n),
    };
    let rank = per_node.and_then(|_| crate::rank::local_rank());
    let (conn, memfds) = connect(&dir, opts.os_index, rank, per_node)?;
    ihk_client::fault::point("mcexec:attached");
    crate::affinity::keep_proxy_off_partition(&dir, opts.os_index);
    if let Some(n) = per_node {
        if n > conn.info.nr_cpus {
            return Err(Failure::new(
                1,
                format!(
                    "-n {n}: OS instance {} has {} LWK CPU(s); at most {} processes per node",
                    opts.os_index, conn.info.nr_cpus, conn.info.nr_cpus
                ),
            ));
        }
    }
    let regions = conn.info.regions.iter().map(|r| crate::guest::RegionDesc {
        gpa: r.gpa,
        size: r.size,
        fd_offset: r.fd_offset,
        page_size: r.page_size,
    });
    let exe_fd = relocate(OwnedFd::from(prog.file)).map_err(fd_err)?;
    let interp_size = interp.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
    let interp_fd = interp.map(|f| relocate(OwnedFd::from(f))).transpose().map_err(fd_err)?;
    let memfds = memfds.into_iter().map(relocate).collect::<std::io::Result<Vec<_>>>().map_err(fd_err)?;
    let guest = Arc::new(GuestMemory::map(regions.collect(), memfds).map_err(|e| Failure::new(1, e.to_string()))?);

    // With --enable-uti the program learns the Linux/LWK CPU split (libuti).
    let uti_env = if opts.enable_uti {
        crate::mirror::set_executable();
        let (fwk, lwk) = crate::uti::set_linux_cpus(&guest, conn.info.cpu_first, conn.info.cpu_count);
        crate::uti::environment(&fwk, &lwk)
    } else {
        Vec::new()
    };
    let env_vars = program_env(&guest, conn.info.offload_area_gpa, uti_env);
    let blob = args_blob(launch.execfn.as_os_str(), &launch.argv, &env_vars);
    let stack_limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_STACK)
        .map(|(soft, _)| soft)
        .unwrap_or(DEFAULT_STACK_MAX);
    let stack_premap = opts.stack_premap.unwrap_or(DEFAULT_STACK_PREMAP);
    let stack_max = opts
        .stack_max
        .unwrap_or(if stack_limit == libc::RLIM_INFINITY || stack_limit == 0 { DEFAULT_STACK_MAX } else { stack_limit })
        .max(stack_premap);
    let mut random = [0u8; 16];
    getrandom(&mut random);
    let params = StartParams {
        cpu: conn.info.cpu,
        max_threads: opts.threads.unwrap_or(DEFAULT_THREADS),
        host_pid: std::process::id(),
        host_ppid: nix::unistd::getppid().as_raw() as u32,
        uid: nix::unistd::getuid().as_raw(),
        euid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        egid: nix::unistd::getegid().as_raw(),
        argc: launch.argv.len() as u32,
        envc: env_vars.len() as u32,
        args_len: blob.len() as u64,
        exe_fd: exe_fd.as_raw_fd(),
        interp_fd: interp_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
        exe_size: prog.size,
        interp_size,
        heap_extension: opts.extend_heap_by.unwrap_or(0),
        stack_premap,
        stack_max,
        mirror_granule: guest.mirror_granule(),
        monotonic_offset_ns: clock_offset(libc::CLOCK_MONOTONIC),
        boottime_offset_ns: clock_offset(libc::CLOCK_BOOTTIME),
        random,
        fork_from_slot: NO_FORK,
        fork_from_pid: 0,
        cpu_set_first: conn.info.cpu_first,
        cpu_set_count: conn.info.cpu_count,
        flags: if opts.enable_uti { ihk_abi::offload::START_UTI } else { 0 },
        sig_ignored,
        sig_mask,
    };
    let mut keep_fds = guest.raw_fds();
    keep_fds.extend([exe_fd.as_raw_fd(), sigfd.as_raw_fd()]);
    if let Some(f) = &interp_fd {
        keep_fds.push(f.as_raw_fd());
    }
    crate::share::set_target(dir.clone(), opts.os_index);
    let env = Arc::new(Env {
        guest,
        sigfd,
        os_index: opts.os_index,
        dir,
        program: path.display().to_string(),
        keep_fds,
        blob,
        _exe: exe_fd,
        _interp: interp_fd,
    });
    serve(env, conn, params, None)
}

/// In the host child of a fork (one thread, a copy of the parent mcexec):
/// become the proxy of the LWK child. `parent` is the parent's connection
/// (its descriptors are closed here), `report` a pipe to the parent proxy,
/// which gets one byte once the LWK has been asked to start the child.
pub fn fork_child(env: Arc<Env>, parent_slot: u32, parent: Vec<i32>, report: OwnedFd) -> ! {
    for fd in parent {
        // SAFETY: closing the parent's connection descriptors, which this
        // process inherited and must not keep (ihkd watches the socket).
        unsafe { libc::close(fd) };
    }
    ihk_client::fault::point("mcexec:forked");
    let r = (|| -> Result<Ending, Failure> {
        // The parent's mirrors go; the child's come from its own table.
        crate::mirror::reset_user_range().map_err(|e| Failure::new(1, e.to_string()))?;
        let (conn, memfds) = connect(&env.dir, env.os_index, None, None)?;
        ihk_client::fault::point("mcexec:fork-attached");
        // The inherited guest window serves; these duplicates are not needed.
        drop(memfds);
        let parent_gpa =
            conn.info.offload_area_gpa + ihk_abi::offload::process_slot_offset(parent_slot as usize) as u64;
        // SAFETY: the parent's slot stays claimed while its process waits
        // in fork; its start parameters do not change.
        let mut params: StartParams = unsafe {
            let ps = env.guest.ptr(parent_gpa, std::mem::size_of::<ProcessSlot>() as u64)
                .map_err(|e| Failure::new(1, e.to_string()))? as *const ProcessSlot;
            std::ptr::read_volatile(std::ptr::addr_of!((*ps).start))
        };
        params.fork_from_slot = parent_slot;
        params.fork_from_pid = params.host_pid;
        params.host_pid = std::process::id();
        params.host_ppid = nix::unistd::getppid().as_raw() as u32;
        // The child keeps its parent's CPU set and starts on its parent's
        // CPU (this attachment covers the whole partition, so both are in
        // it); otherwise it takes the attachment's.
        let attached = conn.info.cpu_first..conn.info.cpu_first + conn.info.cpu_count;
        let inherited = params.cpu_set_first..params.cpu_set_first + params.cpu_set_count;
        if params.cpu_set_count == 0
            || inherited.start < attached.start
            || inherited.end > attached.end
            || !inherited.contains(&params.cpu)
        {
            params.cpu = conn.info.cpu;
            params.cpu_set_first = conn.info.cpu_first;
            params.cpu_set_count = conn.info.cpu_count;
        }
        serve(Arc::clone(&env), conn, params, Some(report))
    })();
    exit_as(r)
}

/// End this process as `r` says (an mcexec's last act).
pub fn exit_as(r: Result<Ending, Failure>) -> ! {
    match r {
        // _exit: proxy threads may still be inside calls; nothing of ours
        // needs flushing.
        // SAFETY: _exit ends the process at once.
        Ok(Ending::Exited(code)) => unsafe { libc::_exit(code) },
        Ok(Ending::Signaled(sig)) => die_of(sig),
        Err(f) => {
            eprintln!("mcexec: {}", f.message);
            // SAFETY: as above.
            unsafe { libc::_exit(f.code) }
        }
    }
}

/// End the way the LWK process ended: killed by `sig` (without a core dump
/// of mcexec itself), so that a shell reports the same status.
pub fn die_of(sig: i32) -> ! {
    // SAFETY: plain libc calls on our own process; SIG_DFL installs no code.
    unsafe {
        let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        libc::_exit(128 + sig)
    }
}

/// Start the LWK process in `conn`'s slot with `params` and serve it until
/// it ends. `report` (fork children) gets a byte once START is set.
fn serve(env: Arc<Env>, mut conn: Conn, params: StartParams, report: Option<OwnedFd>) -> Result<Ending, Failure> {
    // The LWK CPU named in the start parameters serves the slot (start,
    // signals): its irqfd is the one to ring.
    if params.cpu != conn.info.cpu {
        let i = params.cpu.checked_sub(conn.info.cpu_first).and_then(|i| conn.irqfds.get(i as usize));
        let fd = i.ok_or_else(|| Failure::new(1, format!("LWK CPU {} is not in this attachment", params.cpu)))?;
        conn.irqfd = relocate(fd.try_clone().map_err(fd_err)?).map_err(fd_err)?;
    }
    let guest = Arc::clone(&env.guest);
    let info = &conn.info;
    // SAFETY: the LWK initialized the offload area at boot (ihkd checked
    // the magic before claiming); the header and slots are atomics or
    // stable fields.
    let header: &OffloadAreaHeader =
        unsafe { guest.get(info.offload_area_gpa) }.map_err(|e| Failure::new(1, e.to_string()))?;
    if header.magic != OFFLOAD_MAGIC || header.version != OFFLOAD_VERSION {
        return Err(Failure::new(1, "the LWK's offload area has an unknown format (mcexec and LWK image differ?)"));
    }
    let slot_gpa = info.offload_area_gpa + ihk_abi::offload::process_slot_offset(info.slot as usize) as u64;
    let slot_ptr = guest
        .ptr(slot_gpa, std::mem::size_of::<ProcessSlot>() as u64)
        .map_err(|e| Failure::new(1, e.to_string()))? as *mut ProcessSlot;
    // SAFETY: a ProcessSlot lives there (checked bounds); we use its atomics.
    let slot: &'static ProcessSlot = unsafe { &*slot_ptr };
    if slot.state() != Some(ProcState::Claimed) || slot.host_pid.load(Ordering::Acquire) != std::process::id() {
        return Err(Failure::new(1, format!("process slot {} was not claimed for us", info.slot)));
    }
    // SAFETY: the slot is CLAIMED for us; the LWK reads `start` only after
    // the Release store of START below.
    unsafe { std::ptr::addr_of_mut!((*slot_ptr).start).write_volatile(params) };
    slot.state.store(ProcState::Start as u32, Ordering::Release);
    fence(Ordering::SeqCst);
    kick(conn.irqfd.as_fd());
    if let Some(r) = report {
        // SAFETY: one byte from a local to our pipe.
        unsafe { libc::write(r.as_raw_fd(), b"1".as_ptr() as *const libc::c_void, 1) };
        ihk_client::fault::point("mcexec:fork-started");
    }
    let mut reserved = env.keep_fds.clone();
    reserved.extend(conn.raw_fds());
    // irqfds by LWK CPU id, for the proxies to wake the CPU of the thread
    // they answer.
    let mut irqfds: Vec<Option<OwnedFd>> = (0..info.cpu_first + info.cpu_count).map(|_| None).collect();
    for (i, fd) in conn.irqfds.iter().enumerate() {
        let irq = relocate(fd.try_clone().map_err(fd_err)?).map_err(fd_err)?;
        reserved.push(irq.as_raw_fd());
        irqfds[info.cpu_first as usize + i] = Some(irq);
    }
    let fork = ForkCtx { env: Arc::clone(&env), slot: info.slot, conn: conn.raw_fds() };
    let mut d = Dispatcher {
        guest: Arc::clone(&guest),
        slot,
        process: None,
        started: Instant::now(),
        program: env.program.clone(),
        granule: params.mirror_granule,
        exec: Some(Executor::new(Arc::clone(&guest), env.blob.clone(), reserved)),
        irqfds: Some(irqfds),
        cpu: params.cpu,
        fork: Some(fork),
        sigfd: env.sigfd.as_raw_fd(),
        conn,
    };
    d.run()
}

/// What a proxy thread needs to fork the proxy (proxy.rs).
pub struct ForkCtx {
    pub env: Arc<Env>,
    pub slot: u32,
    pub conn: Vec<i32>,
}

struct Dispatcher {
    guest: Arc<GuestMemory>,
    slot: &'static ProcessSlot,
    conn: Conn,
    sigfd: i32,
    process: Option<Arc<Process>>,
    started: Instant,
    program: String,
    granule: u64,
    exec: Option<Executor>,
    irqfds: Option<Vec<Option<OwnedFd>>>,
    cpu: u32,
    fork: Option<ForkCtx>,
}

impl Dispatcher {
    fn run(&mut self) -> Result<Ending, Failure> {
        loop {
            let timeout_ms = if self.process.is_none() {
                1
            } else if self.process.as_ref().is_some_and(|p| p.interrupts_pending()) {
                10
            } else {
                500
            };
            let mut fds = [
                libc::pollfd { fd: self.conn.doorbell.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.sigfd, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.conn.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: polling three valid descriptors we own.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout_ms) };
            if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(Failure::new(1, format!("poll: {}", std::io::Error::last_os_error())));
            }
            if fds[0].revents & libc::POLLIN != 0 {
                let mut v = 0u64;
                // SAFETY: reading 8 bytes into a local from our eventfd.
                unsafe { libc::read(self.conn.doorbell.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
            }
            if fds[1].revents & libc::POLLIN != 0 {
                self.forward_signals();
            }
            if fds[2].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                let mut b = [0u8; 64];
                // SAFETY: reading into a local buffer from our socket.
                let r = unsafe { libc::read(self.conn.sock.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, b.len()) };
                if r == 0 || fds[2].revents & libc::POLLHUP != 0 {
                    return Err(Failure::new(
                        1,
                        "the OS instance went away while the program was running (shut down or destroyed)",
                    ));
                }
            }
            match self.slot.state() {
                Some(ProcState::Start) => {
                    if self.started.elapsed() > START_TIMEOUT {
                        return Err(Failure::new(
                            1,
                            format!(
                                "the LWK did not pick up the process within {} s (LWK CPU {} unresponsive?); see `ihkosctl 0 kmsg`",
                                START_TIMEOUT.as_secs(),
                                self.cpu
                            ),
                        ));
                    }
                    self.check_os()?;
                }
                Some(ProcState::Running) => {
                    if self.process.is_none() {
                        self.attach_process()?;
                        ihk_client::fault::point("mcexec:running");
                    }
                    if let Some(p) = &self.process {
                        p.on_doorbell();
                    }
                    if n == 0 {
                        self.check_os()?;
                    }
                }
                Some(ProcState::Exited) => {
                    ihk_client::fault::point("mcexec:exited");
                    return self.ending();
                }
                Some(ProcState::Failed) => return Err(self.start_failure()),
                other => {
                    return Err(Failure::new(1, format!("process slot in unexpected state {other:?}")));
                }
            }
        }
    }

    /// Map the proxy area and start the main thread's proxy.
    fn attach_process(&mut self) -> Result<(), Failure> {
        let area_gpa = self.slot.proxy_area.load(Ordering::Acquire);
        let err = |e: &dyn std::fmt::Display| Failure::new(1, format!("attaching to the LWK process: {e}"));
        // SAFETY: the LWK wrote the header before RUNNING and keeps it until
        // the proxy is gone.
        let header: &ProxyAreaHeader = unsafe { self.guest.get(area_gpa) }.map_err(|e| err(&e))?;
        if header.magic != PROXY_AREA_MAGIC {
            return Err(err(&"bad proxy area"));
        }
        let cap = header.thread_capacity;
        let slots = self
            .guest
            .ptr(area_gpa + header.threads_offset as u64, cap as u64 * std::mem::size_of::<ThreadSlot>() as u64)
            .map_err(|e| err(&e))? as *mut ThreadSlot;
        // The LWK wrote the offset: misaligned slots would make every use
        // undefined behaviour.
        if (slots as usize) % std::mem::align_of::<ThreadSlot>() != 0 {
            return Err(err(&format!("thread slots at offset {:#x} are misaligned", header.threads_offset)));
        }
        let mirror = Mirror::new(Arc::clone(&self.guest), area_gpa, self.granule).map_err(|e| err(&e))?;
        let process = Arc::new(Process::new(
            slots,
            cap,
            mirror,
            self.exec.take().expect("executor"),
            self.irqfds.take().expect("irqfds"),
            self.fork.take().expect("fork context"),
        ));
        process.start_proxy(0).map_err(|e| err(&e))?;
        self.process = Some(process);
        Ok(())
    }

    fn forward_signals(&mut self) {
        loop {
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: reading one siginfo record into a local.
            let r = unsafe {
                libc::read(self.sigfd, &mut si as *mut _ as *mut libc::c_void, std::mem::size_of_val(&si))
            };
            if r != std::mem::size_of_val(&si) as isize {
                return;
            }
            let sig = si.ssi_signo;
            if (1..=64).contains(&sig) {
                self.slot.pending_signals.fetch_or(1 << (sig - 1), Ordering::SeqCst);
                self.slot.events.fetch_or(EVENT_SIGNAL, Ordering::SeqCst);
                kick(self.conn.irqfd.as_fd());
            }
        }
    }

    /// Fail when the OS instance panicked or stopped.
    fn check_os(&self) -> Result<(), Failure> {
        // SAFETY: the monitor page is at MONITOR_GPA in chunk 0 for the
        // life of the instance; we read its atomics.
        let Ok(mon) = (unsafe { self.guest.get::<MonitorPage>(MONITOR_GPA) }) else { return Ok(()) };
        match mon.os_status() {
            Some(OsStatus::Panic) => Err(Failure::new(1, "the LWK panicked; see `ihkosctl 0 kmsg`")),
            Some(OsStatus::Shutdown) => Err(Failure::new(1, "the OS instance is shutting down")),
            _ => Ok(()),
        }
    }

    fn ending(&self) -> Result<Ending, Failure> {
        let err = self.slot.start_error.load(Ordering::Acquire);
        if err != 0 {
            return Err(self.start_failure());
        }
        let sig = self.slot.exit_signal.load(Ordering::Acquire);
        if sig != 0 {
            Ok(Ending::Signaled(sig as i32))
        } else {
            Ok(Ending::Exited(self.slot.exit_code.load(Ordering::Acquire) as i32))
        }
    }

    fn start_failure(&self) -> Failure {
        let e = -self.slot.start_error.load(Ordering::Acquire);
        let p = &self.program;
        match e as i32 {
            libc::ENOMEM => Failure::new(
                1,
                format!("{p}: not enough memory in the LWK to start the program (see `ihkosctl 0 query_free_mem`)"),
            ),
            libc::ENOEXEC => Failure::new(126, format!("{p}: cannot execute binary file on the LWK: Exec format error")),
            libc::ENOSYS => Failure::new(
                126,
                format!("{p}: dynamically linked programs are not supported by this LWK yet; link it statically"),
            ),
            libc::EAGAIN => Failure::new(1, format!("{p}: the LWK has no room for another process")),
            0 => Failure::new(1, format!("{p}: the LWK could not start the program")),
            e => Failure::new(
                1,
                format!("{p}: the LWK could not start the program: {}", std::io::Error::from_raw_os_error(e)),
            ),
        }
    }
}

/// Ring an eventfd.
fn kick(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writing 8 bytes from a local to an eventfd.
    unsafe { libc::write(fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
}

/// Lowest descriptor number used for mcexec's own descriptors: near the top
/// of the soft RLIMIT_NOFILE mcexec started with, where programs rarely
/// look. Fixed for the process's life: a program that lowers its limit
/// (offloaded, so it is ours) does not pull them into its range.
pub(crate) fn reserved_fd_base() -> i32 {
    static BASE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(s, _)| s)
            .unwrap_or(1024);
        (soft.min(1 << 20) as i32 - 64).max(16)
    })
}

/// A close-on-exec duplicate of `fd` at [`reserved_fd_base`] or above.
/// When the program has lowered the soft RLIMIT_NOFILE below that, the
/// limit is raised for the duplication and put back (descriptors above the
/// limit stay valid, as Linux keeps them).
pub(crate) fn dup_high(fd: std::os::fd::RawFd) -> std::io::Result<std::os::fd::RawFd> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let base = reserved_fd_base();
    // SAFETY: F_DUPFD_CLOEXEC of a descriptor number; an invalid one fails.
    let dup = || unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, base) };
    let n = dup();
    if n >= 0 {
        return Ok(n);
    }
    let e = std::io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EMFILE)) {
        return Err(e);
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = (base as u64 + 64).max(soft);
    if want == soft || want > hard {
        return Err(e);
    }
    setrlimit(Resource::RLIMIT_NOFILE, want, hard)?;
    let n = dup();
    let e = std::io::Error::last_os_error();
    let _ = setrlimit(Resource::RLIMIT_NOFILE, soft, hard);
    if n < 0 {
        Err(e)
    } else {
        Ok(n)
    }
}

/// Move a descriptor to a high number, out of the program's way.
fn relocate(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    let n = dup_high(fd.as_raw_fd())?;
    drop(fd);
    // SAFETY: `n` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The program's environment: ours, then `extra` (libuti's), with
/// `GLIBC_TUNABLES` masking AVX when the LWK cannot keep it (`avx`).
fn program_env(guest: &GuestMemory, offload_area_gpa: u64, extra: Vec<(String, String)>) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    env.extend(extra.into_iter().map(|(k, v)| (k.into(), v.into())));
    // SAFETY: the offload area's header is written at boot (ihkd checked its
    // magic before the attach); a u64 read of a stable field.
    let components = unsafe { guest.get::<OffloadAreaHeader>(offload_area_gpa) }
        .map(|h| unsafe { std::ptr::read_volatile(&h.user_fpu_components) })
        .unwrap_or(0);
    if crate::avx::must_mask(components) {
        let key = OsStr::new("GLIBC_TUNABLES");
        let value = crate::avx::tunables(std::env::var("GLIBC_TUNABLES").ok().as_deref());
        match env.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.into(),
            None => env.push((key.into(), value.into())),
        }
    }
    env
}

/// `execfn\0 argv..\0 envp..\0`.
fn args_blob(execfn: &OsStr, argv: &[OsString], env: &[(OsString, OsString)]) -> Vec<u8> {
    let mut b = Vec::new();
    for s in std::iter::once(execfn).chain(argv.iter().map(|a| a.as_os_str())) {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }
    for (k, v) in env {
        b.extend_from_slice(k.as_bytes());
        b.push(b'=');
        b.extend_from_slice(v.as_bytes());
        b.push(0);
    }
    b
}

/// clock − CLOCK_REALTIME in ns, now.
fn clock_offset(clock: libc::clockid_t) -> i64 {
    let get = |c| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: writes a timespec into a local.
        unsafe { libc::clock_gettime(c, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    let r1 = get(libc::CLOCK_REALTIME);
    let c = get(clock);
    let r2 = get(libc::CLOCK_REALTIME);
    c - (r1 / 2 + r2 / 2)
}

fn getrandom(buf: &mut [u8]) {
    // SAFETY: fills a local buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
    if n != buf.len() as isize {
        let t = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64;
        buf[..8].copy_from_slice(&t.to_le_bytes());
    }
}
