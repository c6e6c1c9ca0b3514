//! examples/uti-mpi-progress with Debian's Open MPI: two ranks, each with a
//! progress thread created by `uti_pthread_create(SAME_NUMA_DOMAIN |
//! EXCLUSIVE_CPU)`. Checks that the transfer completed, that each progress
//! thread ran on the single CPU UTI chose for it, away from its rank's
//! compute CPU, and that the two ranks' progress threads got different
//! CPUs (the node-wide usage count).

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use uti::CpuSet;

fn found(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

#[derive(Debug)]
struct Rank {
    rank: usize,
    compute_cpu: usize,
    progress_cpu: usize,
    affinity: CpuSet,
    computed: Option<CpuSet>,
    ok: bool,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn parse(stdout: &str) -> Vec<Rank> {
    stdout
        .lines()
        .filter(|l| l.starts_with("rank "))
        .map(|l| Rank {
            rank: l.split_whitespace().nth(1).unwrap().parse().unwrap(),
            compute_cpu: field(l, "compute_cpu").parse().unwrap(),
            progress_cpu: field(l, "progress_cpu").parse().unwrap(),
            affinity: CpuSet::parse(field(l, "progress_affinity")).unwrap(),
            computed: match field(l, "progress_computed") {
                "none" => None,
                s => Some(CpuSet::parse(s).unwrap()),
            },
            ok: l.split_whitespace().any(|w| w == "ok"),
        })
        .collect()
}

/// Runs mpiexec in its own process group; on timeout the whole group (all
/// processes this test started) is terminated.
fn run_mpiexec(bin: &Path, counter: &Path, timeout: Duration) -> (bool, String, String) {
    let mut cmd = common::clean_command(Path::new("mpiexec.openmpi"));
    cmd.args(["--oversubscribe", "-n", "2", "--bind-to", "none"])
        // Shared memory between the ranks, out-of-band traffic on loopback.
        .args([
            "--mca",
            "btl",
            "self,vader",
            "--mca",
            "btl_vader_single_copy_mechanism",
            "none",
        ])
        .args(["--mca", "oob_tcp_if_include", "lo"])
        .args(["-x", "UTI_COUNTER_FILE"])
        .arg(bin)
        .env("UTI_COUNTER_FILE", counter)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Shared-memory segments in the test's temporary directory, not /dev/shm.
        .env("OMPI_MCA_btl_vader_backing_directory", counter.parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().expect("starting mpiexec.openmpi");
    let pgid = child.id() as i32;
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > timeout {
            // SAFETY: signals only the process group of the mpiexec we started.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(2));
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let out = child.wait_with_output().unwrap();
            let (o, e) = common::texts(&out);
            panic!("mpiexec timed out after {timeout:?}\n{o}\n{e}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let (o, e) = common::texts(&out);
    (out.status.success(), o, e)
}

#[test]
fn progress_threads_of_two_ranks_get_their_own_cpus() {
    if !found("mpicc.openmpi") || !found("mpiexec.openmpi") {
        mck_tests::cannot_run(
            "progress_threads_of_two_ranks_get_their_own_cpus",
            "Open MPI (mpicc.openmpi, mpiexec.openmpi from openmpi-bin/libopenmpi-dev) is not installed",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("progress");
    let src = common::crate_dir().join("../examples/uti-mpi-progress/progress.c");
    common::compile("mpicc.openmpi", &[&src], &bin, &[]);

    let (ok, stdout, stderr) =
        run_mpiexec(&bin, &dir.path().join("counter"), Duration::from_secs(120));
    assert!(ok, "mpiexec failed:\n{stdout}\n{stderr}");
    let ranks = parse(&stdout);
    assert_eq!(
        ranks.iter().map(|r| r.rank).collect::<Vec<_>>(),
        vec![0, 1],
        "{stdout}"
    );

    let online = CpuSet::parse(
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap()
            .trim(),
    )
    .unwrap();
    for r in &ranks {
        assert!(r.ok, "rank {} received corrupt data: {stdout}", r.rank);
        assert_eq!(r.affinity.len(), 1, "EXCLUSIVE_CPU gives one CPU: {r:?}");
        assert_eq!(
            r.computed.as_ref(),
            Some(&r.affinity),
            "computed set is the affinity: {r:?}"
        );
        assert!(
            r.affinity.contains(r.progress_cpu),
            "progress thread ran outside its CPU: {r:?}"
        );
        if online.len() > 1 {
            assert_ne!(
                r.progress_cpu, r.compute_cpu,
                "progress thread on the compute CPU: {r:?}"
            );
        }
    }
    let distinct: BTreeSet<usize> = ranks.iter().map(|r| r.progress_cpu).collect();
    if online.len() > 1 {
        assert_eq!(
            distinct.len(),
            2,
            "both ranks' progress threads on one CPU: {stdout}"
        );
    }
}
