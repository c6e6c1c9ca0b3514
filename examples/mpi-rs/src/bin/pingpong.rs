//! ping-pong between ranks 0 and 1: for each message size, `warm-up`
//! round trips then `iters` timed ones; rank 0 prints one line per size,
//! `size <bytes> iters <n> latency_us <one-way> bandwidth_mbs <MB/s>`,
//! where latency is half the median round trip and bandwidth is bytes
//! per one-way time (10^6 bytes per second). Then `cpus <c0> <c1>` (where
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
    let mut bad = 0u64;
    for &size in &sizes {
        let mut buf = vec![0u8; size];
        let warm = (iters / 10).max(2);
        let mut rtt = Vec::with_capacity(iters);
        for round in 0..warm + iters {
            let t = Instant::now();
            if rank == 0 {
                fill(&mut buf, round);
                peer.send(&buf[..]);
                peer.receive_into(&mut buf[..]);
                if !check(&buf, round + 1) {
                    bad += 1;
                }
            } else {
                peer.receive_into(&mut buf[..]);
                if !check(&buf, round) {
                    bad += 1;
                }
                fill(&mut buf, round + 1);
                peer.send(&buf[..]);
            }
            if round >= warm {
                rtt.push(t.elapsed().as_secs_f64());
            }
        }
        if rank == 0 {
            let one_way = median(&mut rtt) / 2.0;
            println!(
                "size {size} iters {iters} latency_us {:.3} bandwidth_mbs {:.1}",
                one_way * 1e6,
                size as f64 / one_way / 1e6
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
