//! The whole run, in order: compile the programs; on the LWK side find the
//! tools, clear leftovers of a crashed run, time boots, boot the benchmark
//! partition, run every benchmark under mcexec, shut it down; then run the
//! same programs natively pinned to the same CPU; then the table, the
//! Markdown report and the plots.

use crate::bench::gups::Mode;
use crate::bench::syscall::OPS;
use crate::bench::{self, outcome, Ctx, Outcome};
use crate::config::Options;
use crate::partition::Node;
use crate::report::{self, Row, SideResults, Verdict};
use crate::runner::Runner;
use crate::{interrupt, plot, programs, tools};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

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
    interrupt::install().context("installing signal handlers")?;
    let out = o.out_dir();
    let raw_dir = out.join("raw");
    std::fs::create_dir_all(&raw_dir).with_context(|| format!("creating {}", raw_dir.display()))?;
    let out = out.canonicalize()?;
    let raw_dir = raw_dir.canonicalize()?;
    let progs = programs::build(&programs::source_dir(), &out.join("bin"))?;
    let ctx = Ctx { opts: o, progs: &progs, raw_dir };
    let cpu = o.cpu();
    eprintln!("mck-bench: benchmark CPU {cpu}, output in {}", out.display());

    let (lwk, boots) = if o.linux_only {
        (None, Vec::new())
    } else {
        let (l, b) = lwk_phase(o, &ctx)?;
        (Some(l), b)
    };

    eprintln!("mck-bench: Linux side, pinned to CPU {cpu}");
    let linux = run_side(&Runner::linux(cpu), &ctx, &LINUX_GUPS, None)?;

    let boot_sizes: &[String] = if o.linux_only { &[] } else { &o.boot_sizes };
    let rows = report::rows(lwk.as_ref(), Some(&linux), &boots, boot_sizes);
    print!("\n{}", report::console_table(&rows));
    let problems = report::problems(&rows);
    for p in &problems {
        println!("  problem: {p}");
    }

    let mut plot_notes = Vec::new();
    fn fwq_of(s: Option<&SideResults>) -> Option<&crate::bench::fwq::FwqResult> {
        s.and_then(|s| s.fwq.as_ref().ok())
    }
    if let Err(e) = plot::fwq(&out.join("fwq.png"), fwq_of(lwk.as_ref()), fwq_of(Some(&linux))) {
        plot_notes.push(format!("fwq.png not written: {e:#}"));
    }
    if let Err(e) = plot::latencies(&out.join("latency.png"), lwk.as_ref(), Some(&linux)) {
        plot_notes.push(format!("latency.png not written: {e:#}"));
    }
    if let Err(e) = plot::memory(&out.join("memory.png"), lwk.as_ref(), Some(&linux)) {
        plot_notes.push(format!("memory.png not written: {e:#}"));
    }
    for n in &plot_notes {
        eprintln!("mck-bench: WARNING: {n}");
    }

    let md = markdown(o, &rows, lwk.as_ref(), &linux, &boots, &problems, &plot_notes);
    let report_path = out.join("report.md");
    std::fs::write(&report_path, md).with_context(|| format!("writing {}", report_path.display()))?;
    println!("\nreport: {} (plots fwq.png, latency.png, memory.png beside it)", report_path.display());
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
    println!("targets: {} met, {} missed, {} rows with errors", s.passed, s.missed, s.errors);
    Ok(s)
}

/// Boot timings and the LWK side. Errors that only affect measurements are
/// recorded in the results; an interrupt ends the run (after the guards
/// have released the partition).
fn lwk_phase(o: &Options, ctx: &Ctx) -> Result<(SideResults, Vec<Outcome<bench::boot::BootResult>>)> {
    let fail_all = |why: String| {
        let boots = o.boot_sizes.iter().map(|_| Err(why.clone())).collect();
        (SideResults::failed(&why, &LWK_GUPS), boots)
    };
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/kvm").exists() {
        return Ok(fail_all(
            "the LWK side needs root and /dev/kvm (run as root, or pass --linux-only)".into(),
        ));
    }
    let tools = match tools::locate(o.prefix.as_deref(), !o.no_build) {
        Ok(t) => t,
        Err(e) => return Ok(fail_all(format!("{e:#}"))),
    };
    eprintln!("mck-bench: tools: {} (runtime dir {})", tools.mcreboot.display(), o.runtime_dir.display());
    let node = Node::new(tools, &o.runtime_dir);
    if node.has_leftovers() {
        eprintln!("mck-bench: {} holds state of an earlier run; running mcstop+release", o.runtime_dir.display());
        if let Err(e) = node.stop_release() {
            return Ok(fail_all(format!("cleaning up the earlier run's partition failed: {e:#}")));
        }
    }
    let cpu = o.cpu().to_string();

    let mut boots = Vec::new();
    for size in &o.boot_sizes {
        eprintln!("mck-bench: boot time, mcreboot -c {cpu} -m {size}");
        boots.push(outcome(bench::boot::run(&node, &cpu, size, o.boot_reps)));
        stop_if_interrupted()?;
    }

    let mcexec = match node.mcexec(&o.mcexec_args) {
        Ok(m) => m,
        Err(why) => return Ok((SideResults::failed(&why, &LWK_GUPS), boots)),
    };
    eprintln!("mck-bench: LWK side, mcreboot -c {cpu} -m {}", o.lwk_mem);
    let lwk = match node.boot(&cpu, &o.lwk_mem) {
        Err(e) => SideResults::failed(&format!("booting the benchmark partition: {e:#}"), &LWK_GUPS),
        Ok((partition, t)) => {
            eprintln!("  RUNNING after {:.3} s", t.as_secs_f64());
            let runner = Runner::lwk(o.cpu(), mcexec);
            let r = run_side(&runner, ctx, &LWK_GUPS, Some(&node))?;
            partition.shutdown().context("shutting down the benchmark partition")?;
            r
        }
    };
    Ok((lwk, boots))
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
            match node.status() {
                Ok(s) if s == "RUNNING" => {}
                Ok(s) => self.dead = Some(format!("the partition is {s} after an earlier failure")),
                Err(e) => self.dead = Some(format!("the partition's status is unknown: {e:#}")),
            }
        }
        Ok(outcome(res))
    }
}

/// Every benchmark on one side, FWQ first (on a CPU that has been idle).
fn run_side(r: &Runner, ctx: &Ctx, gups_modes: &[Mode], node: Option<&Node>) -> Result<SideResults> {
    let mut st = Stepper { node, dead: None };
    let fwq = st.run(|| bench::fwq::run(r, ctx))?;
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
    Ok(SideResults { fwq, stream, gups, syscalls, launch_ms })
}

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn markdown(
    o: &Options,
    rows: &[Row],
    lwk: Option<&SideResults>,
    linux: &SideResults,
    boots: &[Outcome<bench::boot::BootResult>],
    problems: &[String],
    plot_notes: &[String],
) -> String {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ws = ws.to_string_lossy();
    let commit = command_line("git", &["-C", &ws, "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "no commit".into());
    let dirty = command_line("git", &["-C", &ws, "status", "--porcelain"])
        .is_some_and(|s| !s.is_empty());
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let kernel = command_line("uname", &["-r"]).unwrap_or_default();
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let cpu = o.cpu();
    let mut s = String::new();
    s += "# Performance report: the LWK against Linux\n\n";
    s += &format!(
        "Made by `cargo bench -p mck-bench` on {date}: {}, {} online CPUs, Linux {kernel}, commit {commit}{}.\n\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if dirty { " with local changes" } else { "" }
    );
    if o.linux_only {
        s += "**Linux only** (`--linux-only`): no partition was booted, the LWK columns are empty.\n\n";
    } else {
        s += &format!(
            "LWK: a partition booted with `mcreboot -c {cpu} -m {}` (pin isolation), every program run under \
             `mcexec{}`. Linux: after `mcstop+release`, the same static binaries run natively, pinned to CPU {cpu} \
             with sched_setaffinity. ",
            o.lwk_mem,
            o.mcexec_args.iter().map(|a| format!(" {a}")).collect::<String>()
        );
    }
    s += "Values are medians: over runs (FWQ), over timed iterations (STREAM, GUPS), over calls (system calls), over launches and boots.";
    if o.quick {
        s += " **Quick mode**: small sizes, the numbers mean little.";
    }
    s += "\n\n";
    s += &report::markdown_table(rows);
    s += "\nTargets (issue 5): FWQ noise of the LWK at most a fifth of Linux's; STREAM at least 0.98x; GUPS at least \
          1.3x Linux with transparent huge pages off for the table and 1.0x with them on; system calls answered by \
          the LWK at or below native; the offloaded round trip 2 us or less; launch overhead 5 ms or less. \
          getpid and getppid are answered by the LWK itself (ARCHITECTURE.md section 5), so the offloaded round trip \
          is measured with fcntl(F_GETFL) on a /dev/null descriptor, a call that is always offloaded and cheap on Linux.\n";
    if !problems.is_empty() || !plot_notes.is_empty() {
        s += "\n## Problems\n\n";
        for p in problems.iter().chain(plot_notes) {
            s += &format!("- {}\n", p.replace('\n', " "));
        }
    }

    s += "\n## FWQ\n\n![FWQ trace of the LWK and Linux](fwq.png)\n\n";
    s += &format!(
        "{} runs of {} quanta of {} loop iterations per side; the plot and this table show each side's median-noise run.\n\n",
        o.fwq_runs, o.fwq_samples, o.fwq_work
    );
    s += "| side | min (us) | max (us) | max/min | stddev (us) | noise % |\n|---|--:|--:|--:|--:|--:|\n";
    for (name, side) in [("LWK", lwk), ("Linux", Some(linux))] {
        if let Some(Ok(f)) = side.map(|x| &x.fwq) {
            let r = f.representative().stats;
            s += &format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                report::num(r.summary.min),
                report::num(r.summary.max),
                report::num(r.max_over_min),
                report::num(r.summary.stddev),
                report::num(r.noise_pct)
            );
        }
    }

    s += "\n## System calls and launch\n\n![Latency distributions](latency.png)\n\n";
    s += &format!(
        "{} timed calls per operation (each timed alone with the TSC), {} launches per side. \
         Percentiles in ns:\n\n| call | side | p50 | p99 | max |\n|---|---|--:|--:|--:|\n",
        o.syscall_iters, o.launch_reps
    );
    for op in OPS {
        for (name, side) in [("LWK", lwk), ("Linux", Some(linux))] {
            if let Some(Some(Ok(r))) = side.map(|x| x.syscall(op.arg)) {
                if let Some(sum) = crate::stats::Summary::of(&r.lat_ns) {
                    s += &format!(
                        "| {} | {name} | {} | {} | {} |\n",
                        op.label,
                        report::num(sum.median),
                        report::num(sum.p99),
                        report::num(sum.max)
                    );
                }
            }
        }
    }

    s += "\n## Memory\n\n![STREAM and GUPS](memory.png)\n\n";
    s += &format!(
        "STREAM: three arrays of {} doubles ({} MiB each), {} repetitions, the first one untimed. \
         GUPS: a table of 2^{} words ({} MiB), {} rounds of {} updates. \
         Linux transparent huge pages: `{}` system-wide (not changed); the table's setting is chosen by gups.c \
         with madvise.\n\n",
        o.stream_n(),
        (o.stream_n() * 8) >> 20,
        o.stream_ntimes,
        o.gups_log2,
        (8u64 << o.gups_log2) >> 20,
        o.gups_rounds,
        o.gups_updates,
        thp.trim()
    );
    s += "| GUPS run | GUP/s | huge pages in the table (kB) | checksum |\n|---|--:|--:|---|\n";
    let gups_rows = lwk
        .map(|l| l.gups.iter().map(|g| ("LWK", g)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(linux.gups.iter().map(|g| ("Linux", g)));
    for (side, (mode, res)) in gups_rows {
        if let Ok(g) = res {
            s += &format!(
                "| {side} {} | {} | {} | {} |\n",
                mode.arg(),
                report::num(g.median()),
                g.thp_kb.map_or("n/a".into(), |k| k.to_string()),
                g.checksum
            );
        }
    }

    if !boots.is_empty() {
        s += "\n## Boot\n\n`mcreboot` started to `ihkosctl 0 get status` printing RUNNING, each followed by `mcstop+release`.\n\n";
        s += "| size | boots (s) |\n|---|---|\n";
        for (size, b) in o.boot_sizes.iter().zip(boots) {
            let v = match b {
                Ok(b) => b.secs.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", "),
                Err(_) => "error".into(),
            };
            s += &format!("| {size} | {v} |\n");
        }
    }
    s
}

/// Copies the report and plots to `benches/results/`, the copy the README shows.
fn publish(out: &Path) -> Result<()> {
    let dest: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dest)?;
    for f in ["report.md", "fwq.png", "latency.png", "memory.png"] {
        let src = out.join(f);
        if src.is_file() {
            std::fs::copy(&src, dest.join(f)).with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
        }
    }
    println!("published to {}", dest.display());
    Ok(())
}
