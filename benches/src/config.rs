//! Command-line options of the report and the sizes derived from the machine.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;

/// A part of the run that `--only` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Boot times and the benchmarks on one CPU (FWQ, system calls,
    /// launch, STREAM, GUPS).
    SingleCpu,
    /// Thread create+join and the futex ping-pong on two CPUs.
    Threads,
    /// FWQ only (part of the single-CPU phase): the OS-noise runs, LWK
    /// and Linux alternately, with steal time and the LWK's noise trace.
    Fwq,
    /// MPI communication/computation overlap, without and with mpi-shim's
    /// progress thread (a 1-CPU partition with allow_oversubscribe).
    Overlap,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mck-bench",
    about = "Boots a partition, runs FWQ, STREAM, GUPS, syscall, launch and boot benchmarks \
             under mcexec and natively pinned to the same CPU, then thread create+join and a \
             futex ping-pong on a 2-CPU partition and natively on the same two CPUs, and \
             reports LWK/Linux ratios against the targets of issue 5 (Markdown + PNG in --out)."
)]
pub struct Options {
    /// Run the native side only (the LWK columns stay empty).
    #[arg(long)]
    pub linux_only: bool,

    /// Linux CPU given to the LWK, and the CPU the native runs are pinned
    /// to [default: the highest online CPU].
    #[arg(long)]
    pub cpu: Option<usize>,

    /// Memory of the benchmark partition (mcreboot -m).
    #[arg(long, default_value = "2560M")]
    pub lwk_mem: String,

    /// Partition sizes whose boot time (mcreboot to RUNNING) is measured.
    #[arg(long, value_delimiter = ',', default_value = "512M,2G")]
    pub boot_sizes: Vec<String>,

    /// Boots per size for the boot-time rows.
    #[arg(long, default_value_t = 3)]
    pub boot_reps: usize,

    /// Install tree of scripts/install.sh (sbin/mcreboot, bin/mcexec, ...).
    /// Default: the cargo target directory this harness was built in.
    #[arg(long)]
    pub prefix: Option<PathBuf>,

    /// Do not run `cargo build --release --workspace` before booting.
    #[arg(long)]
    pub no_build: bool,

    /// IHK runtime directory of the harness's own partition.
    #[arg(long, default_value = "/run/mck-bench")]
    pub runtime_dir: PathBuf,

    /// Extra mcexec option (repeatable), e.g. a spin-mode switch.
    #[arg(long = "mcexec-arg", allow_hyphen_values = true)]
    pub mcexec_args: Vec<String>,

    /// Output directory (report.md, PNG plots, raw samples, programs).
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Also copy report.md and the plots to benches/results/ (what the
    /// README shows).
    #[arg(long)]
    pub publish: bool,

    /// Small sizes and few repetitions: checks that everything runs, the
    /// numbers mean little.
    #[arg(long)]
    pub quick: bool,

    /// FWQ samples per run (at least 10,000 unless --quick).
    #[arg(long, default_value_t = 20_000)]
    pub fwq_samples: u64,

    /// FWQ loop iterations per quantum.
    #[arg(long, default_value_t = 32_768)]
    pub fwq_work: u64,

    /// FWQ runs per side (the row values are medians over runs).
    #[arg(long, default_value_t = 3)]
    pub fwq_runs: usize,

    /// STREAM array length in doubles [default: 8x the last-level cache].
    #[arg(long)]
    pub stream_n: Option<u64>,

    /// STREAM repetitions of the four kernels.
    #[arg(long, default_value_t = 20)]
    pub stream_ntimes: u64,

    /// GUPS table size as log2 of 64-bit words (27 = 1 GiB).
    #[arg(long, default_value_t = 27)]
    pub gups_log2: u32,

    /// GUPS updates per timed round.
    #[arg(long, default_value_t = 1 << 26)]
    pub gups_updates: u64,

    /// GUPS timed rounds.
    #[arg(long, default_value_t = 5)]
    pub gups_rounds: u64,

    /// Timed calls per system-call benchmark.
    #[arg(long, default_value_t = 100_000)]
    pub syscall_iters: u64,

    /// Time budget of one system-call benchmark in seconds: a slow system
    /// stops early with fewer (at least 1024) timed calls.
    #[arg(long, default_value_t = 10)]
    pub syscall_seconds: u64,

    /// Launches of `busybox true` per side.
    #[arg(long, default_value_t = 20)]
    pub launch_reps: usize,

    /// The program launched for the launch benchmark.
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: PathBuf,

    /// Run one phase only: `fwq` (FWQ alone, both sides alternately),
    /// `threads` (the 2-CPU thread benchmarks, on both
    /// sides), `overlap` (MPI overlap with and without mpi-shim's progress
    /// thread, on both sides) or `single-cpu` (boot times and every other
    /// benchmark).
    #[arg(long, value_enum)]
    pub only: Option<Phase>,

    /// The CPUs of the thread benchmarks: the 2-CPU partition
    /// (`mcreboot -c <list>`) and the CPUs the native runs are pinned to.
    /// At least two; the ping-pong uses the first two.
    #[arg(long, default_value = "0-1")]
    pub thread_cpus: String,

    /// Memory of the 2-CPU partition (mcreboot -m); the MPI ping-pong's
    /// two ranks share it.
    #[arg(long, default_value = "1G")]
    pub thread_mem: String,

    /// Timed pthread_create + pthread_join pairs per side.
    #[arg(long, default_value_t = 200)]
    pub thread_creates: u64,

    /// Timed futex round trips per side.
    #[arg(long, default_value_t = 2_000)]
    pub thread_round_trips: u64,

    /// Timed round trips per message size of the MPI ping-pong.
    #[arg(long, default_value_t = 1_000)]
    pub mpi_round_trips: u64,

    /// Time budget of one thread benchmark in seconds: a slow system stops
    /// early with fewer (at least 10) timed iterations.
    #[arg(long, default_value_t = 60)]
    pub thread_seconds: u64,

    /// Timed repetitions of each part of the MPI overlap benchmark.
    #[arg(long, default_value_t = 5)]
    pub overlap_reps: u64,

    /// vader's single-copy mechanism in the overlap benchmark
    /// (btl_vader_single_copy_mechanism): `none` (copy-in/copy-out through
    /// shared memory) or `cma`.
    #[arg(long, default_value = "none")]
    pub overlap_single_copy: String,

    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl Options {
    /// Applies --quick and checks the values; fills machine-derived defaults.
    pub fn resolve(mut self) -> Result<Options> {
        if self.quick {
            self.fwq_samples = self.fwq_samples.min(2_000);
            self.fwq_runs = 1;
            self.stream_n = Some(self.stream_n.unwrap_or(1 << 22));
            self.stream_ntimes = self.stream_ntimes.min(4);
            self.gups_log2 = self.gups_log2.min(24);
            self.gups_updates = self.gups_updates.min(1 << 22);
            self.gups_rounds = self.gups_rounds.min(2);
            self.syscall_iters = self.syscall_iters.min(10_000);
            self.launch_reps = self.launch_reps.min(5);
            self.boot_reps = self.boot_reps.min(1);
            self.thread_creates = self.thread_creates.min(50);
            self.thread_round_trips = self.thread_round_trips.min(200);
            self.mpi_round_trips = self.mpi_round_trips.min(100);
            self.overlap_reps = self.overlap_reps.min(2);
        } else if self.fwq_samples < 10_000 {
            bail!(
                "--fwq-samples must be at least 10000 (issue 5), got {}",
                self.fwq_samples
            );
        }
        for (what, v) in [
            ("--fwq-samples", self.fwq_samples),
            ("--fwq-work", self.fwq_work),
            ("--fwq-runs", self.fwq_runs as u64),
            ("--stream-ntimes", self.stream_ntimes),
            ("--gups-updates", self.gups_updates),
            ("--gups-rounds", self.gups_rounds),
            ("--syscall-iters", self.syscall_iters),
            ("--syscall-seconds", self.syscall_seconds),
            ("--launch-reps", self.launch_reps as u64),
            ("--thread-creates", self.thread_creates),
            ("--thread-round-trips", self.thread_round_trips),
            ("--mpi-round-trips", self.mpi_round_trips),
            ("--overlap-reps", self.overlap_reps),
            ("--thread-seconds", self.thread_seconds),
        ] {
            if v == 0 {
                bail!("{what} must be at least 1, got 0");
            }
        }
        if !["none", "cma"].contains(&self.overlap_single_copy.as_str()) {
            bail!(
                "--overlap-single-copy must be none or cma, got '{}'",
                self.overlap_single_copy
            );
        }
        if !(10..=33).contains(&self.gups_log2) {
            bail!("--gups-log2 must be in 10..=33, got {}", self.gups_log2);
        }
        if self.stream_n.is_none() {
            let llc = last_level_cache_bytes().unwrap_or(32 << 20);
            self.stream_n = Some((8 * llc / 8).max(1 << 24));
        }
        if self.cpu.is_none() {
            self.cpu = Some(highest_online_cpu()?);
        }
        if !self.linux_only && self.boot_reps == 0 && !self.boot_sizes.is_empty() {
            bail!("--boot-reps must be at least 1 when --boot-sizes is given");
        }
        let cpus = parse_cpu_list(&self.thread_cpus)
            .with_context(|| format!("--thread-cpus '{}'", self.thread_cpus))?;
        if cpus.len() < 2 && self.runs(Phase::Threads) {
            bail!(
                "--thread-cpus must name at least two CPUs, got '{}'",
                self.thread_cpus
            );
        }
        if !self.busybox.is_file() && self.runs(Phase::SingleCpu) {
            bail!(
                "--busybox {} does not exist (install busybox-static)",
                self.busybox.display()
            );
        }
        Ok(self)
    }

    /// Whether this run includes `phase` (FWQ is part of the single-CPU
    /// phase).
    pub fn runs(&self, phase: Phase) -> bool {
        match (self.only, phase) {
            (None, _) => true,
            (Some(Phase::SingleCpu), Phase::Fwq) => true,
            (Some(p), q) => p == q,
        }
    }

    /// Whether the single-CPU partition is booted at all (everything on
    /// one CPU, or FWQ alone).
    pub fn runs_single_cpu_partition(&self) -> bool {
        self.runs(Phase::SingleCpu) || self.runs(Phase::Fwq)
    }

    /// The CPUs of --thread-cpus, ascending.
    pub fn thread_cpus(&self) -> Vec<usize> {
        parse_cpu_list(&self.thread_cpus).expect("checked by resolve")
    }

    pub fn cpu(&self) -> usize {
        self.cpu.expect("resolved")
    }

    pub fn stream_n(&self) -> u64 {
        self.stream_n.expect("resolved")
    }

    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("out"))
    }
}

/// Size of the largest cache of CPU 0 (sysfs), in bytes.
pub fn last_level_cache_bytes() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("size")).ok())
        .filter_map(|s| parse_cache_size(s.trim()))
        .max()
}

/// "32768K" / "2048K" / "32M" as sysfs writes it.
pub fn parse_cache_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// The highest CPU in /sys/devices/system/cpu/online ("0-1", "0,2-5").
pub fn highest_online_cpu() -> Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .context("reading /sys/devices/system/cpu/online")?;
    parse_highest_cpu(s.trim())
}

/// How many CPUs /sys/devices/system/cpu/online lists.
pub fn online_cpu_count() -> Option<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    count_cpus(s.trim())
}

/// The number of CPUs in a list like "0-3,6,8-9".
pub fn count_cpus(s: &str) -> Option<usize> {
    let mut n = 0;
    for r in s.split(',') {
        let (a, b) = match r.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ),
            None => {
                let c = r.trim().parse::<usize>().ok()?;
                (c, c)
            }
        };
        n += b.checked_sub(a)? + 1;
    }
    Some(n)
}

/// The CPUs of a list like "0-3,6": ascending, without repeats.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for r in s.split(',') {
        let num = |x: &str| {
            x.trim()
                .parse::<usize>()
                .with_context(|| format!("'{}' is not a CPU number", x.trim()))
        };
        let (a, b) = match r.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(r)?, num(r)?),
        };
        if b < a {
            bail!("'{r}' is a descending range");
        }
        if b >= nix::sched::CpuSet::count() {
            bail!("CPU {b} is beyond the largest CPU set");
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

pub fn parse_highest_cpu(s: &str) -> Result<usize> {
    s.split(',')
        .filter_map(|r| r.rsplit('-').next())
        .map(|n| n.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .ok()
        .and_then(|v| v.into_iter().max())
        .with_context(|| format!("cannot read a CPU list from '{s}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes() {
        assert_eq!(parse_cache_size("32768K"), Some(32 << 20));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("x"), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_highest_cpu("0-1").unwrap(), 1);
        assert_eq!(parse_highest_cpu("0,2-5,7").unwrap(), 7);
        assert_eq!(parse_highest_cpu("3").unwrap(), 3);
        assert!(parse_highest_cpu("a-b").is_err());
        assert_eq!(count_cpus("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpus("0"), Some(1));
        assert_eq!(count_cpus("3-1"), None);
        assert_eq!(parse_cpu_list("0-1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("3, 0-1,1").unwrap(), vec![0, 1, 3]);
        assert!(parse_cpu_list("1-0").is_err());
        assert!(parse_cpu_list("0,").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("0-99999").is_err());
    }

    #[test]
    fn options_check_values() {
        let o = Options::parse_from(["mck-bench", "--linux-only", "--fwq-samples", "500"]);
        let e = o.resolve().unwrap_err().to_string();
        assert!(e.contains("--fwq-samples") && e.contains("500"), "{e}");
        let o = Options::parse_from(["mck-bench", "--bench", "--gups-log2", "40"]);
        assert!(o.resolve().unwrap_err().to_string().contains("--gups-log2"));
        let o = Options::parse_from(["mck-bench", "--thread-cpus", "1"]);
        let e = o.resolve().unwrap_err().to_string();
        assert!(e.contains("--thread-cpus") && e.contains("two"), "{e}");
        // One CPU is fine when the thread phase does not run.
        let o = Options::parse_from([
            "mck-bench",
            "--thread-cpus",
            "1",
            "--only",
            "single-cpu",
            "--cpu",
            "1",
        ]);
        assert!(o.resolve().is_ok());
        let o = Options::parse_from(["mck-bench", "--only", "threads", "--thread-cpus", "0-1"]);
        let o = o.resolve().unwrap();
        assert!(o.runs(Phase::Threads) && !o.runs(Phase::SingleCpu));
        assert!(!o.runs(Phase::Fwq) && !o.runs_single_cpu_partition());
        assert_eq!(o.thread_cpus(), vec![0, 1]);
        // FWQ is part of the single-CPU phase, and runs alone with --only fwq.
        let o = Options::parse_from(["mck-bench", "--only", "fwq"]).resolve().unwrap();
        assert!(o.runs(Phase::Fwq) && !o.runs(Phase::SingleCpu) && !o.runs(Phase::Threads));
        assert!(o.runs_single_cpu_partition());
        let o = Options::parse_from(["mck-bench", "--only", "single-cpu"]).resolve().unwrap();
        assert!(o.runs(Phase::Fwq) && o.runs(Phase::SingleCpu));
        assert!(!o.runs(Phase::Overlap));
        let o = Options::parse_from(["mck-bench", "--only", "overlap"]).resolve().unwrap();
        assert!(o.runs(Phase::Overlap) && !o.runs(Phase::Threads));
        assert!(!o.runs_single_cpu_partition());
        let o = Options::parse_from(["mck-bench", "--overlap-single-copy", "knem"]);
        assert!(o.resolve().is_err());
        let o = Options::parse_from(["mck-bench", "--thread-round-trips", "0"]);
        assert!(o
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("--thread-round-trips"));
    }
}
