//! Quick launch end to end, with Debian's Open MPI and MPICH: the guide's
//! program and job script, rounds with new arguments, environment,
//! directory and stdin, failures (crashing rank, killed caller, killed
//! server, stale socket, nothing to finalize) and the private socket
//! directory. Every job a test starts is ended by the test (common::Session).

mod common;

use common::{alive, bin, examples_dir, run, wait_gone, Mpi, Session, MPICH, OPENMPI};
use std::time::Duration;

/// Three rounds of the probe with new arguments, environment and directory
/// each time, stdin to rank 0, stderr passed through; finalize's caller gets
/// the output after QL_EXIT; everything is gone afterwards.
fn three_rounds(mpi: &'static Mpi) {
    let Some(s) = Session::new(mpi) else { return };
    s.probe("probe");
    std::fs::create_dir(s.path().join("sub")).unwrap();

    let o = s.start(&[
        "-n",
        "2",
        "-machinefile",
        "hosts",
        mpi.env_opt,
        "QL_PROBE=one",
        "./probe",
        "r1",
    ]);
    o.assert_ok();
    assert_eq!(o.count("args: r1 | cwd "), 2, "{o:#?}");
    assert_eq!(o.count("QL_PROBE=one"), 2, "{o:#?}");
    // Programs the ranks start are not part of the job.
    assert_eq!(o.count("QL_SOCKET unset"), 2, "{o:#?}");
    assert_eq!(s.sockets().len(), 1);
    let job = s.jobs().pop().expect("pid file");
    assert_eq!(job.ranks.len(), 2, "{job:?}");

    // Round 2: other arguments, variable changed by the caller's own
    // environment, stdin for rank 0, stderr.
    let mut c = s.command(bin("ql_mpiexec_start"));
    c.args(["-n", "2", "-machinefile", "hosts", "./probe", "stdin", "x"])
        .env("QL_PROBE", "two");
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(b"line for rank zero\n").unwrap();
    }
    let o = common::run_spawned(child);
    o.assert_ok();
    assert_eq!(o.count("args: stdin x | "), 2, "{o:#?}");
    assert_eq!(o.count("QL_PROBE=two"), 2, "{o:#?}");
    assert_eq!(o.count("stdin: line for rank zero"), 1, "{o:#?}");

    // Round 3 from another directory (relative host file and program path
    // name the same job), with stderr.
    let mut c = s.command(bin("ql_mpiexec_start"));
    c.args(["-np", "2", "-machinefile", "../hosts", "../probe", "stderr"])
        .current_dir(s.path().join("sub"));
    let o = run(c);
    o.assert_ok();
    assert_eq!(
        o.count(&format!(
            "args: stderr | cwd {}/sub | QL_PROBE=(unset)",
            s.path().display()
        )),
        2,
        "{o:#?}"
    );
    assert_eq!(o.stderr.matches("stderr of rank").count(), 2, "{o:#?}");
    assert_eq!(
        s.jobs().pop().unwrap().server,
        job.server,
        "same resident job"
    );

    // Round 4 sets up a message printed after QL_EXIT.
    s.start(&[
        "-n",
        "2",
        "-machinefile",
        "hosts",
        "./probe",
        "finalize-msg",
    ])
    .assert_ok();
    let o = s.finalize(&["-machinefile", "hosts", "./probe"]);
    o.assert_ok();
    assert_eq!(o.count("bye from rank 0"), 1, "{o:#?}");
    assert!(
        wait_gone(&job.all(), Duration::from_secs(10)),
        "processes left: {job:?}"
    );
    assert!(s.sockets().is_empty());
}

#[test]
fn c_three_rounds_openmpi() {
    three_rounds(&OPENMPI);
}

#[test]
fn c_three_rounds_mpich() {
    three_rounds(&MPICH);
}

/// The guide's Fortran program: each round prints its new argument.
fn fortran_rounds(mpi: &'static Mpi) {
    let Some(s) = Session::new(mpi) else { return };
    s.compile_f90(&examples_dir().join("ql_example.f90"), "p1.out");
    for r in ["f1", "f2", "f3"] {
        let o = s.start(&["-n", "2", "-machinefile", "hosts", "p1.out", r]);
        o.assert_ok();
        assert_eq!(o.count(&format!(" arg {r} sum 3")), 2, "{o:#?}");
    }
    let job = s.jobs().pop().unwrap();
    s.finalize(&["-machinefile", "hosts", "p1.out"]).assert_ok();
    assert!(wait_gone(&job.all(), Duration::from_secs(10)));
}

#[test]
fn fortran_three_rounds_openmpi() {
    fortran_rounds(&OPENMPI);
}

#[test]
fn fortran_three_rounds_mpich() {
    fortran_rounds(&MPICH);
}

/// examples/ql/job.sh with the guide's program in C or Fortran as p1.out and
/// p2.out: two p1 jobs in parallel and one p2 job, 3 rounds, finalized.
fn guide_job_script(mpi: &'static Mpi, fortran: bool) {
    let Some(s) = Session::new(mpi) else { return };
    for p in ["p1.out", "p2.out"] {
        if fortran {
            s.compile_f90(&examples_dir().join("ql_example.f90"), p);
        } else {
            s.compile_c(&examples_dir().join("ql_example.c"), p);
        }
    }
    let o = run(s.command(examples_dir().join("job.sh")));
    o.assert_ok();
    for i in 1..=3 {
        // Two ensemble jobs of two ranks, then the assimilation job.
        assert_eq!(
            o.count(&format!(" arg a1_{i} sum 3")),
            4,
            "round {i}: {o:#?}"
        );
        assert_eq!(
            o.count(&format!(" arg a2_{i} sum 3")),
            2,
            "round {i}: {o:#?}"
        );
    }
    assert!(o.stderr.is_empty(), "{o:#?}");
    assert!(s.sockets().is_empty(), "jobs left: {:?}", s.sockets());
}

#[test]
fn guide_job_script_c_openmpi() {
    guide_job_script(&OPENMPI, false);
}

#[test]
fn guide_job_script_c_mpich() {
    guide_job_script(&MPICH, false);
}

#[test]
fn guide_job_script_fortran_openmpi() {
    guide_job_script(&OPENMPI, true);
}

#[test]
fn guide_job_script_fortran_mpich() {
    guide_job_script(&MPICH, true);
}

/// A rank that crashes fails its round with mpiexec's status and ends the
/// job; a rank that exits with a status gives that status; the next start
/// launches a fresh job.
fn crash(mpi: &'static Mpi) {
    let Some(s) = Session::new(mpi) else { return };
    s.probe("probe");
    s.start(&["-n", "2", "./probe", "r1"]).assert_ok();
    let job = s.jobs().pop().unwrap();
    let o = s.start(&["-n", "2", "./probe", "crash"]);
    assert_ne!(o.code, Some(0), "{o:#?}");
    assert!(o.stderr.contains("ql_mpiexec_start: rank "), "{o:#?}");
    assert!(o.stderr.contains("exited during round 2"), "{o:#?}");
    assert!(
        wait_gone(&job.all(), Duration::from_secs(15)),
        "left: {job:?}"
    );
    assert!(s.sockets().is_empty());

    let o = s.start(&["-n", "2", "./probe", "fresh"]);
    o.assert_ok();
    assert_eq!(o.count("args: fresh"), 2);
    let fresh = s.jobs().pop().unwrap();
    assert_ne!(fresh.server, job.server);
    let o = s.start(&["-n", "2", "./probe", "exit3"]);
    assert_eq!(o.code, Some(3), "{o:#?}");
    // mpiexec may stop the other rank before the server sees rank 0 go.
    assert!(o.stderr.contains("exited during round 2"), "{o:#?}");
    assert!(wait_gone(&fresh.all(), Duration::from_secs(15)));
}

#[test]
fn crashed_rank_fails_round_and_ends_job_openmpi() {
    crash(&OPENMPI);
}

#[test]
fn crashed_rank_fails_round_and_ends_job_mpich() {
    crash(&MPICH);
}

#[test]
fn two_programs_get_two_servers() {
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    s.probe("p1.out");
    std::fs::copy(s.path().join("p1.out"), s.path().join("p2.out")).unwrap();
    s.start(&["-n", "2", "-f", "hosts", "./p1.out", "a"])
        .assert_ok();
    s.start(&["-n", "2", "-f", "hosts", "./p2.out", "b"])
        .assert_ok();
    // Same program, other process count or host file: other jobs too.
    s.start(&["-n", "1", "-f", "hosts", "./p1.out", "c"])
        .assert_ok();
    s.start(&["-n", "2", "-f", "hosts_a", "./p1.out", "d"])
        .assert_ok();
    let socks = s.sockets();
    assert_eq!(socks.len(), 4, "{socks:?}");
    let jobs = s.jobs();
    let mut servers: Vec<i32> = jobs.iter().filter_map(|j| j.server).collect();
    servers.sort();
    servers.dedup();
    assert_eq!(servers.len(), 4);
    // Rounds go to the right job.
    let o = s.start(&["-n", "2", "-f", "hosts", "./p2.out", "b2"]);
    assert_eq!(o.count("args: b2"), 2, "{o:#?}");
    let o = s.start(&["-n", "2", "-f", "hosts", "./p1.out", "a2"]);
    assert_eq!(o.count("args: a2"), 2, "{o:#?}");
    // Finalize without -n ends every count of p1.out with that host file.
    s.finalize(&["-f", "hosts", "./p1.out"]).assert_ok();
    assert_eq!(s.sockets().len(), 2, "{:?}", s.sockets());
    s.finalize(&["-f", "hosts", "./p2.out"]).assert_ok();
    s.finalize(&["-n", "2", "-f", "hosts_a", "./p1.out"])
        .assert_ok();
    assert!(s.sockets().is_empty());
    let all: Vec<i32> = jobs.iter().flat_map(|j| j.all()).collect();
    assert!(wait_gone(&all, Duration::from_secs(10)));
}

#[test]
fn finalize_with_nothing_resident_fails() {
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    s.probe("probe");
    let o = s.finalize(&["-n", "2", "./probe"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(
        o.stderr.contains("no resident quick-launch job for"),
        "{o:#?}"
    );
    s.start(&["-n", "2", "./probe", "x"]).assert_ok();
    s.finalize(&["./probe"]).assert_ok();
    let o = s.finalize(&["./probe"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(o.stderr.contains("any process count"), "{o:#?}");
}

#[test]
fn stale_socket_is_replaced() {
    let Some(s) = Session::new(&OPENMPI) else {
        return;
    };
    s.probe("probe");
    // A socket nobody listens on, where the job's socket belongs.
    let inv =
        qlmpi::options::Invocation::parse(["-n", "2", "./probe"].map(std::ffi::OsString::from))
            .unwrap();
    let name = qlmpi::key::JobKey::new(&inv, s.path(), false)
        .unwrap()
        .name();
    let dir = qlmpi::sockdir::SocketDir::open(&s.sock, true)
        .unwrap()
        .unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.socket(&name)).unwrap());
    assert_eq!(s.sockets(), vec![name.clone()]);
    let o = s.start(&["-n", "2", "./probe", "after-stale"]);
    o.assert_ok();
    assert_eq!(o.count("args: after-stale"), 2, "{o:#?}");

    // A server killed outright leaves its socket behind; its job ends (the
    // ranks see the server go, mpiexec gets SIGTERM) and the next start
    // replaces the socket.
    let job = s.jobs().pop().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(job.server.unwrap()),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_gone(&job.all(), Duration::from_secs(15)),
        "left: {job:?}"
    );
    assert_eq!(
        s.sockets(),
        vec![name.clone()],
        "the dead server's socket stays"
    );
    let o = s.start(&["-n", "2", "./probe", "after-kill"]);
    o.assert_ok();
    assert_eq!(o.count("args: after-kill"), 2, "{o:#?}");
    assert_ne!(s.jobs().pop().unwrap().server, job.server);
    s.finalize(&["./probe"]).assert_ok();
}

#[test]
fn killed_caller_ends_the_job() {
    let Some(s) = Session::new(&OPENMPI) else {
        return;
    };
    s.probe("probe");
    s.start(&["-n", "2", "./probe", "r1"]).assert_ok();
    let job = s.jobs().pop().unwrap();
    let mut c = s.command(bin("ql_mpiexec_start"));
    c.args(["-n", "2", "./probe", "sleep", "20000"]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_gone(&job.all(), Duration::from_secs(15)),
        "left: {job:?}"
    );
    assert!(s.sockets().is_empty());
}

#[test]
fn outside_quick_launch_the_program_runs_once() {
    let Some(s) = Session::new(&OPENMPI) else {
        return;
    };
    s.compile_c(&examples_dir().join("ql_example.c"), "p1.out");
    let mut c = s.command("mpiexec.openmpi");
    c.args(["-n", "2", "./p1.out", "plain"]);
    let o = run(c);
    o.assert_ok();
    assert_eq!(o.count("arg plain sum 3"), 2, "{o:#?}");
    // As a singleton, too.
    let o = run(s.command(s.path().join("p1.out")));
    o.assert_ok();
    assert_eq!(o.count("rank 0/1 arg (none) sum 1"), 1, "{o:#?}");
    assert!(s.sockets().is_empty());
}

#[test]
fn rank_that_cannot_join_fails_the_job() {
    // As a rank on another host would: QL_SOCKET names no reachable server.
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    s.probe("probe");
    let mut c = s.command("mpiexec.mpich");
    c.args(["-n", "2", "./probe", "x"])
        .env("QL_SOCKET", s.path().join("nothing.sock"));
    let o = run(c);
    assert_ne!(o.code, Some(0), "{o:#?}");
    assert!(
        o.stderr.contains("cannot reach the quick-launch server at"),
        "{o:#?}"
    );
    assert!(
        o.stderr
            .contains("ranks must run on the host of ql_mpiexec_start"),
        "{o:#?}"
    );
}

#[test]
fn program_without_libqlmpi_is_plain_mpiexec() {
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    let o = s.start(&["-n", "2", "/bin/echo", "hello"]);
    o.assert_ok();
    assert_eq!(o.count("hello"), 2, "{o:#?}");
    let o = s.start(&["-n", "2", "/bin/false"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(s.sockets().is_empty());
    // mpiexec itself missing.
    let mut c = s.command(bin("ql_mpiexec_start"));
    c.args(["-n", "2", "/bin/true"])
        .env("QL_MPIEXEC", "/nonexistent/mpiexec");
    let o = run(c);
    assert_eq!(o.code, Some(127), "{o:#?}");
    assert!(
        o.stderr.contains("cannot run '/nonexistent/mpiexec'"),
        "{o:#?}"
    );
    assert!(s.sockets().is_empty());
}

#[test]
fn mcexec_is_inserted_when_asked() {
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    s.probe("probe");
    // A stand-in for mcexec (the real one needs a booted LWK): logs its
    // command line and runs the program on Linux.
    let log = s.path().join("mcexec.log");
    let body = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\nwhile [ $# -gt 0 ]; do case \"$1\" in -n) shift 2;; --) shift; break;; -*) shift;; *) break;; esac; done\nexec \"$@\"\n",
        log.display()
    );
    std::fs::create_dir(s.path().join("mck")).unwrap();
    let mcexec = s.script("mck/mcexec", &body);
    // As the guide writes it: mpiexec -n 2 mcexec -n 2 ./a.out
    let o = s.start(&[
        "-n",
        "2",
        mcexec.to_str().unwrap(),
        "-n",
        "2",
        "./probe",
        "m1",
    ]);
    o.assert_ok();
    assert_eq!(o.count("args: m1"), 2, "{o:#?}");
    let o = s.start(&[
        "-n",
        "2",
        mcexec.to_str().unwrap(),
        "-n",
        "2",
        "./probe",
        "m2",
    ]);
    assert_eq!(o.count("args: m2"), 2, "{o:#?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.lines().filter(|l| *l == "-n 2 ./probe m1").count(),
        2,
        "{logged}"
    );
    // The plain program is another job.
    s.start(&["-n", "2", "./probe", "plain"]).assert_ok();
    assert_eq!(s.sockets().len(), 2);
    s.finalize(&["./probe"]).assert_ok();
    s.finalize(&["-n", "2", mcexec.to_str().unwrap(), "./probe"])
        .assert_ok();
    // Or through QL_MCEXEC.
    let mut c = s.command(bin("ql_mpiexec_start"));
    c.args(["-n", "2", "./probe", "m3"])
        .env("QL_MCEXEC", &mcexec);
    let o = run(c);
    o.assert_ok();
    assert_eq!(o.count("args: m3"), 2, "{o:#?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.lines().filter(|l| *l == "./probe m3").count(),
        2,
        "{logged}"
    );
    let mut c = s.command(bin("ql_mpiexec_finalize"));
    c.args(["./probe"]).env("QL_MCEXEC", &mcexec);
    run(c).assert_ok();
    assert!(s.sockets().is_empty());
}

#[test]
fn bad_command_lines_fail_clearly() {
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    let cases: &[(&[&str], &str)] = &[
        (&["-frob", "./a.out"], "unknown mpiexec option '-frob'"),
        (&["-n", "2"], "no program given"),
        (&["-n", "zero", "./a.out"], "-n/-np value 'zero'"),
        (
            &["-machinefile", "./missing", "./a.out"],
            "host file ./missing:",
        ),
        (
            &["-n", "1", "./a", ":", "-n", "1", "./b"],
            "':' (several programs",
        ),
    ];
    for (args, msg) in cases {
        let o = s.start(args);
        assert_eq!(o.code, Some(1), "{args:?}: {o:#?}");
        assert!(o.stderr.contains(msg), "{args:?}: {o:#?}");
    }
    let mut c = s.command(bin("ql_mpiexec_start"));
    c.args(["-n", "1", "/bin/true"]).env("QL_MPIEXEC", " ");
    let o = run(c);
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("QL_MPIEXEC is set but empty"), "{o:#?}");
    let o = s.start(&["--help"]);
    assert_eq!(o.code, Some(0));
    assert!(o.stdout.contains("usage: ql_mpiexec_start"));
    assert!(s.sockets().is_empty());
}

#[test]
fn socket_directory_is_private() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    s.start(&["-n", "1", "/bin/true"]).assert_ok();
    assert_eq!(std::fs::metadata(&s.sock).unwrap().mode() & 0o777, 0o700);
    // A directory others can enter is refused, and nothing is started.
    std::fs::set_permissions(&s.sock, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = s.start(&["-n", "1", "/bin/true"]);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(o.stderr.contains("has mode 0755, expected 0700"), "{o:#?}");
    std::fs::set_permissions(&s.sock, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Another user cannot use this user's directory (the work directory is
    // made reachable, so the refusal is about the socket directory itself).
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if !nix::unistd::getuid().is_root() {
        mck_tests::cannot_run("socket_directory_is_private (other user part)", "needs root to run as another user");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").ok().flatten();
    let Some(nobody) = nobody else {
        mck_tests::cannot_run("socket_directory_is_private (other user part)", "no user 'nobody'");
        return;
    };
    let exe = bin("ql_mpiexec_start");
    if !exe.ancestors().skip(1).all(|d| {
        std::fs::metadata(d)
            .map(|m| m.mode() & 0o001 != 0)
            .unwrap_or(false)
    }) {
        eprintln!(
            "SKIP (other user part): {} is not reachable by other users",
            exe.display()
        );
        return;
    }
    let mut c = s.command(&exe);
    c.args(["-n", "1", "/bin/true"]);
    std::os::unix::process::CommandExt::uid(&mut c, nobody.uid.as_raw());
    std::os::unix::process::CommandExt::gid(&mut c, nobody.gid.as_raw());
    c.current_dir("/");
    let o = run(c);
    assert_eq!(o.code, Some(1), "{o:#?}");
    assert!(
        o.stderr
            .contains(&format!("is owned by uid 0, expected {}", nobody.uid)),
        "{o:#?}"
    );
}

#[test]
fn requests_for_a_busy_job_wait_their_turn() {
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    s.probe("probe");
    s.start(&["-n", "2", "./probe", "r1"]).assert_ok();
    let spawn = |args: &[&str]| {
        let mut c = s.command(bin(args[0]));
        c.args(&args[1..]);
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let long = spawn(&["ql_mpiexec_start", "-n", "2", "./probe", "sleep", "1500"]);
    std::thread::sleep(Duration::from_millis(300));
    let next = spawn(&["ql_mpiexec_start", "-n", "2", "./probe", "next"]);
    std::thread::sleep(Duration::from_millis(100));
    let fin = spawn(&["ql_mpiexec_finalize", "./probe"]);
    let (long, next, fin) = (
        common::run_spawned(long),
        common::run_spawned(next),
        common::run_spawned(fin),
    );
    long.assert_ok();
    next.assert_ok();
    fin.assert_ok();
    assert_eq!(long.count("args: sleep 1500"), 2, "{long:#?}");
    assert_eq!(next.count("args: next"), 2, "{next:#?}");
    assert!(s.sockets().is_empty());
}

#[test]
fn idle_job_finalizes_itself_after_the_timeout() {
    let Some(s) = Session::new(&MPICH) else {
        return;
    };
    s.probe("probe");
    let mut c = s.command(bin("ql_mpiexec_start"));
    c.args(["-n", "2", "./probe", "r1"])
        .env("QL_IDLE_TIMEOUT", "1");
    run(c).assert_ok();
    let job = s.jobs().pop().unwrap();
    assert!(
        wait_gone(&job.all(), Duration::from_secs(10)),
        "left: {job:?}"
    );
    assert!(s.sockets().is_empty());
    let mut c = s.command(bin("ql_mpiexec_start"));
    c.args(["-n", "2", "./probe", "r1"])
        .env("QL_IDLE_TIMEOUT", "soon");
    let o = run(c);
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr
            .contains("QL_IDLE_TIMEOUT='soon' is not a positive number of seconds"),
        "{o:#?}"
    );
}

#[test]
fn processes_of_a_session_are_accounted_for() {
    // The pid file lists what the guard ends; check it names live processes
    // of the job while resident.
    let Some(s) = Session::new(&OPENMPI) else {
        return;
    };
    s.probe("probe");
    s.start(&["-n", "2", "./probe", "x"]).assert_ok();
    let job = s.jobs().pop().unwrap();
    assert!(job.all().iter().all(|p| alive(*p)), "{job:?}");
    assert!(job.mpiexec.is_some() && job.server.is_some());
    s.cleanup();
    assert!(job.all().iter().all(|p| !alive(*p)), "{job:?}");
    assert!(s.sockets().is_empty());
}
