//! The whole run, in order: compile the programs; on the LWK side find the
//! tools, take the workspace's partition lock, clear leftovers of a crashed
//! run, time boots, boot the benchmark partition, run every single-CPU
//! benchmark under mcexec, shut it down, boot the 2-CPU partition, run the
//! thread benchmarks, shut it down, boot a 1-CPU partition with
//! allow_oversubscribe for the MPI overlap benchmark (without and with
//! mpi-shim's progress thread), shut it down, release the lock (FWQ runs
//! first on the booted partition, LWK and Linux alternately); then run the
//! same programs natively pinned to the same CPU (and to the same two CPUs
//! for the thread benchmarks); then the table, the Markdown report and the
//! plots. `--only` restricts the run to one of the phases.

use crate::bench::fwq::{FwqResult, Observer};
use crate::bench::gups::Mode;
use crate::bench::mpi::{Copy as MpiCopy, MpiSide};
use crate::bench::overlap::{OverlapSide, Setup as OverlapSetup};
use crate::bench::syscall::OPS;
use crate::bench::threads::{Mode as ThreadMode, ThreadSide};
use crate::bench::{self, outcome, Ctx, Outcome};
use crate::config::{Options, Phase};
use crate::partition::Node;
use crate::report::{self, RunResults, SideResults, Verdict};
use crate::runner::{is_killed, Health, Runner};
use crate::{affinity, interrupt, lock, markdown, plot, programs, tools};
use anyhow::{bail, Context, Result};
use nix::sched::CpuSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// How the run went, for the exit status.
#[derive(Debug, Default)]
pub struct Summary {
    pub passed: usize,
    pub missed: usize,
    pub errors: usize,
}

impl Summary {
    /// 0 when every benchmark ran (targets missed or not), 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

const LINUX_GUPS: [Mode; 2] = [Mode::NoHuge, Mode::Huge];
const LWK_GUPS: [Mode; 1] = [Mode::Default];

pub fn run(o: &Options) -> Result<Summary> {
    let single = o.runs(Phase::SingleCpu);
    let fwq = o.runs(Phase::Fwq);
    let part = o.runs_single_cpu_partition();
    let threads = o.runs(Phase::Threads);
    let overlap = o.runs(Phase::Overlap);
    // The affinity the harness started with: the thread phases (two CPUs)
    // run with it, the single-CPU phases keep the harness off their CPU.
    let all_cpus = affinity::current()?;
    if part {
        keep_off_cpu(o.cpu())?;
    }
    interrupt::install().context("installing signal handlers")?;
    let out = o.out_dir();
    let raw_dir = out.join("raw");
    std::fs::create_dir_all(&raw_dir).with_context(|| format!("creating {}", raw_dir.display()))?;
    let out = out.canonicalize()?;
    let raw_dir = raw_dir.canonicalize()?;
    let progs = programs::build(&programs::source_dir(), &out.join("bin"))?;
    let ctx = Ctx {
        opts: o,
        progs: &progs,
        raw_dir,
    };
    let cpu = o.cpu();
    if part {
        eprintln!(
            "mck-bench: benchmark CPU {cpu}, output in {}",
            out.display()
        );
    }
    if threads {
        eprintln!(
            "mck-bench: thread benchmark CPUs {}, output in {}",
            o.thread_cpus,
            out.display()
        );
    }

    // The overlap program and the shim, for both sides (or why not).
    let overlap_setup = overlap.then(|| {
        bench::overlap::setup(&out.join("bin"), o.prefix.as_deref(), !o.no_build && !o.linux_only)
            .map_err(|e| format!("{e:#}"))
    });

    let (mut res, linux_fwq) = if o.linux_only {
        (RunResults::default(), None)
    } else {
        lwk_phases(o, &ctx, &all_cpus, overlap_setup.as_ref())?
    };

    if part {
        keep_off_cpu(cpu)?;
        eprintln!("mck-bench: Linux side, pinned to CPU {cpu}");
        let r = Runner::linux(cpu);
        // FWQ ran alternately with the LWK's while the partition was up.
        let fwq = match linux_fwq {
            Some(f) => f,
            None => outcome(bench::fwq::run(&r, &ctx, &Observer::Linux { cpu })),
        };
        res.linux = Some(if single {
            run_side(&r, &ctx, &LINUX_GUPS, None, fwq)?
        } else {
            SideResults::fwq_only(fwq, &LINUX_GUPS)
        });
    }
    if threads {
        affinity::set(&all_cpus)?;
        eprintln!(
            "mck-bench: Linux side of the thread benchmarks, pinned to CPUs {}",
            o.thread_cpus
        );
        res.linux_threads = Some(run_threads(
            &Runner::linux_on(&o.thread_cpus()),
            &ctx,
            None,
        )?);
    }

    if let Some(setup) = &overlap_setup {
        affinity::set(&all_cpus)?;
        keep_off_cpu(cpu)?;
        eprintln!("mck-bench: Linux side of the MPI overlap benchmark, ranks pinned to CPU {cpu}");
        res.linux_overlap = Some(match setup {
            Ok(s) => run_overlap(&Runner::linux(cpu), o, s, None, &all_cpus)?,
            Err(why) => OverlapSide::failed(why),
        });
    }

    let boot_sizes: &[String] = if o.linux_only { &[] } else { &o.boot_sizes };
    let rows = report::all_rows(&res, boot_sizes, single, fwq, threads);
    print!("\n{}", report::console_table(&rows));
    let problems = report::problems(&rows);
    for p in &problems {
        println!("  problem: {p}");
    }

    let mut plot_notes = Vec::new();
    let mut written = Vec::new();
    if let Some(linux) = res.linux.as_ref() {
        let lwk = res.lwk.as_ref();
        fn fwq_of(s: Option<&SideResults>) -> Option<&crate::bench::fwq::FwqResult> {
            s.and_then(|s| s.fwq.as_ref().ok())
        }
        if let Err(e) = plot::fwq(&out.join("fwq.png"), fwq_of(lwk), fwq_of(Some(linux))) {
            plot_notes.push(format!("fwq.png not written: {e:#}"));
        }
        if let Err(e) = plot::latencies(&out.join("latency.png"), lwk, Some(linux)) {
            plot_notes.push(format!("latency.png not written: {e:#}"));
        }
        if let Err(e) = plot::memory(&out.join("memory.png"), lwk, Some(linux)) {
            plot_notes.push(format!("memory.png not written: {e:#}"));
        }
        written.push("plots fwq.png, latency.png, memory.png beside it");
    }
    for n in &plot_notes {
        eprintln!("mck-bench: WARNING: {n}");
    }

    let md = markdown::report(o, &rows, &res, &problems, &plot_notes);
    let report_path = out.join("report.md");
    std::fs::write(&report_path, md)
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!(
        "\nreport: {}{}",
        report_path.display(),
        written
            .iter()
            .map(|w| format!(" ({w})"))
            .collect::<String>()
    );
    if o.publish {
        publish(&out)?;
    }

    let mut s = Summary::default();
    for r in &rows {
        match r.verdict() {
            Verdict::Pass => s.passed += 1,
            Verdict::Miss => s.missed += 1,
            Verdict::Error => s.errors += 1,
            Verdict::Info | Verdict::NoData => {}
        }
    }
    println!(
        "targets: {} met, {} missed, {} rows with errors",
        s.passed, s.missed, s.errors
    );
    Ok(s)
}

/// Keeps the harness (and the tools it starts unpinned) off `cpu`.
fn keep_off_cpu(cpu: usize) -> Result<()> {
    match affinity::keep_off(cpu)? {
        Some(cpus) => eprintln!("mck-bench: the harness and mcexec run on CPUs {cpus:?}"),
        None => eprintln!(
            "mck-bench: WARNING: CPU {cpu} is the only CPU allowed; the harness shares it"
        ),
    }
    Ok(())
}

/// The LWK side of every phase this run includes, holding the workspace's
/// partition lock from the first partition to after the last. Errors that
/// only affect measurements are recorded in the results; an interrupt ends
/// the run (after the guards have released the partition).
fn lwk_phases(
    o: &Options,
    ctx: &Ctx,
    all_cpus: &CpuSet,
    overlap: Option<&std::result::Result<OverlapSetup, String>>,
) -> Result<(RunResults, Option<Outcome<FwqResult>>)> {
    let single = o.runs(Phase::SingleCpu);
    let part = o.runs_single_cpu_partition();
    let threads = o.runs(Phase::Threads);
    let fail_all = |why: String| RunResults {
        lwk: part.then(|| SideResults::failed(&why, &LWK_GUPS)),
        boots: if single {
            o.boot_sizes.iter().map(|_| Err(why.clone())).collect()
        } else {
            Vec::new()
        },
        lwk_threads: threads.then(|| ThreadSide::failed(&why)),
        lwk_overlap: overlap.map(|_| OverlapSide::failed(&why)),
        ..Default::default()
    };
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/kvm").exists() {
        return Ok((
            fail_all(
                "the LWK side needs root and /dev/kvm (run as root, or pass --linux-only)".into(),
            ),
            None,
        ));
    }
    let tools = match tools::locate(o.prefix.as_deref(), !o.no_build) {
        Ok(t) => t,
        Err(e) => return Ok((fail_all(format!("{e:#}")), None)),
    };
    eprintln!(
        "mck-bench: tools: {} (runtime dir {})",
        tools.mcreboot.display(),
        o.runtime_dir.display()
    );
    // Held until this function returns: every partition is gone by then.
    let _lock = lock::acquire()?;
    let node = Node::new(tools, &o.runtime_dir);
    if node.has_leftovers() {
        eprintln!(
            "mck-bench: {} holds state of an earlier run; running mcstop+release",
            o.runtime_dir.display()
        );
        if let Err(e) = node.stop_release() {
            return Ok((
                fail_all(format!(
                    "cleaning up the earlier run's partition failed: {e:#}"
                )),
                None,
            ));
        }
    }
    let mut res = RunResults::default();
    let mut linux_fwq = None;
    if part {
        let (lwk, boots, fwq) = single_cpu_phase(o, ctx, &node)?;
        res.lwk = Some(lwk);
        res.boots = boots;
        linux_fwq = fwq;
        check_restored(o, &node)?;
    }
    if threads {
        affinity::set(all_cpus)?;
        res.lwk_threads = Some(threads_phase(o, ctx, &node)?);
        check_restored(o, &node)?;
    }
    if let Some(setup) = overlap {
        affinity::set(all_cpus)?;
        res.lwk_overlap = Some(overlap_phase(o, setup, &node, all_cpus)?);
        check_restored(o, &node)?;
    }
    Ok((res, linux_fwq))
}

/// The MPI overlap benchmark on a 1-CPU partition with allow_oversubscribe
/// (`mcreboot -c <cpu> -O`): both ranks on its CPU, the progress threads on
/// the Linux CPUs.
fn overlap_phase(
    o: &Options,
    setup: &std::result::Result<OverlapSetup, String>,
    node: &Node,
    all_cpus: &CpuSet,
) -> Result<OverlapSide> {
    let setup = match setup {
        Ok(s) => s,
        Err(why) => return Ok(OverlapSide::failed(why)),
    };
    let mcexec = match node.mcexec(&o.mcexec_args) {
        Ok(m) => m,
        Err(why) => return Ok(OverlapSide::failed(&why)),
    };
    let cpu = o.cpu().to_string();
    eprintln!(
        "mck-bench: LWK MPI overlap, mcreboot -c {cpu} -m {} -O",
        o.thread_mem
    );
    let side = match node.boot_with(&cpu, &o.thread_mem, &["-O"]) {
        Err(e) => OverlapSide::failed(&format!("booting the overlap partition: {e:#}")),
        Ok((partition, t)) => {
            eprintln!("  RUNNING after {:.3} s", t.as_secs_f64());
            let runner = Runner::lwk(o.cpu(), mcexec, Some(health_of(node)));
            let r = run_overlap(&runner, o, setup, Some(node), all_cpus)?;
            partition
                .shutdown()
                .context("shutting down the overlap partition")?;
            r
        }
    };
    Ok(side)
}

/// The overlap benchmark without, then with mpi-shim's progress thread, on
/// one side. Native progress threads go to the CPUs of `all_cpus` other
/// than the ranks' CPU.
fn run_overlap(
    r: &Runner,
    o: &Options,
    setup: &OverlapSetup,
    node: Option<&Node>,
    all_cpus: &CpuSet,
) -> Result<OverlapSide> {
    let others: Vec<String> = (0..CpuSet::count())
        .filter(|&c| c != o.cpu() && all_cpus.is_set(c).unwrap_or(false))
        .map(|c| c.to_string())
        .collect();
    let others = if others.is_empty() { o.cpu().to_string() } else { others.join(",") };
    let mut st = Stepper { node, dead: None };
    let mut one = |shim: bool| {
        st.run(|| {
            bench::overlap::run(r, setup, o.overlap_reps, &o.overlap_single_copy, shim, &others)
        })
    };
    let none = one(false)?;
    let shim = one(true)?;
    Ok(OverlapSide { none, shim })
}

/// After mcstop+release nothing of the partition may be left.
fn check_restored(o: &Options, node: &Node) -> Result<()> {
    if node.has_leftovers() {
        bail!(
            "after mcstop+release, {} still holds partition state (ihkd.pid, sockets or journal): \
             the node is not restored, so Linux would not be measured on a clean node",
            o.runtime_dir.display()
        );
    }
    Ok(())
}

/// Kills an LWK program at once when its partition has died.
fn health_of(node: &Node) -> Health {
    let watched = node.clone();
    Arc::new(move || match watched.status() {
        Ok(s) if matches!(s.as_str(), "PANIC" | "HUNGUP" | "SHUTDOWN" | "INACTIVE") => {
            Some(format!("the partition is {s}"))
        }
        _ => None,
    })
}

/// Saves the LWK's kernel log, for whoever reads a failure.
fn save_kmsg(node: &Node, file: &Path) {
    match node.kmsg() {
        Ok(text) => {
            if let Err(e) = std::fs::write(file, text) {
                eprintln!("mck-bench: WARNING: writing {}: {e}", file.display());
            }
        }
        Err(e) => eprintln!("mck-bench: WARNING: no LWK kernel log: {e:#}"),
    }
}

/// Boot timings and the single-CPU benchmarks on the LWK (or FWQ alone
/// with `--only fwq`); FWQ runs alternately on the LWK and natively on
/// the same CPU while the partition is up (its CPU halted in between),
/// and the native runs are returned too.
#[allow(clippy::type_complexity)]
fn single_cpu_phase(
    o: &Options,
    ctx: &Ctx,
    node: &Node,
) -> Result<(
    SideResults,
    Vec<Outcome<bench::boot::BootResult>>,
    Option<Outcome<FwqResult>>,
)> {
    let single = o.runs(Phase::SingleCpu);
    let cpu = o.cpu().to_string();
    let mut boots = Vec::new();
    for size in o.boot_sizes.iter().filter(|_| single) {
        eprintln!("mck-bench: boot time, mcreboot -c {cpu} -m {size}");
        boots.push(outcome(bench::boot::run(node, &cpu, size, o.boot_reps)));
        stop_if_interrupted()?;
    }

    let mcexec = match node.mcexec(&o.mcexec_args) {
        Ok(m) => m,
        Err(why) => return Ok((SideResults::failed(&why, &LWK_GUPS), boots, None)),
    };
    eprintln!("mck-bench: LWK side, mcreboot -c {cpu} -m {}", o.lwk_mem);
    let (lwk, linux_fwq) = match node.boot(&cpu, &o.lwk_mem) {
        Err(e) => (
            SideResults::failed(
                &format!("booting the benchmark partition: {e:#}"),
                &LWK_GUPS,
            ),
            None,
        ),
        Ok((partition, t)) => {
            eprintln!("  RUNNING after {:.3} s", t.as_secs_f64());
            let runner = Runner::lwk(o.cpu(), mcexec, Some(health_of(node)));
            let native = Runner::linux(o.cpu());
            eprintln!("mck-bench: FWQ, {} runs per side, LWK and Linux alternately", o.fwq_runs);
            let (lwk_fwq, linux_fwq) = bench::fwq::alternating(
                (&runner, &Observer::Lwk { node, cpu: o.cpu() }),
                (&native, &Observer::Linux { cpu: o.cpu() }),
                ctx,
            );
            stop_if_interrupted()?;
            let lwk_fwq = outcome(lwk_fwq);
            let r = if single {
                run_side(&runner, ctx, &LWK_GUPS, Some(node), lwk_fwq)?
            } else {
                SideResults::fwq_only(lwk_fwq, &LWK_GUPS)
            };
            save_kmsg(node, &ctx.raw_dir.join("lwk-kmsg.txt"));
            partition
                .shutdown()
                .context("shutting down the benchmark partition")?;
            (r, Some(outcome(linux_fwq)))
        }
    };
    Ok((lwk, boots, linux_fwq))
}

/// The thread benchmarks on a 2-CPU partition (`mcreboot -c <thread-cpus>`).
fn threads_phase(o: &Options, ctx: &Ctx, node: &Node) -> Result<ThreadSide> {
    let mcexec = match node.mcexec(&o.mcexec_args) {
        Ok(m) => m,
        Err(why) => return Ok(ThreadSide::failed(&why)),
    };
    eprintln!(
        "mck-bench: LWK threads, mcreboot -c {} -m {}",
        o.thread_cpus, o.thread_mem
    );
    let side = match node.boot(&o.thread_cpus, &o.thread_mem) {
        Err(e) => ThreadSide::failed(&format!("booting the 2-CPU partition: {e:#}")),
        Ok((partition, t)) => {
            eprintln!("  RUNNING after {:.3} s", t.as_secs_f64());
            let first = o.thread_cpus()[0];
            let runner = Runner::lwk(first, mcexec, Some(health_of(node)));
            let r = run_threads(&runner, ctx, Some(node))?;
            save_kmsg(node, &ctx.raw_dir.join("lwk-threads-kmsg.txt"));
            partition
                .shutdown()
                .context("shutting down the 2-CPU partition")?;
            r
        }
    };
    Ok(side)
}

fn stop_if_interrupted() -> Result<()> {
    if interrupt::requested() {
        bail!("stopped by a signal");
    }
    Ok(())
}

/// Runs benchmarks one after the other. On the LWK side, after a failure
/// the partition's status is checked and, unless it is still RUNNING, the
/// remaining benchmarks are skipped with that reason.
struct Stepper<'a> {
    node: Option<&'a Node>,
    dead: Option<String>,
}

impl Stepper<'_> {
    /// The benchmark's outcome; Err only when the run must stop (a signal).
    fn run<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<Outcome<T>> {
        if let Some(why) = &self.dead {
            return Ok(Err(format!("skipped: {why}")));
        }
        let res = f();
        stop_if_interrupted()?;
        if let (Err(e), Some(node)) = (&res, self.node) {
            eprintln!("  failed: {e:#}");
            if is_killed(e) {
                // A hung or dead LWK program: do not wait for the next one too.
                self.dead = Some("an earlier LWK benchmark was killed".to_string());
                return Ok(outcome(res));
            }
            match node.status() {
                Ok(s) if s == "RUNNING" => {}
                Ok(s) => self.dead = Some(format!("the partition is {s} after an earlier failure")),
                Err(e) => self.dead = Some(format!("the partition's status is unknown: {e:#}")),
            }
        }
        Ok(outcome(res))
    }
}

/// Every benchmark on one side but FWQ (`fwq`: its runs, made first).
fn run_side(
    r: &Runner,
    ctx: &Ctx,
    gups_modes: &[Mode],
    node: Option<&Node>,
    fwq: Outcome<FwqResult>,
) -> Result<SideResults> {
    let mut st = Stepper { node, dead: None };
    if fwq.is_err() {
        // A failed FWQ tells whether the partition is still usable.
        let _ = st.run(|| fwq.clone().map_err(anyhow::Error::msg))?;
    }
    let mut syscalls = Vec::new();
    for op in OPS {
        syscalls.push((op, st.run(|| bench::syscall::run(r, ctx, op))?));
    }
    let launch_ms = st.run(|| bench::launch::run(r, ctx))?;
    let stream = st.run(|| bench::stream::run(r, ctx))?;
    let mut gups = Vec::new();
    for &mode in gups_modes {
        gups.push((mode, st.run(|| bench::gups::run(r, ctx, mode))?));
    }
    Ok(SideResults {
        fwq,
        stream,
        gups,
        syscalls,
        launch_ms,
    })
}

/// Thread create+join, the futex ping-pong, then the MPI ping-pong (vader's
/// default copy, then shared memory only), on one side.
fn run_threads(r: &Runner, ctx: &Ctx, node: Option<&Node>) -> Result<ThreadSide> {
    let mut st = Stepper { node, dead: None };
    let create = st.run(|| bench::threads::run(r, ctx, ThreadMode::Create))?;
    let pingpong = st.run(|| bench::threads::run(r, ctx, ThreadMode::PingPong))?;
    let default = st.run(|| bench::mpi::run(r, ctx, MpiCopy::Default))?;
    let shared_only = st.run(|| bench::mpi::run(r, ctx, MpiCopy::SharedOnly))?;
    Ok(ThreadSide {
        create,
        pingpong,
        mpi: MpiSide {
            default,
            shared_only,
        },
    })
}

/// Copies the report and plots to `benches/results/`, the copy the README shows.
fn publish(out: &Path) -> Result<()> {
    let dest: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dest)?;
    for f in ["report.md", "fwq.png", "latency.png", "memory.png"] {
        let src = out.join(f);
        if src.is_file() {
            std::fs::copy(&src, dest.join(f))
                .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
        }
    }
    println!("published to {}", dest.display());
    Ok(())
}
