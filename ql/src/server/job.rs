//! The resident job's state machine: rounds, ranks, waiting clients,
//! failure and teardown. Pure logic: events in, [`Action`]s out; the server
//! loop (`server/mod.rs`) performs the actions, so every rule here is unit
//! tested without processes.
//!
//! Rules:
//! - the first Start launches mpiexec; each later Start is one round, handed
//!   to every rank; requests that arrive during a round wait their turn;
//! - a round ends when every rank waits in ql_client (status 0), or when
//!   mpiexec exits (its status; the job is then gone);
//! - a rank that goes away while it should be running or waiting is a
//!   failure: once no rank is still running, mpiexec gets a grace period to
//!   exit by itself, then SIGTERM, then SIGKILL (and the ranks still
//!   connected);
//! - the caller of a round going away also ends the job (as when mpiexec is
//!   interrupted);
//! - Finalize tells the ranks to exit; its caller gets mpiexec's status.

use crate::proto::{Bytes, Hello, RoundSpec, Start, Status, ToClient, ToRank};
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifies one connection to the server.
pub type ConnId = u64;

/// After a failure, how long mpiexec may take to exit by itself.
pub const FAILURE_GRACE: Duration = Duration::from_secs(5);
/// After SIGTERM, how long before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(3);
/// After mpiexec exited, how long to wait for the rest of its output.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long a new server waits for its first Start.
pub const FIRST_START_WAIT: Duration = Duration::from_secs(30);

/// The stdin, stdout and stderr of a ql_mpiexec_start/finalize caller.
#[derive(Debug)]
pub struct ClientIo {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// A client's request.
#[derive(Debug)]
pub enum Request {
    Start(Start),
    Finalize,
}

/// Which signal to send to mpiexec's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    Term,
    Kill,
}

/// What the server loop must do.
#[derive(Debug)]
pub enum Action {
    /// Start mpiexec.
    Launch {
        command: Vec<Bytes>,
        env: Vec<Bytes>,
        cwd: Bytes,
    },
    /// Send `msg` to a rank, with `io`'s descriptors (stdin only if `stdin`,
    /// else /dev/null) when given.
    ToRank {
        conn: ConnId,
        msg: ToRank,
        io: Option<Arc<ClientIo>>,
        stdin: bool,
    },
    /// Answer a client and close its connection.
    Reply { conn: ConnId, msg: ToClient },
    /// Where mpiexec's own output goes (None: the log).
    RelayTo(Option<Arc<ClientIo>>),
    /// Signal mpiexec's process group.
    Signal(Kill),
    /// SIGKILL these rank processes (their connections are still open, so
    /// the pids are theirs).
    KillRanks(Vec<i32>),
    /// Remove the socket: new clients start a new job.
    StopListening,
    /// The set of processes changed; rewrite the pid file.
    RecordPids,
    /// Leave.
    Exit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RankState {
    /// Computing a round.
    Running,
    /// Waiting in ql_client.
    Waiting,
    /// Told to exit.
    Exiting,
    /// Connection closed.
    Gone,
}

#[derive(Debug)]
struct Rank {
    hello: Hello,
    state: RankState,
}

#[derive(Debug)]
struct Active {
    conn: ConnId,
    io: Arc<ClientIo>,
    spec: Option<RoundSpec>,
}

#[derive(Debug)]
enum Phase {
    /// No mpiexec yet: waiting for the first Start.
    Empty,
    /// A round runs for this client.
    Round(Active),
    /// Resident, waiting for a client.
    Idle,
    /// Ranks told to exit; the client (if any) gets mpiexec's status.
    Finalizing(Option<Active>),
    /// Failed or interrupted; waiting for mpiexec to go. The client (if any)
    /// gets mpiexec's status and `reason`.
    Ending(Option<Active>),
    /// Done.
    Over,
}

#[derive(Debug, Default)]
struct Timers {
    kill: Option<Instant>,
    hard_kill: Option<Instant>,
    drain: Option<Instant>,
    idle: Option<Instant>,
    first_start: Option<Instant>,
}

/// The resident job.
#[derive(Debug)]
pub struct Job {
    phase: Phase,
    ranks: BTreeMap<ConnId, Rank>,
    size: Option<usize>,
    queue: VecDeque<(ConnId, Request, Arc<ClientIo>)>,
    round: u64,
    mpiexec_started: bool,
    mpiexec_status: Option<Status>,
    relays_open: usize,
    reason: Option<String>,
    killed: bool,
    idle_timeout: Option<Duration>,
    timers: Timers,
}

impl Job {
    /// A new job that will launch mpiexec on its first Start. With
    /// `idle_timeout`, a job left idle that long finalizes itself.
    pub fn new(now: Instant, idle_timeout: Option<Duration>) -> Self {
        Job {
            phase: Phase::Empty,
            ranks: BTreeMap::new(),
            size: None,
            queue: VecDeque::new(),
            round: 0,
            mpiexec_started: false,
            mpiexec_status: None,
            relays_open: 0,
            reason: None,
            killed: false,
            idle_timeout,
            timers: Timers {
                first_start: Some(now + FIRST_START_WAIT),
                ..Timers::default()
            },
        }
    }

    /// Round number (1 is the launch).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Pids of the ranks that introduced themselves and are still connected.
    pub fn rank_pids(&self) -> Vec<(i32, i32)> {
        self.ranks
            .values()
            .filter(|r| r.state != RankState::Gone)
            .map(|r| (r.hello.rank, r.hello.pid))
            .collect()
    }

    /// Whether the server is done.
    pub fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Over)
    }

    /// The earliest pending timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let t = &self.timers;
        [t.kill, t.hard_kill, t.drain, t.idle, t.first_start]
            .into_iter()
            .flatten()
            .min()
    }

    /// A client asks for a round or for the end of the job.
    pub fn request(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: Request,
        io: ClientIo,
    ) -> Vec<Action> {
        let io = Arc::new(io);
        let mut out = Vec::new();
        match &self.phase {
            Phase::Empty => match req {
                Request::Start(start) => {
                    self.timers.first_start = None;
                    self.round = 1;
                    self.mpiexec_started = true;
                    self.relays_open = 2;
                    out.push(Action::Launch {
                        command: start.launch,
                        env: start.launch_env,
                        cwd: start.round.cwd.clone(),
                    });
                    out.push(Action::RelayTo(Some(io.clone())));
                    out.push(Action::RecordPids);
                    self.phase = Phase::Round(Active {
                        conn,
                        io,
                        spec: Some(start.round),
                    });
                }
                Request::Finalize => self.queue.push_back((conn, req, io)),
            },
            Phase::Round(_) | Phase::Finalizing(_) => self.queue.push_back((conn, req, io)),
            Phase::Idle => {
                self.queue.push_back((conn, req, io));
                self.start_next(now, &mut out);
            }
            Phase::Ending(_) | Phase::Over => out.push(Action::Reply {
                conn,
                msg: ToClient::Retry("the resident job is ending".into()),
            }),
        }
        out
    }

    /// A rank introduced itself (after its MPI_Init).
    pub fn hello(&mut self, now: Instant, conn: ConnId, hello: Hello) -> Vec<Action> {
        let mut out = vec![Action::RecordPids];
        if hello.size <= 0 {
            self.fail(
                format!(
                    "rank {} reported an invalid job size {}",
                    hello.rank, hello.size
                ),
                &mut out,
            );
        }
        match self.size {
            None if hello.size > 0 => self.size = Some(hello.size as usize),
            Some(s) if s != hello.size as usize => self.fail(
                format!(
                    "rank {} reported job size {}, others {}",
                    hello.rank, hello.size, s
                ),
                &mut out,
            ),
            _ => {}
        }
        if self.ranks.values().any(|r| r.hello.rank == hello.rank) {
            self.fail(format!("two processes claim rank {}", hello.rank), &mut out);
        }
        let first_round = match &self.phase {
            Phase::Round(a) if self.round == 1 => {
                Some((a.io.clone(), a.spec.clone().unwrap_or_default()))
            }
            _ => None,
        };
        match first_round {
            Some((io, spec)) => {
                self.ranks.insert(
                    conn,
                    Rank {
                        hello,
                        state: RankState::Running,
                    },
                );
                out.push(Action::ToRank {
                    conn,
                    msg: ToRank::Round { first: true, spec },
                    io: Some(io),
                    stdin: hello.rank == 0,
                });
            }
            None => {
                // Too late to join (the job is ending, or a rank appeared
                // after the first round): let it exit.
                self.ranks.insert(
                    conn,
                    Rank {
                        hello,
                        state: RankState::Exiting,
                    },
                );
                out.push(Action::ToRank {
                    conn,
                    msg: ToRank::Exit,
                    io: None,
                    stdin: false,
                });
            }
        }
        self.check_failed_round(now);
        out
    }

    /// A rank finished its round and waits in ql_client.
    pub fn round_end(&mut self, now: Instant, conn: ConnId) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(r) = self.ranks.get_mut(&conn) {
            if r.state == RankState::Running {
                r.state = RankState::Waiting;
            }
        }
        self.check_round(now, &mut out);
        self.check_failed_round(now);
        out
    }

    /// A connection closed (rank exited or died, client went away).
    pub fn closed(&mut self, now: Instant, conn: ConnId) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(r) = self.ranks.get_mut(&conn) {
            let was = r.state;
            r.state = RankState::Gone;
            let (rank, pid) = (r.hello.rank, r.hello.pid);
            out.push(Action::RecordPids);
            if was == RankState::Running || was == RankState::Waiting {
                let when = if matches!(self.phase, Phase::Idle) {
                    format!("between rounds (after round {})", self.round)
                } else {
                    format!("during round {}", self.round)
                };
                self.fail(format!("rank {rank} (pid {pid}) exited {when}"), &mut out);
            }
            self.check_failed_round(now);
            return out;
        }
        self.queue.retain(|(c, _, _)| *c != conn);
        let active_here = match &self.phase {
            Phase::Round(a) => a.conn == conn,
            Phase::Finalizing(Some(a)) | Phase::Ending(Some(a)) => a.conn == conn,
            _ => false,
        };
        if !active_here {
            return out;
        }
        match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::Round(_) => {
                self.reason = Some(format!("the caller of round {} went away", self.round));
                self.phase = Phase::Ending(None);
                out.push(Action::RelayTo(None));
                out.push(Action::StopListening);
                self.terminate(now, &mut out);
            }
            Phase::Finalizing(_) => {
                out.push(Action::RelayTo(None));
                self.phase = Phase::Finalizing(None);
            }
            Phase::Ending(_) => {
                out.push(Action::RelayTo(None));
                self.phase = Phase::Ending(None);
            }
            other => self.phase = other,
        }
        out
    }

    /// mpiexec exited.
    pub fn mpiexec_exited(&mut self, now: Instant, status: Status) -> Vec<Action> {
        let mut out = Vec::new();
        self.mpiexec_status = Some(status);
        self.timers.kill = None;
        self.timers.hard_kill = None;
        if self.relays_open == 0 {
            self.finish(&mut out);
        } else {
            self.timers.drain = Some(now + DRAIN_GRACE);
        }
        out
    }

    /// mpiexec could not be started; its "exit" follows as usual.
    pub fn launch_failed(&mut self, why: String) {
        if self.reason.is_none() {
            self.reason = Some(why);
        }
    }

    /// One of mpiexec's output pipes reached end of file.
    pub fn relay_closed(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.relays_open = self.relays_open.saturating_sub(1);
        if self.relays_open == 0 && self.mpiexec_status.is_some() {
            self.finish(&mut out);
        }
        out
    }

    /// The server was told to stop (SIGTERM, SIGINT, SIGHUP).
    pub fn interrupt(&mut self, now: Instant, signal: i32) -> Vec<Action> {
        let mut out = Vec::new();
        if self.reason.is_none() {
            self.reason = Some(format!("ql_server received signal {signal}"));
        }
        match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::Empty => {
                self.phase = Phase::Empty;
                self.finish(&mut out);
                return out;
            }
            Phase::Round(a) => self.phase = Phase::Ending(Some(a)),
            Phase::Finalizing(a) | Phase::Ending(a) => self.phase = Phase::Ending(a),
            Phase::Idle => self.phase = Phase::Ending(None),
            Phase::Over => return out,
        }
        out.push(Action::StopListening);
        self.terminate(now, &mut out);
        out
    }

    /// Timers.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let due = |t: &mut Option<Instant>| match *t {
            Some(at) if at <= now => {
                *t = None;
                true
            }
            _ => false,
        };
        if due(&mut self.timers.first_start) && matches!(self.phase, Phase::Empty) {
            self.reason = Some("no ql_mpiexec_start arrived".into());
            self.finish(&mut out);
            return out;
        }
        if due(&mut self.timers.kill) {
            out.push(Action::Signal(Kill::Term));
            self.killed = true;
            self.timers.hard_kill = Some(now + TERM_GRACE);
        }
        if due(&mut self.timers.hard_kill) {
            out.push(Action::Signal(Kill::Kill));
            let pids: Vec<i32> = self
                .ranks
                .values()
                .filter(|r| r.state != RankState::Gone)
                .map(|r| r.hello.pid)
                .collect();
            if !pids.is_empty() {
                out.push(Action::KillRanks(pids));
            }
        }
        if due(&mut self.timers.drain) && self.mpiexec_status.is_some() {
            self.relays_open = 0;
            self.finish(&mut out);
        }
        if due(&mut self.timers.idle) && matches!(self.phase, Phase::Idle) {
            self.finalize_ranks(None, &mut out);
        }
        out
    }

    fn start_next(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some((conn, req, io)) = self.queue.pop_front() else {
            self.timers.idle = self.idle_timeout.map(|d| now + d);
            return;
        };
        self.timers.idle = None;
        match req {
            Request::Start(start) => {
                self.round += 1;
                for (rconn, r) in self.ranks.iter_mut() {
                    if r.state == RankState::Waiting {
                        r.state = RankState::Running;
                        out.push(Action::ToRank {
                            conn: *rconn,
                            msg: ToRank::Round {
                                first: false,
                                spec: start.round.clone(),
                            },
                            io: Some(io.clone()),
                            stdin: r.hello.rank == 0,
                        });
                    }
                }
                out.push(Action::RelayTo(Some(io.clone())));
                self.phase = Phase::Round(Active {
                    conn,
                    io,
                    spec: None,
                });
            }
            Request::Finalize => self.finalize_ranks(
                Some(Active {
                    conn,
                    io,
                    spec: None,
                }),
                out,
            ),
        }
    }

    fn finalize_ranks(&mut self, client: Option<Active>, out: &mut Vec<Action>) {
        for (rconn, r) in self.ranks.iter_mut() {
            if r.state == RankState::Waiting {
                r.state = RankState::Exiting;
                out.push(Action::ToRank {
                    conn: *rconn,
                    msg: ToRank::Exit,
                    io: client.as_ref().map(|c| c.io.clone()),
                    stdin: r.hello.rank == 0,
                });
            }
        }
        out.push(Action::RelayTo(client.as_ref().map(|c| c.io.clone())));
        out.push(Action::StopListening);
        self.phase = Phase::Finalizing(client);
    }

    fn check_round(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Phase::Round(active) = &self.phase else {
            return;
        };
        let Some(size) = self.size else { return };
        let waiting = self
            .ranks
            .values()
            .filter(|r| r.state == RankState::Waiting)
            .count();
        if waiting < size || self.reason.is_some() {
            return;
        }
        out.push(Action::Reply {
            conn: active.conn,
            msg: ToClient::Done {
                status: Status::Code(0),
                message: None,
            },
        });
        out.push(Action::RelayTo(None));
        self.phase = Phase::Idle;
        self.start_next(now, out);
    }

    fn fail(&mut self, reason: String, out: &mut Vec<Action>) {
        if self.reason.is_none() {
            self.reason = Some(reason);
        }
        let active = match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::Round(a) => Some(a),
            Phase::Finalizing(a) | Phase::Ending(a) => a,
            Phase::Idle | Phase::Empty => None,
            Phase::Over => {
                self.phase = Phase::Over;
                return;
            }
        };
        self.phase = Phase::Ending(active);
        out.push(Action::StopListening);
    }

    /// After a failure, once no rank is still computing, give mpiexec
    /// FAILURE_GRACE to notice before killing it.
    fn check_failed_round(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Ending(_)) || self.timers.kill.is_some() || self.killed {
            return;
        }
        if self.mpiexec_status.is_some() || !self.mpiexec_started {
            return;
        }
        let running = self
            .ranks
            .values()
            .filter(|r| r.state == RankState::Running)
            .count();
        let unseen = self.size.map_or(0, |s| s.saturating_sub(self.ranks.len()));
        if running + unseen == 0 {
            self.timers.kill = Some(now + FAILURE_GRACE);
        }
    }

    fn terminate(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.mpiexec_started || self.mpiexec_status.is_some() {
            self.finish(out);
            return;
        }
        if !self.killed {
            self.killed = true;
            self.timers.kill = None;
            out.push(Action::Signal(Kill::Term));
            self.timers.hard_kill = Some(now + TERM_GRACE);
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        // The socket goes first: once a caller has its answer, a new start
        // must find no trace of this job.
        out.push(Action::StopListening);
        let status = self.mpiexec_status.unwrap_or(Status::Code(1));
        let active = match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::Round(a) => Some(a),
            Phase::Finalizing(a) | Phase::Ending(a) => a,
            Phase::Empty | Phase::Idle | Phase::Over => None,
        };
        if let Some(a) = active {
            // mpiexec's status is the round's, except that a job we had to
            // stop never counts as a success.
            let reported = if status == Status::Code(0) && self.killed {
                Status::Code(1)
            } else {
                status
            };
            let message = (reported != Status::Code(0)).then(|| {
                format!(
                    "{}mpiexec {}; the resident job has ended",
                    self.reason
                        .as_ref()
                        .map(|r| format!("{r}; "))
                        .unwrap_or_default(),
                    describe(status, self.killed),
                )
            });
            out.push(Action::Reply {
                conn: a.conn,
                msg: ToClient::Done {
                    status: reported,
                    message,
                },
            });
        }
        for (conn, _, _) in self.queue.drain(..) {
            out.push(Action::Reply {
                conn,
                msg: ToClient::Retry("the resident job ended".into()),
            });
        }
        out.push(Action::RelayTo(None));
        out.push(Action::Exit);
    }
}

fn describe(status: Status, killed: bool) -> String {
    let how = match status {
        Status::Code(c) => format!("exited with status {c}"),
        Status::Signal(s) => format!("was killed by signal {s}"),
    };
    if killed {
        format!("{how} after ql_server stopped it")
    } else {
        how
    }
}

#[cfg(test)]
mod tests;
