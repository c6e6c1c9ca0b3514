//! ql_server: one per (user, job key). Started by the first
//! ql_mpiexec_start of a job with the listening socket already bound; runs
//! mpiexec, introduces each round to the resident ranks, relays mpiexec's
//! own output, and leaves when the job ends (finalize, failure, signal).
//!
//! Threads feed one event channel (accept, one reader per connection,
//! mpiexec's waiter, two output relays, signals); the loop here applies
//! events to [`job::Job`] and performs the actions it returns.

mod conn;
pub mod job;
mod launch;

use crate::proto::{self, Status, ToServer};
use crate::sockdir::SocketDir;
use job::{Action, ClientIo, ConnId, Job, Kill, Request};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events from the server's threads.
pub enum Event {
    Accepted(UnixStream),
    Message(ConnId, ToServer, Vec<OwnedFd>),
    Closed(ConnId),
    MpiexecExited(Status),
    RelayClosed,
    Signal(i32),
}

/// What the server needs to run.
pub struct Config {
    /// The bound, listening socket (inherited from ql_mpiexec_start).
    pub listener: UnixListener,
    /// Its path.
    pub socket: PathBuf,
    /// The user's socket directory.
    pub dir: SocketDir,
    /// The job name.
    pub name: String,
    /// Finalize the job after this long without a round.
    pub idle_timeout: Option<Duration>,
}

struct Server {
    cfg: Config,
    socket_ino: Option<u64>,
    listening: bool,
    job: Job,
    conns: HashMap<ConnId, UnixStream>,
    next_id: ConnId,
    events: Sender<Event>,
    relay_target: launch::RelayTarget,
    mpiexec_pid: Option<i32>,
    devnull: File,
}

/// Runs the server until the job ends. Returns the process exit code.
pub fn run(cfg: Config) -> i32 {
    let (tx, rx) = mpsc::channel();
    let devnull = match File::options().read(true).write(true).open("/dev/null") {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("/dev/null: {e}");
            return 1;
        }
    };
    let socket_ino = std::fs::symlink_metadata(&cfg.socket).ok().map(|m| m.ino());
    let listener = match cfg.listener.try_clone() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("listening socket: {e}");
            return 1;
        }
    };
    {
        let tx = tx.clone();
        std::thread::spawn(move || conn::accept_loop(listener, tx));
    }
    match signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP]) {
        Ok(mut signals) => {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for s in signals.forever() {
                    if tx.send(Event::Signal(s)).is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => tracing::warn!("signal handlers: {e}"),
    }
    let idle = cfg.idle_timeout;
    let mut server = Server {
        cfg,
        socket_ino,
        listening: true,
        job: Job::new(Instant::now(), idle),
        conns: HashMap::new(),
        next_id: 1,
        events: tx,
        relay_target: Arc::new(Mutex::new(None)),
        mpiexec_pid: None,
        devnull,
    };
    tracing::info!(
        "ql_server {} started for job {}",
        std::process::id(),
        server.cfg.name
    );
    server.record_pids();
    loop {
        let wait = server
            .job
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        let actions = match rx.recv_timeout(wait) {
            Ok(ev) => server.handle(ev),
            Err(RecvTimeoutError::Timeout) => server.job.tick(Instant::now()),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if server.perform(actions) {
            break;
        }
    }
    server.stop_listening();
    let _ = std::fs::remove_file(server.cfg.dir.pids(&server.cfg.name));
    tracing::info!(
        "ql_server {} exits after round {}",
        std::process::id(),
        server.job.round()
    );
    0
}

impl Server {
    fn handle(&mut self, ev: Event) -> Vec<Action> {
        let now = Instant::now();
        match ev {
            Event::Accepted(stream) => {
                let id = self.next_id;
                self.next_id += 1;
                match stream.try_clone() {
                    Ok(reader) => {
                        let tx = self.events.clone();
                        std::thread::spawn(move || conn::read_loop(id, reader, tx));
                        self.conns.insert(id, stream);
                    }
                    Err(e) => tracing::warn!("connection {id}: {e}"),
                }
                Vec::new()
            }
            Event::Message(id, msg, fds) => self.message(now, id, msg, fds),
            Event::Closed(id) => {
                self.conns.remove(&id);
                self.job.closed(now, id)
            }
            Event::MpiexecExited(status) => {
                tracing::info!("mpiexec exited: {status:?}");
                self.mpiexec_pid = None;
                self.job.mpiexec_exited(now, status)
            }
            Event::RelayClosed => self.job.relay_closed(),
            Event::Signal(s) => {
                tracing::info!("signal {s}");
                self.job.interrupt(now, s)
            }
        }
    }

    fn message(
        &mut self,
        now: Instant,
        id: ConnId,
        msg: ToServer,
        fds: Vec<OwnedFd>,
    ) -> Vec<Action> {
        let client_io = |fds: Vec<OwnedFd>| -> Option<ClientIo> {
            let [stdin, stdout, stderr]: [OwnedFd; 3] = fds.try_into().ok()?;
            Some(ClientIo {
                stdin,
                stdout,
                stderr,
            })
        };
        match msg {
            ToServer::Start(start) => match client_io(fds) {
                Some(io) => {
                    tracing::info!("round requested by connection {id}");
                    self.job.request(now, id, Request::Start(start), io)
                }
                None => self.refuse(id, "a start request must carry stdin, stdout and stderr"),
            },
            ToServer::Finalize => match client_io(fds) {
                Some(io) => {
                    tracing::info!("finalize requested by connection {id}");
                    self.job.request(now, id, Request::Finalize, io)
                }
                None => self.refuse(id, "a finalize request must carry stdin, stdout and stderr"),
            },
            ToServer::Hello(h) => {
                tracing::info!("rank {} of {} (pid {}) connected", h.rank, h.size, h.pid);
                self.job.hello(now, id, h)
            }
            ToServer::RoundEnd => self.job.round_end(now, id),
        }
    }

    fn refuse(&mut self, id: ConnId, why: &str) -> Vec<Action> {
        tracing::warn!("connection {id}: {why}");
        self.conns.remove(&id);
        Vec::new()
    }

    /// Performs `actions`; true when the server must leave.
    fn perform(&mut self, actions: Vec<Action>) -> bool {
        let mut exit = false;
        for action in actions {
            match action {
                Action::Launch { command, env, cwd } => self.launch(&command, &env, &cwd),
                Action::ToRank {
                    conn,
                    msg,
                    io,
                    stdin,
                } => {
                    let Some(stream) = self.conns.get(&conn) else {
                        continue;
                    };
                    let sent = match &io {
                        Some(io) => {
                            let input = if stdin {
                                io.stdin.as_raw_fd()
                            } else {
                                self.devnull.as_raw_fd()
                            };
                            proto::send(
                                stream,
                                &msg,
                                &[input, io.stdout.as_raw_fd(), io.stderr.as_raw_fd()],
                            )
                        }
                        None => proto::send(stream, &msg, &[]),
                    };
                    if let Err(e) = sent {
                        // Its reader reports the close.
                        tracing::warn!("to rank connection {conn}: {e}");
                    }
                }
                Action::Reply { conn, msg } => {
                    if let Some(stream) = self.conns.remove(&conn) {
                        if let Err(e) = proto::send(&stream, &msg, &[]) {
                            tracing::warn!("reply to connection {conn}: {e}");
                        }
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                    }
                }
                Action::RelayTo(io) => {
                    *self.relay_target.lock().unwrap_or_else(|e| e.into_inner()) = io
                }
                Action::Signal(kill) => self.signal_mpiexec(kill),
                Action::KillRanks(pids) => {
                    for pid in pids {
                        tracing::warn!("killing rank process {pid}");
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::SIGKILL,
                        );
                    }
                }
                Action::StopListening => self.stop_listening(),
                Action::RecordPids => self.record_pids(),
                Action::Exit => exit = true,
            }
        }
        exit
    }

    fn launch(&mut self, command: &[proto::Bytes], env: &[proto::Bytes], cwd: &[u8]) {
        let shown: Vec<String> = command
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        tracing::info!("launching: {}", shown.join(" "));
        match launch::spawn(command, env, cwd) {
            Ok(m) => {
                let launch::Mpiexec {
                    mut child,
                    stdout,
                    stderr,
                } = m;
                self.mpiexec_pid = Some(child.id() as i32);
                for (stream, reader) in [
                    (
                        launch::Stream::Out,
                        Box::new(stdout) as Box<dyn std::io::Read + Send>,
                    ),
                    (launch::Stream::Err, Box::new(stderr)),
                ] {
                    let (tx, target) = (self.events.clone(), self.relay_target.clone());
                    std::thread::spawn(move || {
                        launch::relay(reader, stream, target);
                        let _ = tx.send(Event::RelayClosed);
                    });
                }
                let tx = self.events.clone();
                std::thread::spawn(move || {
                    let status = match child.wait() {
                        Ok(s) => launch::status_of(s),
                        Err(e) => {
                            tracing::error!("waiting for mpiexec: {e}");
                            Status::Code(1)
                        }
                    };
                    let _ = tx.send(Event::MpiexecExited(status));
                });
            }
            Err(e) => {
                let why = format!(
                    "cannot run '{}': {e}",
                    shown.first().map(String::as_str).unwrap_or("")
                );
                tracing::error!("{why}");
                // Tell the caller through the usual path: the job "exited"
                // with the shell's status for a command that cannot run.
                let _ = writeln!(std::io::stderr(), "ql_server: {why}");
                let _ = self.events.send(Event::RelayClosed);
                let _ = self.events.send(Event::RelayClosed);
                self.job.launch_failed(why);
                let _ = self.events.send(Event::MpiexecExited(Status::Code(127)));
            }
        }
    }

    fn signal_mpiexec(&mut self, kill: Kill) {
        let Some(pid) = self.mpiexec_pid else { return };
        let sig = match kill {
            Kill::Term => nix::sys::signal::SIGTERM,
            Kill::Kill => nix::sys::signal::SIGKILL,
        };
        tracing::warn!("sending {sig} to mpiexec (process group {pid})");
        // mpiexec leads its own process group (launch.rs); the pid is still
        // ours because its exit has not been reported yet.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), sig);
    }

    fn stop_listening(&mut self) {
        if !self.listening {
            return;
        }
        self.listening = false;
        // Only our own socket: a new server may already own the path.
        let ours = std::fs::symlink_metadata(&self.cfg.socket)
            .ok()
            .map(|m| m.ino());
        if ours.is_some() && ours == self.socket_ino {
            let _ = std::fs::remove_file(&self.cfg.socket);
        }
    }

    fn record_pids(&self) {
        let mut text = format!("server {}\n", std::process::id());
        if let Some(p) = self.mpiexec_pid {
            text.push_str(&format!("mpiexec {p}\n"));
        }
        for (rank, pid) in self.job.rank_pids() {
            text.push_str(&format!("rank {rank} {pid}\n"));
        }
        let path = self.cfg.dir.pids(&self.cfg.name);
        let tmp = path.with_extension("pids.tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::warn!("{}: {e}", path.display());
        }
    }
}
