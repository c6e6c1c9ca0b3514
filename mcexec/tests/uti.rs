//! Utility threads on Linux (issue 18, docs/uti.md): `mcexec --enable-uti`
//! runs a thread made by `uti_pthread_create` on a Linux CPU inside mcexec,
//! in the program's address space, while the main thread computes on the
//! LWK; they exchange 100,000 values through a futex-based queue and
//! ping-pong on a futex word (waits and wakes both ways). Without
//! `--enable-uti` the thread is an ordinary LWK thread with a log line;
//! an execve of the main thread ends a utility thread that computes
//! without system calls; `kill -9` of mcexec leaves nothing; placement
//! hints put the thread on a Linux CPU or keep it on the LWK, checked in
//! Linux's /proc; the program's signal handlers run in a utility thread.
//! The programs are built here with
//! Debian's gcc against our `uti.h` and linked to our libuti, on a real
//! `mcreboot -c 1 -m 1G` partition.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{can_run, Partition};

/// Build libuti (same target directory as mcexec), install it under `dir`
/// and compile `uti_queue.c` against it.
fn build_program(dir: &Path) -> PathBuf {
    build(dir, "uti_queue")
}

/// Build libuti and libmpishim (same target directory as mcexec) and
/// install both under `dir/prefix`; returns the prefix.
fn install_libs(dir: &Path) -> PathBuf {
    let lib_dir = common::bin_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut c = Command::new(cargo);
    c.args(["build", "-p", "uti", "-p", "mpi-shim", "--lib", "--manifest-path"]).arg(&manifest);
    if lib_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    }
    if let Some(target) = lib_dir.parent() {
        c.env("CARGO_TARGET_DIR", target);
    }
    assert!(c.status().expect("cargo build -p uti -p mpi-shim").success(), "building libuti and libmpishim failed");
    let prefix = dir.join("prefix");
    for component in ["uti", "mpi-shim"] {
        let st = Command::new("sh")
            .stdout(Stdio::null())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../{component}/install.sh")))
            .arg(&prefix)
            .arg(lib_dir)
            .status()
            .expect("install.sh");
        assert!(st.success(), "{component}/install.sh failed");
    }
    prefix
}

/// As [`build_program`], for `tests/programs/<name>.c`.
fn build(dir: &Path, name: &str) -> PathBuf {
    let prefix = install_libs(dir);
    let exe = dir.join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{name}.c"));
    let lib = prefix.join("lib");
    let st = Command::new("gcc")
        .args(["-O2", "-Wall", "-Werror", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg(format!("-I{}", prefix.join("include").display()))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-luti")
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc uti_queue.c failed");
    exe
}

/// Lines every run prints whatever the CPUs.
fn exchange_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("pingpong") || l.starts_with("received")).collect()
}

/// A private usage table for libuti (not the machine's /dev/shm one).
fn counter_file(dir: &Path) -> String {
    dir.join("uti.cpus").display().to_string()
}

#[test]
fn a_utility_thread_runs_on_linux_and_exchanges_values_with_the_lwk() {
    if !can_run("a_utility_thread_runs_on_linux_and_exchanges_values_with_the_lwk") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = build_program(tmp.path());
    let exe_s = exe.to_str().unwrap();
    let counter = counter_file(tmp.path());

    // Linux's run is the reference for the values and the exit status.
    let linux = Command::new(&exe).env("UTI_COUNTER_FILE", &counter).stdin(Stdio::null()).output().unwrap();
    common::log(&exe, &[], &linux);
    assert_eq!(linux.status.code(), Some(3));
    let linux_out = String::from_utf8_lossy(&linux.stdout).into_owned();
    assert_eq!(exchange_lines(&linux_out), ["pingpong 50", "received 100000 sum 35000350000 joined 42"]);

    let p = Partition::boot("1G", &[]);
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = p.mcexec_command(args);
        c.stdin(Stdio::null()).env("UTI_COUNTER_FILE", &counter);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        common::log(Path::new("mcexec"), args, &out);
        out
    };

    for (args, env) in [
        (&["--enable-uti", exe_s][..], &[][..]),
        (&[exe_s][..], &[("MCEXEC_ENABLE_UTI", "1")][..]),
    ] {
        let out = run(args, env);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(3), "{args:?} {env:?}: {text}");
        assert_eq!(exchange_lines(&text), exchange_lines(&linux_out), "{text}");
        // The utility thread runs on Linux CPU 0, its affinity kept off
        // the partition's CPU 1; the main thread on the LWK's only CPU
        // (the LWK numbers its CPUs from 0: host CPU 1 is LWK CPU 0).
        assert!(text.contains("uti cpu 0 affinity 0-0\n"), "{text}");
        assert!(text.contains("main cpu 0\n"), "{text}");
    }

    // Without --enable-uti: an ordinary LWK thread, said so in kmsg and by
    // libuti; the program works the same.
    let out = run(&[exe_s], &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(exchange_lines(&text), exchange_lines(&linux_out), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without mcexec --enable-uti"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.kmsg().contains("utility thread requested without mcexec --enable-uti: it runs on the LWK"), "{}", p.kmsg());
}

#[test]
fn a_running_utility_thread_ends_with_execve_and_kill_9_leaves_nothing() {
    if !can_run("a_running_utility_thread_ends_with_execve_and_kill_9_leaves_nothing") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = build_program(tmp.path());
    let exe_s = exe.to_str().unwrap();
    let exec = build(tmp.path(), "uti_exec");
    let counter = counter_file(tmp.path());
    let p = Partition::boot("1G", &[]);

    // execve from the main thread while the utility thread computes on
    // Linux without system calls: it is fetched back (SIGURG) and ends.
    let out = p
        .mcexec_command(&["--enable-uti", exec.to_str().unwrap()])
        .env("UTI_COUNTER_FILE", &counter)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    common::log(&exec, &[], &out);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "exec after a utility thread\n");

    // The utility thread spins on Linux CPU 0, the main thread waits.
    let mut c = p
        .mcexec_command(&["--enable-uti", exe_s, "hang"])
        .env("UTI_COUNTER_FILE", &counter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(lines.next().expect("a line").unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["main cpu 0", "uti cpu 0 affinity 0-0"]);
    c.kill().unwrap();
    assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
    // No process or thread of that mcexec is left, and the LWK ended the
    // process.
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "mcexec {pid} is still there");
    let gone = format!("mcexec (pid {pid}) is gone: ending process {pid}");
    assert!(p.wait_kmsg(&gone, Duration::from_secs(5)), "{}", p.kmsg());
    // The partition is still usable, utility threads included.
    let out = p.mcexec_command(&["--enable-uti", exe_s]).env("UTI_COUNTER_FILE", &counter).stdin(Stdio::null()).output().unwrap();
    common::log(Path::new("mcexec"), &["--enable-uti", exe_s], &out);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
}

/// The name (comm) of host task `tid` of process `pid`.
fn task_name(pid: u32, tid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap().trim().to_string()
}

/// State letter, processor and `Cpus_allowed_list` of host task `tid` of
/// process `pid`, from Linux's /proc.
fn task(pid: u32, tid: u32) -> (char, u32, String) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    // Fields from 3 (state); processor is field 39.
    let state = fields[0].chars().next().unwrap();
    let cpu = fields[39 - 3].parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
    (state, cpu, allowed)
}

#[test]
fn placement_hints_put_the_thread_on_linux_or_keep_it_on_the_lwk() {
    if !can_run("placement_hints_put_the_thread_on_linux_or_keep_it_on_the_lwk") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = build(tmp.path(), "uti_place");
    let exe_s = exe.to_str().unwrap();
    let counter = counter_file(tmp.path());
    let p = Partition::boot("1G", &[]);
    // (hints, environment, runs on Linux)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], bool);
    let cases: [Case; 5] = [
        (&["EXCLUSIVE_CPU", "SAME_NUMA_DOMAIN"], &[("UTI_CPU_SET", "0")], true),
        // A split that names the partition's CPU as Linux's: libuti places
        // the thread there, mcexec keeps it on the Linux CPUs.
        (&[], &[("UTI_FWK_CPU_SET", "1"), ("UTI_LWK_CPU_SET", "0")], true),
        // McKernel's PREFER_LWK: the thread stays on the LWK.
        (&["PREFER_LWK"], &[], false),
        // Only the partition's CPU allowed: PREFER_FWK finds no Linux CPU
        // and falls back to the LWK (libuti's log line).
        (&[], &[("UTI_CPU_SET", "1")], false),
        // A uti_pthread_create that fails before cloning withdraws its
        // indication: the next plain pthread_create is an LWK thread.
        (&["FAILED_FIRST"], &[], false),
    ];
    for (hints, env, on_linux) in cases {
        let mut args = vec!["--enable-uti", exe_s];
        args.extend_from_slice(hints);
        let mut c = p.mcexec_command(&args);
        c.env("UTI_COUNTER_FILE", &counter).stdin(Stdio::null()).stdout(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut c = c.spawn().unwrap();
        let pid = c.id();
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut tid = None;
        let mut main = false;
        while tid.is_none() || !main {
            let l = lines.next().expect("a line").unwrap();
            if let Some(t) = l.strip_prefix("tid ") {
                tid = Some(t.parse::<u32>().unwrap());
            } else {
                assert_eq!(l, "main", "{hints:?} {env:?}");
                main = true;
            }
        }
        let tid = tid.unwrap();
        if on_linux {
            // The spinning thread is a running task of mcexec on Linux CPU
            // 0, allowed nowhere else.
            assert_eq!(task(pid, tid), ('R', 0, "0".to_string()), "{hints:?} {env:?}");
            assert!(task_name(pid, tid).starts_with("uti"), "{}", task_name(pid, tid));
        } else {
            // It spins on the LWK; its proxy thread on Linux sleeps.
            let mut t = task(pid, tid);
            for _ in 0..500 {
                if t.0 == 'S' {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                t = task(pid, tid);
            }
            assert_eq!(t.0, 'S', "{hints:?} {env:?}: the thread's host task runs: {t:?}");
            assert!(task_name(pid, tid).starts_with("proxy"), "{}", task_name(pid, tid));
        }
        c.kill().unwrap();
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}

/// One rank's line of `examples/mpi/overlap.c check`.
#[derive(Debug)]
struct OverlapLine {
    arrived: bool,
    tested: bool,
    data_ok: bool,
    provided: i64,
    polls: i64,
    cpus: i64,
}

fn overlap_lines(what: &str, out: &std::process::Output) -> Vec<OverlapLine> {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {:?}\n{text}\n{err}", out.status);
    (0..2)
        .map(|rank| {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("rank {rank}: ")))
                .unwrap_or_else(|| panic!("{what}: no line of rank {rank}: {text}\n{err}"));
            let w: Vec<&str> = line.split_whitespace().collect();
            let field = |name: &str| -> &str {
                let i = w.iter().position(|x| *x == name).unwrap_or_else(|| panic!("{what}: no {name}: {line}"));
                w[i + 1]
            };
            let num = |name: &str| -> i64 { field(name).parse().unwrap_or_else(|_| panic!("{what}: {name}: {line}")) };
            OverlapLine {
                arrived: field("arrived_in_compute") == "yes",
                tested: field("test_after_compute") == "1",
                data_ok: field("data") == "ok",
                provided: num("provided"),
                polls: num("polls"),
                cpus: num("cpus"),
            }
        })
        .collect()
}

/// mpi-shim's asynchronous progress (issue 18, item 3) with Debian's Open
/// MPI and MPICH on the LWK: two ranks (`mcexec --enable-uti`, sharing the
/// partition's CPU: `allow_oversubscribe`) exchange 8 MiB with
/// MPI_Isend/Irecv and then compute without calling MPI until the last
/// word of the message is in their receive buffer (examples/mpi/overlap.c).
/// Without the shim nothing moves during the computation (Open MPI with
/// vader's copy-in/copy-out: every fragment after the first needs the
/// sender's progress engine), so each rank computes for its whole 2 s and
/// sees nothing arrive. With `LD_PRELOAD=libmpishim.so
/// MPISHIM_ASYNC_PROGRESS=1` the message arrives during the computation,
/// driven by the progress thread, which ran on the Linux CPU only (its
/// sched_getcpu, exported by the shim); the receive request is complete at
/// the first MPI_Test after the computation, every word is right, and the
/// jobs end cleanly.
#[test]
fn mpi_shim_progress_thread_on_linux_moves_a_large_message_while_ranks_compute() {
    if !can_run("mpi_shim_progress_thread_on_linux_moves_a_large_message_while_ranks_compute") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = install_libs(tmp.path());
    let shim = prefix.join("lib/libmpishim.so").display().to_string();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mpi/overlap.c");
    let mpicc = |cc: &str| -> Option<String> {
        let exe = tmp.path().join(cc);
        match Command::new(cc).args(["-O2", "-Wall", "-Werror", "-o"]).arg(&exe).arg(&src).status() {
            Ok(st) => assert!(st.success(), "{cc} overlap.c failed"),
            Err(e) => {
                // Skipped only outside CI (scripts/setup-deps.sh installs both MPIs).
                mck_tests::cannot_run("mpi_shim_progress_thread_on_linux_moves_a_large_message_while_ranks_compute", &format!("no {cc}: {e}"));
                return None;
            }
        }
        Some(exe.display().to_string())
    };
    let (Some(ompi), Some(mpich)) = (mpicc("mpicc.openmpi"), mpicc("mpicc.mpich")) else { return };
    let counter = counter_file(tmp.path());
    // The partition on host CPU 0, Linux keeps CPU 1: the LWK numbers its
    // CPU 0 too, so a progress thread left on the LWK would report CPU 0,
    // one on Linux reports 1.
    let p = Partition::boot_cpus("0", "1G", &["-O"]);
    let mcexec = env!("CARGO_BIN_EXE_mcexec");
    let run = |launcher: &str, args: &[&str]| {
        let out = p
            .command(Path::new(launcher))
            .args(args)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("UTI_COUNTER_FILE", &counter)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        common::log(Path::new(launcher), args, &out);
        out
    };
    let ompi_job = |env: &[&str], limit: &str| {
        let mut a = vec!["-n", "2", "--mca", "btl_vader_single_copy_mechanism", "none"];
        for e in env {
            a.extend(["-x", e]);
        }
        a.extend([mcexec, "--enable-uti", &ompi, "check", "8", limit]);
        run("mpirun.openmpi", &a)
    };
    let shim_env = [
        format!("LD_PRELOAD={shim}"),
        "MPISHIM_ASYNC_PROGRESS=1".to_string(),
        "MPISHIM_VERBOSE=1".to_string(),
    ];
    let shim_env: Vec<&str> = shim_env.iter().map(String::as_str).collect();

    // Without the shim: nothing arrives while the ranks compute.
    for l in overlap_lines("Open MPI without the shim", &ompi_job(&[], "2")) {
        assert!(!l.arrived && l.data_ok && l.polls == -1, "{l:?}");
    }

    let check = |what: &str, out: &std::process::Output, mpi: &str, provided: i64| {
        for l in overlap_lines(what, out) {
            assert!(l.arrived && l.tested && l.data_ok, "{what}: {l:?}");
            assert_eq!(l.provided, provided, "{what}: {l:?}");
            // Progress thread polls, seen on host CPU 1 only (bit 1): the
            // Linux CPU.
            assert!(l.polls > 0 && l.cpus == 2, "{what}: {l:?}");
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let started = format!("mpi-shim: asynchronous progress thread started (UTI, {mpi}, MPI_THREAD_MULTIPLE)");
        assert_eq!(err.matches(&started).count(), 2, "{what}: {err}");
        assert_eq!(err.matches("ran on CPUs 1\n").count(), 2, "{what}: {err}");
    };
    // With it: MPI_Init becomes MPI_THREAD_MULTIPLE, the message arrives
    // during the computation.
    check("Open MPI with the shim", &ompi_job(&shim_env, "120"), "Open MPI", -1);

    // MPICH (ch4:ucx), the application asking for MPI_THREAD_FUNNELED:
    // provided is what the library gives, MPI_THREAD_MULTIPLE (3).
    let mut a = vec!["-n", "2"];
    for e in &shim_env {
        let (k, v) = e.split_once('=').unwrap();
        a.extend(["-genv", k, v]);
    }
    a.extend([mcexec, "--enable-uti", &mpich, "check", "8", "120", "init_thread"]);
    check("MPICH with the shim", &run("mpiexec.mpich", &a), "MPICH", 3);
}

/// mcexec's virtual size (kB) and number of tasks, from Linux's /proc.
fn mcexec_size_and_tasks(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    (kb, std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count())
}

/// An ended utility thread leaves nothing in mcexec (docs/uti.md): its
/// host thread returns from the program to its own stack and ends as a
/// Rust thread, its alternate signal stack is freed. 2 threads, then 10
/// more, one after the other: mcexec's virtual size does not grow (it grew
/// by about 0.8 MiB per thread before: stack, alternate stack), and no task
/// is left.
#[test]
fn ended_utility_threads_leave_no_memory_in_mcexec() {
    if !can_run("ended_utility_threads_leave_no_memory_in_mcexec") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = build(tmp.path(), "uti_many");
    let counter = counter_file(tmp.path());
    let p = Partition::boot("1G", &[]);
    let mut c = p
        .mcexec_command(&["--enable-uti", exe.to_str().unwrap(), "12"])
        .env("UTI_COUNTER_FILE", &counter)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id();
    let mut stdin = c.stdin.take().unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().expect("a line").unwrap(), "checkpoint");
    let (size2, tasks2) = mcexec_size_and_tasks(pid);
    use std::io::Write;
    stdin.write_all(b"go\n").unwrap();
    assert_eq!(lines.next().expect("a line").unwrap(), "ended 12");
    let (size12, tasks12) = mcexec_size_and_tasks(pid);
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let st = c.wait().unwrap();
    assert!(st.success(), "{st:?}");
    eprintln!("mcexec: {size2} kB, {tasks2} tasks after 2 utility threads; {size12} kB, {tasks12} tasks after 12");
    assert_eq!(tasks12, tasks2, "tasks left by ended utility threads");
    // 10 threads leaking 0.8 MiB each would be 8 MiB; allow 1 MiB of
    // unrelated growth (malloc arenas, mirror bookkeeping).
    assert!(size12 <= size2 + 1024, "mcexec grew from {size2} kB to {size12} kB over 10 utility threads");
}

/// The lines of `uti_signals` that say what the handlers saw (the same
/// on Linux and with `--enable-uti`).
const SIGNAL_LINES: [&str; 10] = [
    "main tid differs 1",
    "kill: tid ok code SI_TKILL mask ok",
    "queue: tid ok code SI_QUEUE value 42",
    "blocked pending yes, at unblock 1",
    "mask after handlers: usr1 0 usr2 0 hup 0",
    "usr2: tid ok altstack yes",
    "hup: nodefer 1 reset 1",
    "sigsuspend: -1 EINTR handler 1 mask back 1",
    "main uc_stack: handler 1 disabled 1",
    "uti uc_stack: handler 1 disabled 1",
];

/// Signal handlers run in a utility thread (docs/uti.md): thread-directed
/// signals from the main LWK thread (pthread_kill, pthread_sigqueue) run
/// the program's SA_SIGINFO handler on the utility thread (its gettid,
/// si_code, si_value, the handler's mask and its restoration); a blocked
/// signal stays pending and runs at the unblock, on the thread's
/// sigaltstack; SA_RESETHAND | SA_NODEFER; a read() of a pipe on Linux is
/// interrupted with EINTR; a signal sent to the process while the main
/// thread blocks it runs on the utility thread; sigsuspend in the utility
/// thread returns EINTR after the handler with the old mask back; a
/// handler's change of its frame's uc_stack takes effect at rt_sigreturn
/// (on the LWK and in the utility thread); a caught SIGSEGV runs its
/// handler there (siglongjmp back). An uncaught SIGSEGV of the utility thread kills the
/// process with SIGSEGV, and the partition runs the next program.
#[test]
fn signal_handlers_run_in_a_utility_thread() {
    if !can_run("signal_handlers_run_in_a_utility_thread") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = build(tmp.path(), "uti_signals");
    let exe_s = exe.to_str().unwrap();
    let counter = counter_file(tmp.path());
    let lines = |out: &std::process::Output| -> String { String::from_utf8_lossy(&out.stdout).into_owned() };

    // Linux's run is the reference.
    let linux = Command::new(&exe).env("UTI_COUNTER_FILE", &counter).stdin(Stdio::null()).output().unwrap();
    common::log(&exe, &[], &linux);
    let text = lines(&linux);
    assert_eq!(linux.status.code(), Some(0), "{text}");
    for l in SIGNAL_LINES.iter().chain(&["read: -1 EINTR", "caught segv: addr 16 SEGV_MAPERR", "process-directed: tid ok", "done 7"]) {
        assert!(text.lines().any(|x| x == *l), "Linux: no {l:?} in {text}");
    }

    let p = Partition::boot("1G", &[]);
    let run = |args: &[&str]| {
        let out = p
            .mcexec_command(args)
            .stdin(Stdio::null())
            .env("UTI_COUNTER_FILE", &counter)
            .output()
            .unwrap();
        common::log(Path::new("mcexec"), args, &out);
        out
    };
    let out = run(&["--enable-uti", exe_s]);
    let text = lines(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // On Linux CPU 0, kept off the partition's CPU 1.
    assert!(text.contains("uti cpu 0 affinity 0-0\n"), "{text}");
    for l in SIGNAL_LINES.iter().chain(&["read: -1 EINTR", "caught segv: addr 16 SEGV_MAPERR", "process-directed: tid ok", "done 7"]) {
        assert!(text.lines().any(|x| x == *l), "no {l:?} in {text}");
    }

    // A bad access of the utility thread: the process dies of SIGSEGV
    // (a shell's 139), with the kernel's segfault line.
    let out = run(&["--enable-uti", exe_s, "segv"]);
    let text = lines(&out);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{:?}: {text}", out.status);
    assert!(text.contains("caught segv: addr 16 SEGV_MAPERR\nsegv now\n"), "{text}");
    assert!(p.kmsg().contains("segfault at 10 in utility thread"), "{}", p.kmsg());

    // The partition is fine: the next program runs.
    let out = run(&["--enable-uti", exe_s]);
    let text = lines(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("done 7\n"), "{text}");
}
