//! Boot time: `mcreboot -c 1 -m <size>` from start to RUNNING (mcreboot
//! returns once the LWK runs), for 512 MiB and 2 GiB, with a fresh ihkd each
//! time (pin mode, own runtime directory), followed by an untimed
//! mcstop+release. Linux reference measured in the same run: allocating and
//! touching the same amount of memory in a process (mmap + MAP_POPULATE),
//! the floor any partition boot pays for its memory.
//!
//! Run: `cargo bench -p ihk --bench boot` as root on a machine with
//! /dev/kvm. Target on the reference machine: 512 MiB in 300 ms or less.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const MCREBOOT: &str = env!("CARGO_BIN_EXE_mcreboot");
const MCSTOP: &str = env!("CARGO_BIN_EXE_mcstop-release");
const IHKD: &str = env!("CARGO_BIN_EXE_ihkd");

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// mmap + MAP_POPULATE + munmap of `bytes` anonymous memory.
fn linux_populate(bytes: u64) -> Duration {
    let t = Instant::now();
    // SAFETY: a private anonymous mapping we unmap right after.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap of {bytes} bytes");
        let d = t.elapsed();
        libc::munmap(p, bytes as usize);
        d
    }
}

fn run(dir: &Path, exe: &str, args: &[&str]) -> bool {
    let image = Path::new(IHKD).with_file_name("mckernel.img");
    let out = Command::new(exe)
        .args(args)
        .env("IHK_RUNTIME_DIR", dir)
        .env("IHK_ISOLATION", "pin")
        .env("IHKD", IHKD)
        .env("MCKERNEL_IMAGE", image)
        .output()
        .expect("running a command");
    if !out.status.success() {
        eprintln!(
            "{exe} {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

fn main() {
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/kvm").exists() {
        println!("boot bench skipped: needs root and /dev/kvm");
        return;
    }
    // Same lock as the integration tests: one partition user at a time.
    let _lock = mck_tests::partition_lock();
    let dir = tempfile::Builder::new()
        .prefix("ihk-bench-")
        .tempdir()
        .unwrap();

    println!("mcreboot -c 1 -m <size> until RUNNING (fresh ihkd each run, pin mode), {RUNS} runs after one warm-up");
    println!(
        "{:>8} {:>12} {:>12} {:>12} {:>16} {:>8}",
        "size", "first ms", "median ms", "min ms", "Linux populate", "ratio"
    );
    for (label, size) in [("512M", 512u64 << 20), ("2G", 2u64 << 30)] {
        let mut times = Vec::new();
        let mut first = None;
        for i in 0..=RUNS {
            let t = Instant::now();
            let ok = run(dir.path(), MCREBOOT, &["-c", "1", "-m", label]);
            let d = t.elapsed();
            let stopped = run(dir.path(), MCSTOP, &[]);
            if !ok || !stopped {
                println!("{label}: boot failed; see above");
                return;
            }
            if i == 0 {
                first = Some(d);
            } else {
                times.push(d);
            }
        }
        let mut linux: Vec<Duration> = (0..RUNS).map(|_| linux_populate(size)).collect();
        let lin = median(&mut linux);
        let min = *times.iter().min().unwrap();
        let med = median(&mut times);
        println!(
            "{:>8} {:>12.1} {:>12.1} {:>12.1} {:>13.1} ms {:>7.1}x",
            label,
            ms(first.unwrap()),
            ms(med),
            ms(min),
            ms(lin),
            ms(med) / ms(lin)
        );
        if size == 512 << 20 {
            println!(
                "         target: 512 MiB in 300 ms or less -> {}",
                if ms(med) <= 300.0 { "met" } else { "NOT met" }
            );
        }
    }
}
