use super::*;
use std::fs::File;

fn io() -> ClientIo {
    let f = || OwnedFd::from(File::open("/dev/null").unwrap());
    ClientIo {
        stdin: f(),
        stdout: f(),
        stderr: f(),
    }
}

fn start(arg: &str) -> Request {
    Request::Start(Start {
        launch: vec![b"mpiexec".to_vec()],
        launch_env: vec![],
        round: RoundSpec {
            argv: vec![b"./a.out".to_vec(), arg.as_bytes().to_vec()],
            env: vec![],
            cwd: b"/".to_vec(),
        },
    })
}

fn hello(rank: i32) -> Hello {
    Hello {
        rank,
        size: 2,
        pid: 1000 + rank,
    }
}

/// Replies in `actions`, as (conn, status, message).
fn replies(actions: &[Action]) -> Vec<(ConnId, ToClient)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Reply { conn, msg } => Some((*conn, msg.clone())),
            _ => None,
        })
        .collect()
}

fn to_ranks(actions: &[Action]) -> Vec<(ConnId, ToRank)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ToRank { conn, msg, .. } => Some((*conn, msg.clone())),
            _ => None,
        })
        .collect()
}

fn done(status: Status) -> ToClient {
    ToClient::Done {
        status,
        message: None,
    }
}

/// Ids: clients 1.., ranks 100 + rank.
fn resident(now: Instant) -> Job {
    let mut job = Job::new(now, None);
    let a = job.request(now, 1, start("r1"), io());
    assert!(matches!(a[0], Action::Launch { .. }));
    for r in 0..2 {
        let a = job.hello(now, 100 + r as u64, hello(r));
        match &to_ranks(&a)[..] {
            [(c, ToRank::Round { first: true, spec })] => {
                assert_eq!(*c, 100 + r as u64);
                assert_eq!(spec.argv[1], b"r1");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(replies(&job.round_end(now, 100)).is_empty());
    assert_eq!(
        replies(&job.round_end(now, 101)),
        vec![(1, done(Status::Code(0)))]
    );
    job
}

#[test]
fn rounds_then_finalize() {
    let now = Instant::now();
    let mut job = resident(now);
    let a = job.request(now, 2, start("r2"), io());
    let sent = to_ranks(&a);
    assert_eq!(sent.len(), 2);
    assert!(matches!(&sent[0].1, ToRank::Round { first: false, spec } if spec.argv[1] == b"r2"));
    assert!(a.iter().any(|x| matches!(
        x,
        Action::ToRank {
            conn: 100,
            stdin: true,
            ..
        }
    )));
    assert!(a.iter().any(|x| matches!(
        x,
        Action::ToRank {
            conn: 101,
            stdin: false,
            ..
        }
    )));
    job.round_end(now, 101);
    assert_eq!(
        replies(&job.round_end(now, 100)),
        vec![(2, done(Status::Code(0)))]
    );
    assert_eq!(job.round(), 2);

    let a = job.request(now, 3, Request::Finalize, io());
    assert_eq!(to_ranks(&a), vec![(100, ToRank::Exit), (101, ToRank::Exit)]);
    assert!(a.iter().any(|x| matches!(x, Action::StopListening)));
    // Ranks exit: not a failure.
    assert!(job
        .closed(now, 100)
        .iter()
        .all(|x| !matches!(x, Action::Signal(_))));
    job.closed(now, 101);
    assert!(job.mpiexec_exited(now, Status::Code(0)).is_empty());
    job.relay_closed();
    let a = job.relay_closed();
    assert_eq!(replies(&a), vec![(3, done(Status::Code(0)))]);
    assert!(matches!(a.last(), Some(Action::Exit)));
    assert!(job.is_over());
}

#[test]
fn requests_wait_their_turn_in_order() {
    let now = Instant::now();
    let mut job = Job::new(now, None);
    job.request(now, 1, start("r1"), io());
    assert!(job.request(now, 2, start("r2"), io()).is_empty());
    assert!(job.request(now, 3, Request::Finalize, io()).is_empty());
    assert!(job.request(now, 4, start("r4"), io()).is_empty());
    job.hello(now, 100, hello(0));
    job.hello(now, 101, hello(1));
    job.round_end(now, 100);
    let a = job.round_end(now, 101);
    assert_eq!(replies(&a), vec![(1, done(Status::Code(0)))]);
    assert_eq!(to_ranks(&a).len(), 2, "round 2 follows at once");
    job.round_end(now, 100);
    let a = job.round_end(now, 101);
    assert_eq!(replies(&a), vec![(2, done(Status::Code(0)))]);
    assert!(to_ranks(&a).iter().all(|(_, m)| *m == ToRank::Exit));
    job.closed(now, 100);
    job.closed(now, 101);
    job.relay_closed();
    job.relay_closed();
    let a = job.mpiexec_exited(now, Status::Code(0));
    let r = replies(&a);
    assert_eq!(r[0], (3, done(Status::Code(0))));
    assert!(matches!(r[1], (4, ToClient::Retry(_))));
}

#[test]
fn crashed_rank_fails_the_round_with_mpiexec_status() {
    let now = Instant::now();
    let mut job = resident(now);
    job.request(now, 2, start("r2"), io());
    job.round_end(now, 101);
    // Rank 0 dies while rank 1 waits: no rank computes any more, so the
    // grace timer starts.
    let a = job.closed(now, 100);
    assert!(a.iter().any(|x| matches!(x, Action::StopListening)));
    assert!(replies(&a).is_empty());
    assert_eq!(job.next_deadline(), Some(now + FAILURE_GRACE));
    // mpiexec notices first.
    job.relay_closed();
    job.relay_closed();
    let a = job.mpiexec_exited(now, Status::Signal(11));
    match &replies(&a)[..] {
        [(
            2,
            ToClient::Done {
                status: Status::Signal(11),
                message: Some(m),
            },
        )] => {
            assert!(m.contains("rank 0 (pid 1000) exited during round 2"), "{m}");
            assert!(m.contains("killed by signal 11"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(job.is_over());
}

#[test]
fn mpiexec_that_does_not_notice_is_stopped_then_killed() {
    let now = Instant::now();
    let mut job = resident(now);
    job.request(now, 2, start("r2"), io());
    job.round_end(now, 101);
    job.closed(now, 100);
    let t1 = now + FAILURE_GRACE;
    let a = job.tick(t1);
    assert!(matches!(a[..], [Action::Signal(Kill::Term)]));
    let a = job.tick(t1 + TERM_GRACE);
    assert!(matches!(a[0], Action::Signal(Kill::Kill)));
    assert!(matches!(&a[1], Action::KillRanks(p) if p == &vec![1001]));
    job.relay_closed();
    job.relay_closed();
    let a = job.mpiexec_exited(t1 + TERM_GRACE, Status::Code(0));
    // Stopped by us: never a success.
    assert!(matches!(
        &replies(&a)[..],
        [(
            2,
            ToClient::Done {
                status: Status::Code(1),
                message: Some(_)
            }
        )]
    ));
}

#[test]
fn caller_going_away_ends_the_job() {
    let now = Instant::now();
    let mut job = resident(now);
    job.request(now, 2, start("r2"), io());
    let a = job.closed(now, 2);
    assert!(a.iter().any(|x| matches!(x, Action::Signal(Kill::Term))));
    assert!(a.iter().any(|x| matches!(x, Action::StopListening)));
    let a = job.request(now, 3, start("r3"), io());
    assert!(matches!(&replies(&a)[..], [(3, ToClient::Retry(_))]));
}

#[test]
fn program_that_ends_by_itself_is_plain_mpiexec() {
    // Linked with libqlmpi but never calls ql_client: ranks exit, mpiexec 0.
    let now = Instant::now();
    let mut job = Job::new(now, None);
    job.request(now, 1, start("r1"), io());
    job.hello(now, 100, hello(0));
    job.hello(now, 101, hello(1));
    job.closed(now, 100);
    job.closed(now, 101);
    job.relay_closed();
    job.relay_closed();
    let a = job.mpiexec_exited(now, Status::Code(0));
    assert_eq!(replies(&a), vec![(1, done(Status::Code(0)))]);
    // And a program that is not linked at all: no rank ever says hello.
    let mut job = Job::new(now, None);
    job.request(now, 1, start("r1"), io());
    job.relay_closed();
    job.relay_closed();
    let a = job.mpiexec_exited(now, Status::Code(3));
    assert!(matches!(
        &replies(&a)[..],
        [(
            1,
            ToClient::Done {
                status: Status::Code(3),
                message: Some(_)
            }
        )]
    ));
}

#[test]
fn output_is_drained_but_not_forever() {
    let now = Instant::now();
    let mut job = resident(now);
    job.closed(now, 100);
    job.closed(now, 101);
    assert!(job.mpiexec_exited(now, Status::Code(0)).is_empty());
    let a = job.tick(now + DRAIN_GRACE);
    assert!(matches!(a.last(), Some(Action::Exit)));
}

#[test]
fn idle_timeout_finalizes() {
    let now = Instant::now();
    let mut job = Job::new(now, Some(Duration::from_secs(60)));
    job.request(now, 1, start("r1"), io());
    job.hello(now, 100, hello(0));
    job.hello(now, 101, hello(1));
    job.round_end(now, 100);
    job.round_end(now, 101);
    assert!(to_ranks(&job.tick(now + Duration::from_secs(59))).is_empty());
    let a = job.tick(now + Duration::from_secs(60));
    assert_eq!(to_ranks(&a), vec![(100, ToRank::Exit), (101, ToRank::Exit)]);
}

#[test]
fn signal_to_server_stops_mpiexec() {
    let now = Instant::now();
    let mut job = resident(now);
    let a = job.interrupt(now, 15);
    assert!(a.iter().any(|x| matches!(x, Action::Signal(Kill::Term))));
    // Without a job, it just leaves.
    let mut job = Job::new(now, None);
    let a = job.interrupt(now, 15);
    assert!(matches!(a.last(), Some(Action::Exit)));
}

#[test]
fn server_without_first_start_gives_up() {
    let now = Instant::now();
    let mut job = Job::new(now, None);
    assert!(job.request(now, 1, Request::Finalize, io()).is_empty());
    let a = job.tick(now + FIRST_START_WAIT);
    assert!(matches!(&replies(&a)[..], [(1, ToClient::Retry(_))]));
    assert!(job.is_over());
}

#[test]
fn inconsistent_ranks_fail() {
    let now = Instant::now();
    let mut job = Job::new(now, None);
    job.request(now, 1, start("r1"), io());
    job.hello(now, 100, hello(0));
    let a = job.hello(now, 101, hello(0));
    assert!(a.iter().any(|x| matches!(
        x,
        Action::ToRank {
            conn: 101,
            msg: ToRank::Exit,
            ..
        }
    )));
    assert!(a.iter().any(|x| matches!(x, Action::StopListening)));
}
