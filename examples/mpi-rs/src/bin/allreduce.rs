//! allreduce: every rank contributes rank+1 and checks the sum n(n+1)/2,
//! then a ring exchange checks point-to-point messages, and a 1 MiB
//! buffer sent from rank 0 to rank 1 checks large (single-copy or
//! copy-in/copy-out) transfers byte for byte. Each rank prints one line:
//! `rank R of N: cpu C sum S ring ok|WRONG large ok|WRONG`. Exit status 1
//! on any wrong result.

use mpi::collective::SystemOperation;
use mpi::point_to_point::{Destination, Source};
use mpi::traits::*;

/// Bytes of the large message.
const LARGE: usize = 1 << 20;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

fn main() {
    let universe = mpi::initialize().expect("MPI_Init failed");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());

    let mine = i64::from(rank) + 1;
    let mut sum = 0i64;
    world.all_reduce_into(&mine, &mut sum, SystemOperation::sum());
    let want = i64::from(size) * (i64::from(size) + 1) / 2;

    let next = world.process_at_rank((rank + 1) % size);
    let prev = world.process_at_rank((rank + size - 1) % size);
    let (from, _) = mpi::request::scope(|s| {
        let sreq = next.immediate_send(s, &rank);
        let got = prev.receive::<i32>();
        sreq.wait();
        got
    });
    let ring_ok = from == (rank + size - 1) % size;

    let mut large_ok = true;
    if size >= 2 {
        if rank == 0 {
            let buf: Vec<u8> = (0..LARGE).map(pattern).collect();
            world.process_at_rank(1).send(&buf[..]);
        } else if rank == 1 {
            let mut buf = vec![0u8; LARGE];
            world.process_at_rank(0).receive_into(&mut buf[..]);
            large_ok = buf.iter().enumerate().all(|(i, &b)| b == pattern(i));
        }
    }

    let cpu = unsafe { libc_sched_getcpu() };
    let ok = sum == want && ring_ok && large_ok;
    let word = |b: bool| if b { "ok" } else { "WRONG" };
    println!(
        "rank {rank} of {size}: cpu {cpu} sum {sum} (expected {want}) ring {} large {}",
        word(ring_ok),
        word(large_ok)
    );
    drop(universe);
    std::process::exit(if ok { 0 } else { 1 });
}

extern "C" {
    #[link_name = "sched_getcpu"]
    fn libc_sched_getcpu() -> i32;
}
