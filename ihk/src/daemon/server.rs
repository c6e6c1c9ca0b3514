//! Sockets and dispatch: one poll loop accepts on `mcd0` and every `mcos<N>`
//! and watches SIGTERM/SIGINT (signalfd); each connection gets a thread that
//! reads requests, checks the peer's credentials (SO_PEERCRED: privileged
//! requests need uid 0, else EPERM: [`admit`]) and serves each through the
//! request table ([`dispatch`]): one small handler per request, all taking
//! the request's context ([`Call`]).

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::instance::{self, InstanceHandle};
use super::state::State;
use super::{prepare_runtime_dir, Config, PidLock, Readiness};
use crate::error::{IhkError, IhkResult, EINVAL, ENOENT, EPROTO};
use crate::fault;
use crate::journal::Journal;
use crate::list::MemList;
use crate::proto::wire::{self, Receiver};
use crate::proto::{decode_request, DaemonInfo, Reply, Request, Response};
use crate::reserve;

/// Which socket a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Device(u32),
    Os(u32),
}

enum Cmd {
    /// A listener, with the instance its connections serve (OS sockets).
    Add(SocketKind, UnixListener, Option<Arc<InstanceHandle>>),
    Remove(SocketKind),
    Exit,
}

/// Tells the poll loop about new and removed sockets and when to exit.
#[derive(Clone)]
pub struct ServerCtl {
    cmds: Arc<Mutex<Vec<Cmd>>>,
    wake: Arc<OwnedFd>,
}

impl ServerCtl {
    fn push(&self, c: Cmd) {
        self.cmds.lock().unwrap().push(c);
        // SAFETY: writing one byte to our own pipe.
        unsafe { libc::write(self.wake.as_raw_fd(), b"x".as_ptr() as *const _, 1) };
    }
    pub fn add_listener(&self, kind: SocketKind, l: UnixListener, h: Option<Arc<InstanceHandle>>) {
        self.push(Cmd::Add(kind, l, h));
    }
    pub fn remove_listener(&self, kind: SocketKind) {
        self.push(Cmd::Remove(kind));
    }
    pub fn exit(&self) {
        self.push(Cmd::Exit);
    }
}

struct Shared {
    cfg: Config,
    state: Mutex<State>,
    ctl: ServerCtl,
}

/// Remove sockets left by a crashed ihkd.
fn remove_stale_sockets(cfg: &Config) {
    if let Ok(dir) = fs::read_dir(cfg.dir.path()) {
        for e in dir.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let is_sock = |p: &str| {
                name.strip_prefix(p)
                    .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
            };
            if is_sock("mcd") || is_sock("mcos") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

pub fn run(cfg: Config, mut ready: Readiness) -> anyhow::Result<()> {
    match start(&cfg) {
        Ok((lock, shared, device, sigfd, wake_rd)) => {
            tracing::info!(
                "ihkd {} serving {} (isolation {}, pid {})",
                env!("CARGO_PKG_VERSION"),
                cfg.dir.path().display(),
                cfg.isolation.as_str(),
                std::process::id()
            );
            ready.ok();
            let r = serve(&shared, device, sigfd, wake_rd);
            let _ = fs::remove_file(shared.cfg.dir.device_socket(0));
            let st = shared.state.lock().unwrap();
            if !st.journal.has_pending() {
                let _ = fs::remove_file(st.journal.path());
            }
            drop(st);
            drop(lock);
            r
        }
        Err(e) => {
            ready.fail(&format!("{e:#}"));
            Err(e)
        }
    }
}

type Started = (PidLock, Arc<Shared>, UnixListener, SignalFd, OwnedFd);

fn start(cfg: &Config) -> anyhow::Result<Started> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("ihkd must run as root (it reserves CPUs and memory and opens /dev/kvm)");
    }
    prepare_runtime_dir(&cfg.dir)?;
    let lock = PidLock::acquire(&cfg.dir)?;
    let mut journal = Journal::open(&cfg.dir.journal()).map_err(|e| anyhow::anyhow!(e))?;
    if journal.has_pending() {
        tracing::warn!(
            "found {} journal record(s) of a previous ihkd that did not finish; restoring the node",
            journal.pending().len()
        );
        let failures = reserve::replay(&mut journal, &cfg.roots);
        for f in &failures {
            tracing::error!("could not restore: {f}");
        }
        if failures.is_empty() {
            tracing::info!("node restored from the journal");
        }
    }
    remove_stale_sockets(cfg);

    // SIGTERM/SIGINT arrive through a signalfd; block them before any thread
    // starts so every thread inherits the mask.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGHUP);
    mask.thread_block()?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;

    let (wake_rd, wake_wr) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
    let ctl = ServerCtl {
        cmds: Arc::new(Mutex::new(Vec::new())),
        wake: Arc::new(wake_wr),
    };
    let state = State::new(
        cfg.dir.clone(),
        cfg.roots.clone(),
        cfg.isolation,
        journal,
        ctl.clone(),
    );
    let device = state.open_device(0).map_err(|e| anyhow::anyhow!(e))?;
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        state: Mutex::new(state),
        ctl,
    });
    Ok((lock, shared, device, sigfd, wake_rd))
}

fn serve(
    shared: &Arc<Shared>,
    device: UnixListener,
    sigfd: SignalFd,
    wake_rd: OwnedFd,
) -> anyhow::Result<()> {
    type Listener = (SocketKind, UnixListener, Option<Arc<InstanceHandle>>);
    let mut listeners: Vec<Listener> = vec![(SocketKind::Device(0), device, None)];
    loop {
        let mut fds: Vec<libc::pollfd> = vec![
            libc::pollfd {
                fd: wake_rd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        fds.extend(listeners.iter().map(|(_, l, _)| libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if fds[1].revents != 0 {
            if let Ok(Some(sig)) = sigfd.read_signal() {
                if sig.ssi_signo == Signal::SIGHUP as u32 {
                    tracing::info!("SIGHUP ignored");
                } else {
                    tracing::info!("signal {}: releasing everything and exiting", sig.ssi_signo);
                    let failures = shared.state.lock().unwrap().teardown();
                    if !failures.is_empty() {
                        tracing::error!("exiting with {} change(s) not restored", failures.len());
                    }
                    return Ok(());
                }
            }
        }
        if fds[0].revents != 0 {
            let mut buf = [0u8; 64];
            // SAFETY: reading into a local buffer from our own pipe.
            while unsafe { libc::read(wake_rd.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len()) }
                > 0
            {}
            let cmds: Vec<Cmd> = std::mem::take(&mut *shared.ctl.cmds.lock().unwrap());
            for c in cmds {
                match c {
                    Cmd::Add(k, l, h) => listeners.push((k, l, h)),
                    Cmd::Remove(k) => listeners.retain(|(x, _, _)| *x != k),
                    Cmd::Exit => return Ok(()),
                }
            }
            continue; // the listener list may have changed
        }
        for (i, (kind, l, h)) in listeners.iter().enumerate() {
            if fds[i + 2].revents == 0 {
                continue;
            }
            match l.accept() {
                Ok((stream, _)) => spawn_connection(shared.clone(), *kind, h.clone(), stream),
                Err(e) => tracing::warn!("accept on {kind:?}: {e}"),
            }
        }
    }
}

/// Start a connection thread. The accept loop never takes the state lock,
/// so a long operation (a boot, a large reservation) does not hold up
/// status queries.
fn spawn_connection(
    shared: Arc<Shared>,
    kind: SocketKind,
    handle: Option<Arc<InstanceHandle>>,
    stream: UnixStream,
) {
    if handle.as_ref().is_some_and(|h| h.is_destroyed()) {
        return; // destroyed meanwhile: closing tells the client
    }
    if let Some(h) = &handle {
        h.connection_opened();
    }
    let spawned = std::thread::Builder::new()
        .name(format!("ihkd-conn-{kind:?}"))
        .spawn({
            let handle = handle.clone();
            move || {
                serve_connection(&shared, kind, handle.as_deref(), stream);
                if let Some(h) = handle {
                    h.connection_closed();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a connection thread: {e}");
        if let Some(h) = handle {
            h.connection_closed();
        }
    }
}

fn serve_connection(
    shared: &Shared,
    kind: SocketKind,
    handle: Option<&InstanceHandle>,
    stream: UnixStream,
) {
    let uid = match getsockopt(&stream, PeerCredentials) {
        Ok(c) => c.uid(),
        Err(e) => {
            tracing::warn!("no peer credentials: {e}");
            return;
        }
    };
    let mut rx = Receiver::new();
    loop {
        let (line, mut fds) = match rx.recv(&stream) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("connection closed: {e}");
                return;
            }
        };
        let mut quit = false;
        // Descriptors sent with the reply (ihk_os_get_eventfd).
        let mut out_fds: Vec<OwnedFd> = Vec::new();
        // A share window to remove if the reply cannot be delivered.
        let mut unsent_window = None;
        let response = match decode_request(&line) {
            Err(e) => Response::Err(e),
            Ok(Request::OsAttach {
                local_rank,
                per_node,
            }) => {
                // mcexec (daemon/attach.rs): the connection now belongs to
                // the attachment and ends with it.
                let owner = shared.state.lock().unwrap().owner;
                if let Err(e) = may_use_memory(uid, owner, "os_attach") {
                    tracing::info!("os_attach from uid {uid} refused: {e}");
                    let text = serde_json::to_string(&Response::Err(e)).unwrap_or_default();
                    let _ = wire::send(&stream, &text, &[]);
                    return;
                }
                if let Some(h) = handle {
                    let pid = getsockopt(&stream, PeerCredentials).map_or(0, |c| c.pid() as u32);
                    super::attach::serve(h, pid, &stream, local_rank, per_node);
                }
                return;
            }
            Ok(req) => {
                let fd = if fds.is_empty() {
                    None
                } else {
                    Some(fds.remove(0))
                };
                let name = req.name();
                let mut call = Call {
                    shared,
                    handle,
                    os: match kind {
                        SocketKind::Os(o) => o,
                        SocketKind::Device(_) => 0,
                    },
                    fd,
                    warnings: Vec::new(),
                    quit: false,
                    out_fds: Vec::new(),
                    unsent_window: None,
                    uid,
                };
                let result =
                    admit(kind, handle, uid, &req).and_then(|()| dispatch(&mut call, req));
                if let Err(e) = &result {
                    tracing::info!("{name} from uid {uid} failed: {e}");
                }
                quit = call.quit;
                out_fds = call.out_fds;
                unsent_window = call.unsent_window;
                match result {
                    Ok(reply) => Response::Ok {
                        reply,
                        warnings: call.warnings,
                    },
                    Err(e) => Response::Err(e),
                }
            }
        };
        let text = serde_json::to_string(&response).unwrap_or_else(|e| {
            format!("{{\"err\":{{\"errno\":{EPROTO},\"detail\":\"encoding the reply: {e}\"}}}}")
        });
        let raw: Vec<std::os::fd::RawFd> = out_fds.iter().map(|f| f.as_raw_fd()).collect();
        let sent = wire::send(&stream, &text, &raw);
        drop(out_fds);
        if quit {
            shared.ctl.exit();
            return;
        }
        if sent.is_err() {
            // The proxy died before it learned of its window: the LWK will
            // never release it, so it goes now.
            if let (Some(gpa), Some(h)) = (unsent_window, handle) {
                h.unshare_window(gpa);
            }
            return;
        }
    }
}

/// One request being served: where it came from, what came with it, and
/// what goes back besides the reply. Every request handler gets this.
struct Call<'a> {
    shared: &'a Shared,
    /// The instance of the mcos socket (None on the device socket).
    handle: Option<&'a InstanceHandle>,
    /// The instance index of the mcos socket (0 on the device socket).
    os: u32,
    /// The descriptor sent with the request (os_load's image, os_dump's file).
    fd: Option<OwnedFd>,
    /// Things the caller should know although the call succeeded.
    warnings: Vec<String>,
    /// Exit after this reply (quit).
    quit: bool,
    /// Descriptors sent with the reply (ihk_os_get_eventfd).
    out_fds: Vec<OwnedFd>,
    /// The share window this call created (removed if the reply is lost).
    unsent_window: Option<u64>,
    /// The caller's user id (peer credentials).
    uid: u32,
}

impl Call<'_> {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// The instance of an OS request.
    fn instance(&self, errno: i32) -> IhkResult<&InstanceHandle> {
        self.handle
            .ok_or_else(|| IhkError::new(errno, "no OS instance"))
    }
}

/// Whether this caller may send `req` on this socket: device requests on
/// mcd, OS requests on mcos, privileged ones from root, nothing to a
/// destroyed instance.
fn admit(
    kind: SocketKind,
    handle: Option<&InstanceHandle>,
    uid: u32,
    req: &Request,
) -> IhkResult<()> {
    let name = req.name();
    match kind {
        SocketKind::Device(_) if !req.is_device_request() => {
            return Err(IhkError::inval(format!(
                "{name} is an OS instance request; send it to an mcos socket"
            )))
        }
        SocketKind::Os(_) if req.is_device_request() => {
            return Err(IhkError::inval(format!(
                "{name} is a device request; send it to the mcd socket"
            )))
        }
        _ => {}
    }
    if req.is_privileged() && uid != 0 {
        // ihk_get_num_os_instances documents EACCES; everything else EPERM.
        let errno = if *req == Request::GetOsInstances {
            libc::EACCES
        } else {
            libc::EPERM
        };
        return Err(IhkError::new(
            errno,
            format!("{name} needs root privileges (the caller is uid {uid})"),
        ));
    }
    if let Some(h) = handle {
        if h.is_destroyed() {
            return Err(IhkError::noent(format!(
                "OS instance {} has been destroyed",
                h.index
            )));
        }
    }
    Ok(())
}

/// Whether `uid` may have the LWK's memory (`os_attach` hands over every
/// guest memory region, `os_share_window` maps into it): root and the
/// owner set by `mcreboot -o` only. The socket's group may open the socket
/// (mode 0660, to query and read kmsg), but another user's process on
/// this instance would be as open to it as its own (issue 20, item 4).
fn may_use_memory(uid: u32, owner: Option<(u32, u32)>, name: &str) -> IhkResult<()> {
    let owner_uid = owner.map_or(0, |(u, _)| u);
    if uid == 0 || uid == owner_uid {
        return Ok(());
    }
    Err(IhkError::new(
        libc::EACCES,
        format!(
            "{name}: the OS instance belongs to uid {owner_uid}, the caller is uid {uid}; only its owner \
             (mcreboot -o) and root may run programs on it"
        ),
    ))
}

/// The request table: each request to its handler below (the libihk and
/// ihkmond ones to `daemon/libihk.rs`).
fn dispatch(c: &mut Call, req: Request) -> IhkResult<Reply> {
    use Request::*;
    match req {
        // ---- device ----
        ReserveCpu { cpus } => reserve_cpu(c, &cpus),
        ReleaseCpu { cpus } => release_cpu(c, &cpus),
        QueryCpu => query_cpu(c),
        ReserveMem { mem } => reserve_mem(c, &mem),
        ReleaseMem { mem } => done(c.state().release_mem(&mem)),
        QueryMem => query_mem(c),
        CreateOs => {
            let r = c.state().create_os().map(Reply::OsIndex);
            if r.is_ok() {
                fault::point("ihkd:os-created");
            }
            r
        }
        DestroyOs { os } => destroy_os(c, os),
        GetOsInstances => get_os_instances(c),
        SetOwner { uid, gid } => done(c.state().set_owner(uid, gid)),
        DaemonInfo => Ok(daemon_info(c)),
        Quit => quit(c),
        // ---- OS instance ----
        OsAssignCpu { cpus } => done(c.state().os_assign_cpu(c.os, &cpus)),
        OsReleaseCpu { cpus } => done(c.state().os_release_cpu(c.os, &cpus)),
        OsQueryCpu => c.state().os_query_cpu(c.os).map(Reply::Cpus),
        OsAssignMem { mem } => done(c.state().os_assign_mem(c.os, &mem)),
        OsReleaseMem { mem } => done(c.state().os_release_mem(c.os, &mem)),
        OsQueryMem => c.state().os_query_mem(c.os).map(Reply::Mem),
        OsSetIkcMap { map } => done(c.state().os_set_ikc_map(c.os, &map)),
        OsGetIkcMap => c.state().os_get_ikc_map(c.os).map(Reply::IkcMap),
        OsLoad { name } => os_load(c, &name),
        OsKargs { kargs } => done(c.state().os_kargs(c.os, &kargs)),
        OsBoot { timeout_ms } => os_boot(c, timeout_ms),
        OsShutdown => done(c.state().os_shutdown(c.os)),
        OsGetStatus => os_get_status(c),
        OsKmsg => Ok(Reply::Kmsg(instance::kmsg(c.instance(ENOENT)?))),
        OsClearKmsg => os_clear_kmsg(c),
        OsQueryFreeMem => instance::query_free_mem(c.instance(EINVAL)?).map(Reply::Mem),
        OsAttach { .. } => Err(IhkError::inval("os_attach is served on its own connection")),
        OsShareWindow { gpa, len, offset, writable, shmid } => os_share_window(c, gpa, len, offset, writable, shmid),
        // ---- libihk and ihkmond (daemon/libihk.rs) ----
        other => {
            let fd = c.fd.take();
            super::libihk::dispatch(&c.shared.state, c.handle, c.os, other, fd, &mut c.out_fds)
        }
    }
}

/// mcexec's request for its LWK process: a host file (or SysV segment,
/// which `uid` must be allowed to attach) as a share window.
#[allow(clippy::too_many_arguments)]
fn os_share_window(
    c: &mut Call,
    gpa: u64,
    len: u64,
    offset: u64,
    writable: bool,
    shmid: Option<i32>,
) -> IhkResult<Reply> {
    may_use_memory(c.uid, c.state().owner, "os_share_window")?;
    let backing = match shmid {
        Some(id) => ihk_vm::ShareBacking::Sysv { shmid: id, uid: c.uid },
        None => ihk_vm::ShareBacking::File(
            c.fd.take().ok_or_else(|| IhkError::inval("os_share_window needs the file's descriptor"))?,
        ),
    };
    c.instance(ENOENT)?.share_window(backing, gpa, len, offset, writable)?;
    c.unsent_window = Some(gpa);
    Ok(Reply::Done)
}

fn done(r: IhkResult<()>) -> IhkResult<Reply> {
    r.map(|_| Reply::Done)
}

fn reserve_cpu(c: &mut Call, cpus: &[u32]) -> IhkResult<Reply> {
    let r = c
        .shared
        .state
        .lock()
        .unwrap()
        .reserve_cpu(cpus, &mut c.warnings);
    if r.is_ok() {
        fault::point("ihkd:cpus-reserved");
    }
    done(r)
}

fn release_cpu(c: &mut Call, cpus: &[u32]) -> IhkResult<Reply> {
    let r = c
        .shared
        .state
        .lock()
        .unwrap()
        .release_cpu(cpus, &mut c.warnings);
    done(r)
}

fn query_cpu(c: &mut Call) -> IhkResult<Reply> {
    Ok(Reply::Cpus(
        c.state().reserved_cpus.iter().copied().collect(),
    ))
}

fn reserve_mem(c: &mut Call, mem: &MemList) -> IhkResult<Reply> {
    let r = c
        .shared
        .state
        .lock()
        .unwrap()
        .reserve_mem(mem, &mut c.warnings);
    if r.is_ok() {
        fault::point("ihkd:mem-reserved");
    }
    done(r)
}

/// Reserved, unassigned memory as (bytes, node).
fn query_mem(c: &mut Call) -> IhkResult<Reply> {
    let free = c.state().mem.free_by_node();
    Ok(Reply::Mem(free.into_iter().map(|(n, b)| (b, n)).collect()))
}

/// Retry briefly while another process (ihkmond, a command) has the OS
/// socket open, without holding the state lock meanwhile.
fn destroy_os(c: &mut Call, os: u32) -> IhkResult<Reply> {
    let deadline = std::time::Instant::now() + super::state::DESTROY_BUSY_WAIT;
    loop {
        let r = c.state().destroy_os(os);
        match r {
            Err(e) if e.errno == libc::EBUSY && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => {
                if r.is_ok() {
                    fault::point("ihkd:destroyed");
                }
                return done(r);
            }
        }
    }
}

fn get_os_instances(c: &mut Call) -> IhkResult<Reply> {
    Ok(Reply::OsIndices(
        c.state().instances.keys().copied().collect(),
    ))
}

fn daemon_info(c: &Call) -> Reply {
    Reply::Info(DaemonInfo {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        isolation: c.shared.cfg.isolation.as_str().to_string(),
        runtime_dir: c.shared.cfg.dir.path().display().to_string(),
    })
}

/// Past the privilege check: the daemon exits after replying.
fn quit(c: &mut Call) -> IhkResult<Reply> {
    fault::point("ihkd:quit");
    c.quit = true;
    let failures = c.state().teardown();
    if failures.is_empty() {
        Ok(Reply::Done)
    } else {
        Err(IhkError::io(format!(
            "could not restore: {}",
            failures.join("; ")
        )))
    }
}

fn os_load(c: &mut Call, name: &str) -> IhkResult<Reply> {
    let fd = c.fd.take();
    done(c.state().os_load(c.os, name, fd))
}

/// Boot without holding the state lock while the LWK comes up.
fn os_boot(c: &mut Call, timeout_ms: u64) -> IhkResult<Reply> {
    let (h, spec) = c.state().os_prepare_boot(c.os)?;
    let timeout = Duration::from_millis(timeout_ms.clamp(100, 600_000));
    let r = instance::boot(&h, spec, timeout);
    if r.is_ok() {
        fault::point("ihkd:booted");
    }
    done(r)
}

fn os_get_status(c: &mut Call) -> IhkResult<Reply> {
    let h = c.instance(ENOENT)?;
    Ok(Reply::Status(h.status().as_str().to_string()))
}

fn os_clear_kmsg(c: &mut Call) -> IhkResult<Reply> {
    instance::clear_kmsg(c.instance(ENOENT)?);
    Ok(Reply::Done)
}
