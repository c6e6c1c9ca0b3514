//! Sockets and dispatch: one poll loop accepts on `mcd0` and every `mcos<N>`
//! and watches SIGTERM/SIGINT (signalfd); each connection gets a thread that
//! reads requests, checks the peer's credentials (SO_PEERCRED: privileged
//! requests need uid 0, else EPERM) and calls the state operations.

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
use crate::journal::Journal;
use crate::proto::wire::{self, Receiver};
use crate::proto::{DaemonInfo, Reply, Request, RequestEnvelope, Response, PROTOCOL_VERSION};
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
        let response = match serde_json::from_str::<RequestEnvelope>(&line) {
            Err(e) => Response::Err(IhkError::new(EPROTO, format!("unreadable request: {e}"))),
            Ok(env) if env.v != PROTOCOL_VERSION => Response::Err(IhkError::new(
                EPROTO,
                format!(
                    "protocol version {} is not supported (ihkd speaks {PROTOCOL_VERSION})",
                    env.v
                ),
            )),
            Ok(env) if matches!(env.req, Request::OsAttach { .. }) => {
                // mcexec (daemon/attach.rs): the connection now belongs to
                // the attachment and ends with it.
                if let (
                    Request::OsAttach {
                        local_rank,
                        per_node,
                    },
                    Some(h),
                ) = (env.req, handle)
                {
                    let pid = getsockopt(&stream, PeerCredentials).map_or(0, |c| c.pid() as u32);
                    super::attach::serve(h, pid, &stream, local_rank, per_node);
                }
                return;
            }
            Ok(env) => {
                let fd = if fds.is_empty() {
                    None
                } else {
                    Some(fds.remove(0))
                };
                let name = env.req.name();
                let mut warnings = Vec::new();
                let result = dispatch(
                    shared,
                    kind,
                    handle,
                    uid,
                    env.req,
                    fd,
                    &mut warnings,
                    &mut quit,
                    &mut out_fds,
                );
                if let Err(e) = &result {
                    tracing::info!("{name} from uid {uid} failed: {e}");
                }
                match result {
                    Ok(reply) => Response::Ok { reply, warnings },
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
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    shared: &Shared,
    kind: SocketKind,
    handle: Option<&InstanceHandle>,
    uid: u32,
    req: Request,
    fd: Option<OwnedFd>,
    warnings: &mut Vec<String>,
    quit: &mut bool,
    out_fds: &mut Vec<OwnedFd>,
) -> IhkResult<Reply> {
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
        let errno = if req == Request::GetOsInstances {
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
    let os = match kind {
        SocketKind::Os(o) => o,
        SocketKind::Device(_) => 0,
    };
    let done = |r: IhkResult<()>| r.map(|_| Reply::Done);
    match req {
        Request::ReserveCpu { cpus } => {
            done(shared.state.lock().unwrap().reserve_cpu(&cpus, warnings))
        }
        Request::ReleaseCpu { cpus } => {
            done(shared.state.lock().unwrap().release_cpu(&cpus, warnings))
        }
        Request::QueryCpu => Ok(Reply::Cpus(
            shared
                .state
                .lock()
                .unwrap()
                .reserved_cpus
                .iter()
                .copied()
                .collect(),
        )),
        Request::ReserveMem { mem } => {
            done(shared.state.lock().unwrap().reserve_mem(&mem, warnings))
        }
        Request::ReleaseMem { mem } => done(shared.state.lock().unwrap().release_mem(&mem)),
        Request::QueryMem => Ok(Reply::Mem(
            shared
                .state
                .lock()
                .unwrap()
                .mem
                .free_by_node()
                .into_iter()
                .map(|(n, b)| (b, n))
                .collect(),
        )),
        Request::CreateOs => shared.state.lock().unwrap().create_os().map(Reply::OsIndex),
        Request::DestroyOs { os } => {
            // Retry briefly while another process (ihkmond, a command) has
            // the OS socket open, without holding the state lock meanwhile.
            let deadline = std::time::Instant::now() + super::state::DESTROY_BUSY_WAIT;
            loop {
                let r = shared.state.lock().unwrap().destroy_os(os);
                match r {
                    Err(e) if e.errno == libc::EBUSY && std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    r => break done(r),
                }
            }
        }
        Request::GetOsInstances => Ok(Reply::OsIndices(
            shared
                .state
                .lock()
                .unwrap()
                .instances
                .keys()
                .copied()
                .collect(),
        )),
        Request::SetOwner { uid, gid } => done(shared.state.lock().unwrap().set_owner(uid, gid)),
        Request::DaemonInfo => Ok(Reply::Info(DaemonInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            isolation: shared.cfg.isolation.as_str().to_string(),
            runtime_dir: shared.cfg.dir.path().display().to_string(),
        })),
        Request::Quit => {
            // Past the privilege check: the daemon exits after replying.
            *quit = true;
            let failures = shared.state.lock().unwrap().teardown();
            if failures.is_empty() {
                Ok(Reply::Done)
            } else {
                Err(IhkError::io(format!(
                    "could not restore: {}",
                    failures.join("; ")
                )))
            }
        }

        Request::OsAssignCpu { cpus } => {
            done(shared.state.lock().unwrap().os_assign_cpu(os, &cpus))
        }
        Request::OsReleaseCpu { cpus } => {
            done(shared.state.lock().unwrap().os_release_cpu(os, &cpus))
        }
        Request::OsQueryCpu => shared
            .state
            .lock()
            .unwrap()
            .os_query_cpu(os)
            .map(Reply::Cpus),
        Request::OsAssignMem { mem } => done(shared.state.lock().unwrap().os_assign_mem(os, &mem)),
        Request::OsReleaseMem { mem } => {
            done(shared.state.lock().unwrap().os_release_mem(os, &mem))
        }
        Request::OsQueryMem => shared
            .state
            .lock()
            .unwrap()
            .os_query_mem(os)
            .map(Reply::Mem),
        Request::OsSetIkcMap { map } => done(shared.state.lock().unwrap().os_set_ikc_map(os, &map)),
        Request::OsGetIkcMap => shared
            .state
            .lock()
            .unwrap()
            .os_get_ikc_map(os)
            .map(Reply::IkcMap),
        Request::OsLoad { name } => done(shared.state.lock().unwrap().os_load(os, &name, fd)),
        Request::OsKargs { kargs } => done(shared.state.lock().unwrap().os_kargs(os, &kargs)),
        Request::OsBoot { timeout_ms } => {
            let (h, spec) = shared.state.lock().unwrap().os_prepare_boot(os)?;
            let timeout = Duration::from_millis(timeout_ms.clamp(100, 600_000));
            done(instance::boot(&h, spec, timeout))
        }
        Request::OsShutdown => done(shared.state.lock().unwrap().os_shutdown(os)),
        Request::OsGetStatus => {
            let h = handle.ok_or_else(|| IhkError::new(ENOENT, "no OS instance"))?;
            Ok(Reply::Status(h.status().as_str().to_string()))
        }
        Request::OsKmsg => {
            let h = handle.ok_or_else(|| IhkError::new(ENOENT, "no OS instance"))?;
            Ok(Reply::Kmsg(instance::kmsg(h)))
        }
        Request::OsClearKmsg => {
            let h = handle.ok_or_else(|| IhkError::new(ENOENT, "no OS instance"))?;
            instance::clear_kmsg(h);
            Ok(Reply::Done)
        }
        Request::OsAttach { .. } => {
            Err(IhkError::inval("os_attach is served on its own connection"))
        }
        Request::OsQueryFreeMem => {
            let h = handle.ok_or_else(|| IhkError::new(EINVAL, "no OS instance"))?;
            instance::query_free_mem(h).map(Reply::Mem)
        }
        // libihk and ihkmond (daemon/libihk.rs).
        other => super::libihk::dispatch(&shared.state, handle, os, other, fd, out_fds),
    }
}
