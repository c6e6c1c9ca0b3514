//! Quick launch against a fresh launch, measured in the same run:
//! `mpiexec -n 2 ./p1.out` (MPI start-up every time) versus a
//! `ql_mpiexec_start -n 2 ./p1.out` round of the resident job, with the
//! guide's example program, for each installed MPI. Prints medians and the
//! ratio; the target is a quick-launch round costing at most one tenth.
//!
//! Run: cargo bench -p ql --bench ql   (QL_BENCH_ROUNDS=n, default 10)

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bin, examples_dir, Mpi, Session, MPICH, OPENMPI};
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `cmd` and returns its wall time; panics if it fails.
fn timed(mut cmd: Command) -> Duration {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let t = Instant::now();
    let out = cmd.output().expect("spawn");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn bench(mpi: &'static Mpi, rounds: usize) {
    let Some(s) = Session::new(mpi) else { return };
    s.compile_c(&examples_dir().join("ql_example.c"), "p1.out");
    let mpiexec: Vec<&str> = mpi.mpiexec.split_whitespace().collect();

    let fresh: Vec<Duration> = (0..rounds)
        .map(|i| {
            let mut c = s.command(mpiexec[0]);
            c.args(&mpiexec[1..])
                .args(["-n", "2", "./p1.out", &format!("fresh{i}")]);
            timed(c)
        })
        .collect();

    let start = |arg: &str| {
        let mut c = s.command(bin("ql_mpiexec_start"));
        c.args(["-n", "2", "./p1.out", arg]);
        timed(c)
    };
    let launch = start("launch");
    let ql: Vec<Duration> = (0..rounds).map(|i| start(&format!("round{i}"))).collect();
    let mut fin = s.command(bin("ql_mpiexec_finalize"));
    fin.args(["-n", "2", "./p1.out"]);
    let finalize = timed(fin);

    let (f, q) = (median(fresh), median(ql));
    let ratio = q.as_secs_f64() / f.as_secs_f64();
    println!(
        "{:<8} fresh `mpiexec -n 2` round: {:8.2} ms | quick-launch round: {:6.2} ms | ratio {:.4} ({}) | first start {:.1} ms, finalize {:.1} ms",
        mpi.name,
        ms(f),
        ms(q),
        ratio,
        if ratio <= 0.1 { "target <= 0.1 met" } else { "target <= 0.1 MISSED" },
        ms(launch),
        ms(finalize),
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // special: run a short version then.
    let is_bench = std::env::args().any(|a| a == "--bench");
    let rounds = std::env::var("QL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if is_bench { 10 } else { 2 });
    println!("quick launch vs fresh mpiexec, 2 processes, median of {rounds} rounds");
    for mpi in [&OPENMPI, &MPICH] {
        bench(mpi, rounds);
    }
}
