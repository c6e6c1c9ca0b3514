//! FWQ: quanta of fixed work on the benchmark CPU; noise is the time above
//! the shortest quantum.
//!
//! Each run also measures the CPU's steal time over the run (time the
//! host did not run it: on Linux the CPU's `steal` in /proc/stat, from
//! this machine's own hypervisor; on the LWK that plus the vCPU's KVM
//! steal time, which the LWK's noise trace carries), so the noise is also
//! reported net of steal. On the LWK side every quantum more than
//! [`STALL_US`] above the shortest is matched with the LWK's noise trace
//! (`ihkosctl 0 trace`, same TSC as the quanta): a stall during which the
//! CPU entered the kernel is attributed to those entries' causes; one
//! without any kernel entry happened outside the LWK. On both sides such a
//! stall is matched with the host scheduler's run-queue wait of the thread
//! that runs the program (the vCPU thread, or the native program), sampled
//! during the run: host preemption if it waited for half the stall or
//! more; the rest are host interrupts or this machine's own hypervisor.

use super::Ctx;
use crate::parse::{read_samples, Records};
use crate::partition::Node;
use crate::runner::Runner;
use crate::stats::{self, Fwq};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A quantum this far above the shortest is a stall to explain.
pub const STALL_US: f64 = 100.0;

/// One run: quantum lengths in microseconds, in order, and their statistics.
#[derive(Debug, Clone)]
pub struct Run {
    pub quanta_us: Vec<f64>,
    pub stats: Fwq,
    /// Steal time of the CPU during the run (us).
    pub steal_us: f64,
    /// Noise net of steal time, in percent.
    pub net_noise_pct: f64,
    /// Where the stalls came from.
    pub stalls: Stalls,
}

/// The stalls of one LWK run, by origin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stalls {
    /// Quanta more than [`STALL_US`] above the shortest.
    pub count: usize,
    /// Stalls during which the CPU entered the kernel, by the cause of the
    /// entries (a stall with several causes counts under each): (stalls,
    /// their time above the shortest quantum in us).
    pub in_kernel: BTreeMap<String, (usize, f64)>,
    /// Stalls without any kernel entry: (stalls, us above the shortest).
    pub outside: (usize, f64),
    /// Of those, the stalls during which the host's scheduler kept the
    /// program's thread (the LWK's vCPU thread, or the native program)
    /// waiting on its run queue for at least half the stall: (stalls, us
    /// above the shortest).
    pub preempted: (usize, f64),
    /// The longest stall without a kernel entry (us above the shortest).
    pub outside_max_us: f64,
    /// The longest stall neither in a kernel entry nor preempted.
    pub unexplained_max_us: f64,
}

impl Stalls {
    pub fn in_kernel_count(&self) -> usize {
        self.count - self.outside.0
    }
}

#[derive(Debug, Clone)]
pub struct FwqResult {
    pub runs: Vec<Run>,
}

impl FwqResult {
    /// Median over runs of one statistic.
    pub fn median_of(&self, f: impl Fn(&Fwq) -> f64) -> f64 {
        self.median_run(|r| f(&r.stats))
    }

    /// Median over runs of any per-run figure.
    pub fn median_run(&self, f: impl Fn(&Run) -> f64) -> f64 {
        let v: Vec<f64> = self.runs.iter().map(f).collect();
        stats::median(&v).unwrap_or(f64::NAN)
    }

    /// The run with the median noise (what the plot shows).
    pub fn representative(&self) -> &Run {
        let mut idx: Vec<usize> = (0..self.runs.len()).collect();
        idx.sort_by(|&a, &b| {
            self.runs[a]
                .stats
                .noise_pct
                .total_cmp(&self.runs[b].stats.noise_pct)
        });
        &self.runs[idx[idx.len() / 2]]
    }
}

/// Samples one thread's run-queue wait (`run_delay` of
/// /proc/<pid>/task/<tid>/schedstat, ns) with the TSC while a run lasts,
/// from a thread of the harness (which runs off the benchmark CPU).
struct DelayPoller {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(u64, u64)>>,
}

/// Which thread the poller watches.
#[derive(Clone)]
enum Watched {
    /// The LWK's vCPU thread `ihk-vcpu0` in this ihkd.
    Vcpu { ihkd_pid: u32 },
    /// The native program `fwq`, a child of the harness.
    Child,
}

impl Watched {
    /// Its schedstat file, once it exists.
    fn find(&self) -> Option<std::path::PathBuf> {
        match self {
            Watched::Vcpu { ihkd_pid } => {
                let dir = format!("/proc/{ihkd_pid}/task");
                std::fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).find(|t| {
                    std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "ihk-vcpu0")
                })
            }
            Watched::Child => {
                let me = std::process::id().to_string();
                std::fs::read_dir("/proc").ok()?.flatten().map(|e| e.path()).find(|p| {
                    std::fs::read_to_string(p.join("stat")).is_ok_and(|st| {
                        // "pid (comm) state ppid ..."
                        let Some((head, tail)) = st.rsplit_once(") ") else { return false };
                        head.ends_with("(fwq") && tail.split_whitespace().nth(1) == Some(me.as_str())
                    })
                })
            }
        }
        .map(|p| p.join("schedstat"))
    }
}

impl DelayPoller {
    fn start(w: Watched) -> DelayPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut path = None;
            let mut out = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if path.is_none() {
                    path = w.find();
                }
                if let Some(p) = &path {
                    let d = std::fs::read_to_string(p)
                        .ok()
                        .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok());
                    match d {
                        // SAFETY: rdtsc has no memory effects.
                        Some(d) => out.push((unsafe { core::arch::x86_64::_rdtsc() }, d)),
                        None => path = None,
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            out
        });
        DelayPoller { stop, handle }
    }

    fn finish(self) -> Vec<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Where a side's steal time and kernel entries come from.
pub enum Observer<'a> {
    /// Native Linux on this CPU.
    Linux { cpu: usize },
    /// The LWK whose CPU 0 is this host CPU.
    Lwk { node: &'a Node, cpu: usize },
}

impl Observer<'_> {
    /// The thread whose run-queue wait tells host preemption.
    fn watched(&self) -> Result<Watched> {
        match self {
            Observer::Linux { .. } => Ok(Watched::Child),
            Observer::Lwk { node, .. } => {
                let f = node.runtime_dir.join("ihkd.pid");
                let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
                let ihkd_pid = text.trim().parse().with_context(|| format!("{}: not a pid", f.display()))?;
                Ok(Watched::Vcpu { ihkd_pid })
            }
        }
    }

    /// Steal time so far (ns) and, on the LWK, the noise trace's text.
    fn look(&self) -> Result<(u64, Option<String>)> {
        match self {
            Observer::Linux { cpu } => Ok((host_steal_ns(*cpu)?, None)),
            Observer::Lwk { node, cpu } => {
                let text = node.trace()?;
                let kvm = parse_trace(&text)?.steal_ns.unwrap_or(0);
                Ok((host_steal_ns(*cpu)? + kvm, Some(text)))
            }
        }
    }
}

/// Steal time of host CPU `cpu` from /proc/stat (USER_HZ ticks), in ns.
fn host_steal_ns(cpu: usize) -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    proc_stat_steal(&stat, cpu)
        .map(|t| t * 1_000_000_000 / hz)
        .with_context(|| format!("no cpu{cpu} steal column in /proc/stat"))
}

/// The steal column (8th value) of the `cpu<cpu>` line.
fn proc_stat_steal(stat: &str, cpu: usize) -> Option<u64> {
    let name = format!("cpu{cpu}");
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some(&name))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// One kernel entry of the LWK's CPU 0 from `ihkosctl 0 trace`.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRec {
    pub tsc: u64,
    pub us: f64,
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub tsc_khz: f64,
    /// CPU 0's KVM steal time, when the host offers it.
    pub steal_ns: Option<u64>,
    pub recs: Vec<TraceRec>,
}

/// Parse `ihkosctl 0 trace` (CPU 0's part).
pub fn parse_trace(text: &str) -> Result<Trace> {
    let mut t = Trace { tsc_khz: 0.0, steal_ns: None, recs: Vec::new() };
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["#", "tsc_khz", k] => t.tsc_khz = k.parse().context("tsc_khz")?,
            ["#", "cpu", "0", "linux_cpu", _, rest @ ..] => {
                if let Some(i) = rest.iter().position(|&x| x == "steal_ns") {
                    t.steal_ns = rest.get(i + 1).and_then(|s| s.parse().ok());
                }
            }
            ["0", tsc, us, cause, _] => t.recs.push(TraceRec {
                tsc: tsc.parse().context("trace tsc")?,
                us: us.parse().context("trace us")?,
                cause: cause.to_string(),
            }),
            _ => {}
        }
    }
    if t.tsc_khz <= 0.0 {
        bail!("no tsc_khz in the trace");
    }
    Ok(t)
}

/// Match each quantum longer than the shortest by more than [`STALL_US`]
/// with the trace's kernel entries that overlap it (`trace`: the LWK's, or
/// none natively), and with the growth of the thread's run-queue wait
/// (`delays`: (TSC, run_delay ns) samples, ascending). `ticks`, `starts`:
/// each quantum's length and start (TSC); `hz`: the TSC frequency.
pub fn attribute(
    ticks: &[f64],
    starts: &[u64],
    hz: f64,
    trace: Option<&Trace>,
    delays: &[(u64, u64)],
) -> Stalls {
    let mut s = Stalls::default();
    let Some(min) = ticks.iter().copied().reduce(f64::min) else { return s };
    let none = Trace { tsc_khz: 1.0, steal_ns: None, recs: Vec::new() };
    let trace = trace.unwrap_or(&none);
    let khz = trace.tsc_khz;
    for (&t, &start) in ticks.iter().zip(starts) {
        let excess_us = (t - min) / hz * 1e6;
        if excess_us <= STALL_US {
            continue;
        }
        s.count += 1;
        let end = start + t as u64;
        let mut causes: Vec<&str> = trace
            .recs
            .iter()
            .filter(|r| r.tsc < end && r.tsc + (r.us * khz / 1000.0) as u64 > start)
            .map(|r| r.cause.as_str())
            .collect();
        causes.sort();
        causes.dedup();
        if causes.is_empty() {
            s.outside.0 += 1;
            s.outside.1 += excess_us;
            s.outside_max_us = s.outside_max_us.max(excess_us);
            // run_delay grows when the thread runs again: look from the
            // last sample before the stall to the first one a poll period
            // after it.
            let slack = (hz * 2e-3) as u64;
            let before = delays.iter().rev().find(|d| d.0 <= start).map(|d| d.1);
            let after = delays.iter().find(|d| d.0 >= end + slack).map(|d| d.1);
            let waited_us = match (before, after) {
                (Some(b), Some(a)) => a.saturating_sub(b) as f64 / 1000.0,
                _ => 0.0,
            };
            if waited_us >= excess_us / 2.0 {
                s.preempted.0 += 1;
                s.preempted.1 += excess_us;
            } else {
                s.unexplained_max_us = s.unexplained_max_us.max(excess_us);
            }
        }
        for c in causes {
            let e = s.in_kernel.entry(c.to_string()).or_default();
            e.0 += 1;
            e.1 += excess_us;
        }
    }
    s
}

/// One FWQ run on `r` (number `i` of the side's runs).
pub fn run_one(r: &Runner, ctx: &Ctx, obs: &Observer, i: usize) -> Result<Run> {
    let o = ctx.opts;
    let file = ctx.raw_file(&format!("fwq{i}"), r.side());
    let start_file = ctx.raw_file(&format!("fwq{i}-start"), r.side());
    let args = vec![
        o.fwq_samples.to_string(),
        o.fwq_work.to_string(),
        file.display().to_string(),
        start_file.display().to_string(),
    ];
    let (steal0, _) = obs.look()?;
    let poller = DelayPoller::start(obs.watched()?);
    let f = r.run(&ctx.progs.fwq, &args, Duration::from_secs(120));
    let delays = poller.finish();
    let f = f?;
    let (steal1, trace_text) = obs.look()?;
    let rec = Records::new("fwq", &f.stdout);
    let hz = rec.f64("tsc_hz")?;
    if !(1e8..1e11).contains(&hz) {
        bail!("fwq: implausible TSC frequency {hz} Hz");
    }
    let ticks = read_samples(&file)?;
    if ticks.len() as u64 != o.fwq_samples {
        bail!(
            "fwq: {} samples in {}, expected {}",
            ticks.len(),
            file.display(),
            o.fwq_samples
        );
    }
    let quanta_us: Vec<f64> = ticks.iter().map(|t| t / hz * 1e6).collect();
    let Some(stats) = Fwq::of(&quanta_us) else {
        bail!("fwq: no usable samples")
    };
    let steal_us = steal1.saturating_sub(steal0) as f64 / 1000.0;
    let net_noise_pct = stats::net_noise_pct(&quanta_us, steal_us).unwrap_or(f64::NAN);
    let trace = match trace_text {
        Some(text) => {
            std::fs::write(ctx.raw_file(&format!("fwq{i}-trace"), r.side()), &text)?;
            Some(parse_trace(&text)?)
        }
        None => None,
    };
    if delays.is_empty() {
        bail!("fwq: the thread's run-queue wait could not be sampled (schedstat)");
    }
    let starts: Vec<u64> = read_samples(&start_file)?.iter().map(|&s| s as u64).collect();
    let stalls = attribute(&ticks, &starts, hz, trace.as_ref(), &delays);
    eprintln!(
        "  [{}] fwq run {}/{}: min {:.2} us, max {:.2} us, noise {:.4} %, steal {:.0} us, net of steal {:.4} %; \
         {} stalls > {STALL_US} us: {} in kernel entries {:?}, {} without ({:.0} us), of which {} preempted on the host",
        r.side().name(),
        i + 1,
        o.fwq_runs,
        stats.summary.min,
        stats.summary.max,
        stats.noise_pct,
        steal_us,
        net_noise_pct,
        stalls.count,
        stalls.in_kernel_count(),
        stalls.in_kernel,
        stalls.outside.0,
        stalls.outside.1,
        stalls.preempted.0
    );
    Ok(Run { quanta_us, stats, steal_us, net_noise_pct, stalls })
}

/// The FWQ runs of both sides, alternately (LWK, Linux, LWK, ...), so a
/// change of the host's load affects both alike.
pub fn alternating(
    lwk: (&Runner, &Observer),
    linux: (&Runner, &Observer),
    ctx: &Ctx,
) -> (Result<FwqResult>, Result<FwqResult>) {
    let (mut a, mut b) = (Ok(Vec::new()), Ok(Vec::new()));
    for i in 0..ctx.opts.fwq_runs {
        for ((r, obs), acc) in [(lwk, &mut a), (linux, &mut b)] {
            if let Ok(runs) = acc {
                match run_one(r, ctx, obs, i) {
                    Ok(run) => runs.push(run),
                    Err(e) => *acc = Err(e),
                }
            }
        }
        if crate::interrupt::requested() {
            break;
        }
    }
    (a.map(|runs| FwqResult { runs }), b.map(|runs| FwqResult { runs }))
}

/// The FWQ runs of one side.
pub fn run(r: &Runner, ctx: &Ctx, obs: &Observer) -> Result<FwqResult> {
    let runs = (0..ctx.opts.fwq_runs)
        .map(|i| run_one(r, ctx, obs, i))
        .collect::<Result<Vec<_>>>()?;
    Ok(FwqResult { runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "# tsc_khz 1000000\n\
        # cpu 0 linux_cpu 1 entries 3 in_ring 3 steal_ns 5000\n\
        # cpu 0 cause syscall count 2 total_us 3.0 max_us 2.0\n\
        0 1000 1.0 syscall 1\n\
        0 5000 2.0 timer 0\n\
        0 600000 300.0 wakeup-ipi 0\n";

    #[test]
    fn the_trace_text_parses() {
        let t = parse_trace(TRACE).unwrap();
        assert_eq!(t.tsc_khz, 1e6);
        assert_eq!(t.steal_ns, Some(5000));
        assert_eq!(t.recs.len(), 3);
        assert_eq!(t.recs[2], TraceRec { tsc: 600_000, us: 300.0, cause: "wakeup-ipi".into() });
        assert!(parse_trace("0 1 2.0 syscall 1\n").is_err());
    }

    #[test]
    fn stalls_are_matched_with_overlapping_kernel_entries() {
        let t = parse_trace(TRACE).unwrap();
        // 1 GHz: 1 tick = 1 ns. Quanta of 1000 ns, except:
        //  [4000, +201000): overlaps the timer entry at 5000 -> in kernel;
        //  [500_000, +400000): overlaps the IPI at 600_000 -> in kernel;
        //  [2_000_000, +150000): no entry -> outside.
        let ticks = [1000.0, 201_000.0, 400_000.0, 1000.0, 150_000.0];
        let starts = [0, 4000, 500_000, 1_000_000, 2_000_000];
        let s = attribute(&ticks, &starts, 1e9, Some(&t), &[]);
        assert_eq!(s.count, 3);
        assert_eq!(s.in_kernel_count(), 2);
        assert_eq!(s.in_kernel.get("timer").map(|x| x.0), Some(1));
        assert_eq!(s.in_kernel.get("wakeup-ipi").map(|x| x.0), Some(1));
        assert_eq!(s.outside.0, 1);
        assert!((s.outside.1 - 149.0).abs() < 1e-9, "{s:?}");
        assert!((s.outside_max_us - 149.0).abs() < 1e-9);
        assert_eq!(s.preempted.0, 0);
        assert!((s.unexplained_max_us - 149.0).abs() < 1e-9);
    }

    #[test]
    fn a_stall_is_host_preemption_when_the_run_queue_wait_grew_through_it() {
        // 1 GHz. Stall A [1_000_000, +300_000): run_delay grows by 280 us
        // (seen 2 ms after); stall B [10_000_000, +300_000): by 50 us only.
        let ticks = [1000.0, 301_000.0, 301_000.0];
        let starts = [0, 1_000_000, 10_000_000];
        let delays = [
            (900_000, 5_000),
            (4_000_000, 285_000),
            (9_000_000, 285_000),
            (13_000_000, 335_000),
        ];
        let s = attribute(&ticks, &starts, 1e9, None, &delays);
        assert_eq!((s.count, s.outside.0, s.preempted.0), (2, 2, 1));
        assert!((s.preempted.1 - 300.0).abs() < 1e-9, "{s:?}");
        assert!((s.unexplained_max_us - 300.0).abs() < 1e-9);
        // No samples: nothing is called preemption.
        assert_eq!(attribute(&ticks, &starts, 1e9, None, &[]).preempted.0, 0);
    }

    #[test]
    fn steal_comes_from_the_cpus_proc_stat_line() {
        let stat = "cpu  1 2 3 4 5 6 7 99 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 42 0 0\n";
        assert_eq!(proc_stat_steal(stat, 1), Some(42));
        assert_eq!(proc_stat_steal(stat, 0), Some(8));
        assert_eq!(proc_stat_steal(stat, 2), None);
    }
}
