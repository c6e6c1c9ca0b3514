//! ping-pong between ranks 0 and 1: for each message size, a warm-up then
//! `iters` timed round trips; rank 0 prints one line per size,
//! `size <bytes> iters <n> latency_us <one-way> bandwidth_mbs <MB/s>`,
//! where latency is half the median round trip and bandwidth is bytes per
//! one-way time (10^6 bytes per second). Then `cpus <c0> <c1>` (where
//! the two ranks ran) and `done`. Every received message is checked.
//!
//! Usage: mpi-pingpong [iters] [sizes...]   (default 200; 8 and 1048576)

use mpi::point_to_point::{Destination, Source};
use mpi::traits::*;
use std::time::Instant;

fn fill(buf: &mut [u8], round: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i ^ round) as u8;
    }
}

fn check(buf: &[u8], round: usize) -> bool {
    // Ends and middle: a full check would dominate the time of big messages.
    let n = buf.len();
    [0, n / 2, n.saturating_sub(1)]
        .iter()
        .all(|&i| n == 0 || buf[i] == (i ^ round) as u8)
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; every x86-64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The TSC rate against the monotonic clock over 200 ms: long enough that
/// the cost of the two clock reads (a system call each where there is no
/// vDSO, hundreds of microseconds on an emulating host) is below 0.5%.
fn tsc_hz() -> f64 {
    let c0 = rdtsc();
    let t0 = Instant::now();
    while t0.elapsed().as_millis() < 200 {}
    let t = t0.elapsed();
    (rdtsc() - c0) as f64 / t.as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iters: usize = args.next().map(|a| a.parse().expect("iters: a number")).unwrap_or(200);
    let mut sizes: Vec<usize> = args.map(|a| a.parse().expect("size: a number of bytes")).collect();
    if sizes.is_empty() {
        sizes = vec![8, 1 << 20];
    }
    assert!(iters > 0, "iters must be at least 1");

    let universe = mpi::initialize().expect("MPI_Init failed");
    let world = universe.world();
    let rank = world.rank();
    if world.size() != 2 {
        if rank == 0 {
            eprintln!("mpi-pingpong: needs exactly 2 ranks, got {}", world.size());
        }
        std::process::exit(2);
    }
    let peer = world.process_at_rank(1 - rank);
    let hz = tsc_hz();
    let mut bad = 0u64;
    for &size in &sizes {
        let mut buf = vec![0u8; size];
        let mut round = 0usize;
        // One round trip; rank 0 sends first. Returns nothing: a corrupt
        // message is counted in `bad`.
        let trip = |buf: &mut [u8], round: usize, bad: &mut u64| {
            if rank == 0 {
                fill(buf, round);
                peer.send(&buf[..]);
                peer.receive_into(&mut buf[..]);
                if !check(buf, round + 1) {
                    *bad += 1;
                }
            } else {
                peer.receive_into(&mut buf[..]);
                if !check(buf, round) {
                    *bad += 1;
                }
                fill(buf, round + 1);
                peer.send(&buf[..]);
            }
        };
        for _ in 0..(iters / 10).max(2) {
            trip(&mut buf, round, &mut bad);
            round += 2;
        }
        // Each round trip timed with the TSC: no system call (where there is
        // no vDSO a clock read is one, and would be most of what is timed).
        let mut ticks = Vec::with_capacity(iters);
        for _ in 0..iters {
            let c = rdtsc();
            trip(&mut buf, round, &mut bad);
            ticks.push((rdtsc() - c) as f64);
            round += 2;
        }
        let mut rtt: Vec<f64> = ticks.iter().map(|t| t / hz).collect();
        if rank == 0 {
            let one_way = median(&mut rtt) / 2.0;
            // rtt is sorted now.
            let pct = |p: f64| rtt[((rtt.len() - 1) as f64 * p) as usize] / 2.0 * 1e6;
            println!(
                "size {size} iters {iters} latency_us {:.3} bandwidth_mbs {:.1} min_us {:.3} p90_us {:.3} tsc_mhz {:.0}",
                one_way * 1e6,
                size as f64 / one_way / 1e6,
                pct(0.0),
                pct(0.9),
                hz / 1e6
            );
        }
    }
    let cpu = unsafe { sched_getcpu() };
    let mut cpus = [0i32; 2];
    let root = world.process_at_rank(0);
    if rank == 0 {
        root.gather_into_root(&cpu, &mut cpus[..]);
    } else {
        root.gather_into(&cpu);
    }
    let mut all_bad = 0u64;
    world.all_reduce_into(&bad, &mut all_bad, mpi::collective::SystemOperation::sum());
    if rank == 0 {
        println!("cpus {} {}", cpus[0], cpus[1]);
        if all_bad == 0 {
            println!("done");
        } else {
            println!("corrupt messages {all_bad}");
        }
    }
    drop(universe);
    std::process::exit(if all_bad == 0 { 0 } else { 1 });
}

extern "C" {
    fn sched_getcpu() -> i32;
}
