//! report.md: the table of `report.rs` with the run's context (machine,
//! commit, options) and per-benchmark details beside the plots.

use crate::bench::syscall::OPS;
use crate::bench::mpi::{MpiSide, PingPong};
use crate::bench::Outcome;
use crate::bench::threads::{ThreadSide, MODES};
use crate::config::{Options, Phase};
use crate::report::{self, Row, RunResults, SideResults};
use std::path::Path;
use std::process::Command;

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
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

/// The whole report in Markdown: header, table, problems, and one section
/// per benchmark family with its plot and details.
pub fn report(
    o: &Options,
    rows: &[Row],
    res: &RunResults,
    problems: &[String],
    plot_notes: &[String],
) -> String {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ws = ws.to_string_lossy();
    let commit = command_line("git", &["-C", &ws, "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "no commit".into());
    let dirty =
        command_line("git", &["-C", &ws, "status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let kernel = command_line("uname", &["-r"]).unwrap_or_default();
    let cpu = o.cpu();
    let mut s = String::new();
    s += "# Performance report: the LWK against Linux\n\n";
    s += &format!(
        "Made by `cargo bench -p mck-bench` on {date}: {}, {} online CPUs, Linux {kernel}, commit {commit}{}.\n\n",
        cpu_model(),
        crate::config::online_cpu_count().map_or("?".to_string(), |n| n.to_string()),
        if dirty { " with local changes" } else { "" }
    );
    let single = o.runs(Phase::SingleCpu);
    let fwq = o.runs(Phase::Fwq);
    let threads = o.runs(Phase::Threads);
    let mcexec = format!(
        "mcexec{}",
        o.mcexec_args
            .iter()
            .map(|a| format!(" {a}"))
            .collect::<String>()
    );
    if o.linux_only {
        s += "**Linux only** (`--linux-only`): no partition was booted, the LWK columns are empty.\n\n";
    } else if single || fwq {
        s += &format!(
            "LWK: a partition booted with `mcreboot -c {cpu} -m {}` (pin isolation), every program run under \
             `{mcexec}`. Linux: the same static binaries run natively, pinned to CPU {cpu} with \
             sched_setaffinity (FWQ alternately with the LWK's runs while the partition is up and its CPU \
             halted, the rest after `mcstop+release`). ",
            o.lwk_mem,
        );
    }
    if threads && !o.linux_only {
        s += &format!(
            "Threads: a 2-CPU partition booted with `mcreboot -c {} -m {}` (pin isolation; its vCPUs share \
             these CPUs with Linux), threads.c and the MPI ping-pong run under `{mcexec}`; natively pinned to CPUs {} with sched_setaffinity. ",
            o.thread_cpus, o.thread_mem, o.thread_cpus
        );
    }
    if let Some(p) = o.only {
        s += &format!(
            "Only the {} phase ran (`--only`). ",
            match p {
                Phase::SingleCpu => "single-CPU",
                Phase::Threads => "thread",
                Phase::Fwq => "FWQ",
                Phase::Overlap => "MPI overlap",
            }
        );
    }
    s += if single {
        "Values are medians: over runs (FWQ), over timed iterations (STREAM, GUPS, threads), over calls (system calls), over launches and boots."
    } else {
        "Values are medians over the timed iterations."
    };
    if o.quick {
        s += " **Quick mode**: small sizes, the numbers mean little.";
    }
    s += "\n\n";
    s += &report::markdown_table(rows);
    if single || fwq {
        s += "\nFWQ targets (issue 21): the LWK's noise and max/min at most Linux's, and its noise net of steal \
              time (time the host did not run the CPU) at most a fifth of Linux's net noise.\n";
    }
    if single {
        s += "\nTargets (issue 5): STREAM at least 0.98x; GUPS at least \
          1.3x Linux with transparent huge pages off for the table and 1.0x with them on; system calls answered by \
          the LWK at or below native; the offloaded round trip 2 us or less; launch overhead 5 ms or less. \
          getpid and getppid are answered by the LWK itself (ARCHITECTURE.md section 5), so the offloaded round trip \
          is measured with fcntl(F_GETFL) on a /dev/null descriptor, a call that is always offloaded and cheap on Linux.\n";
    }
    if threads {
        s += "\nThe thread rows (issue 12) have no target: they compare the LWK's thread creation and cross-CPU \
              futex wake-up with Linux's on the same two CPUs.\n";
    }
    if res.lwk_overlap.is_some() || res.linux_overlap.is_some() {
        overlap_section(&mut s, o, &res.lwk_overlap, &res.linux_overlap);
    }
    if !problems.is_empty() || !plot_notes.is_empty() {
        s += "\n## Problems\n\n";
        for p in problems.iter().chain(plot_notes) {
            s += &format!("- {}\n", p.replace('\n', " "));
        }
        if res.lwk.is_some() || res.lwk_threads.is_some() {
            s += "\nThe LWK's kernel logs of the partitions are in `raw/lwk-kmsg.txt` (single CPU) and \
                  `raw/lwk-threads-kmsg.txt` (threads) of the output directory.\n";
        }
    }
    if let Some(linux) = res.linux.as_ref().filter(|_| single || fwq) {
        fwq_section(&mut s, o, res.lwk.as_ref(), linux);
    }
    if let Some(linux) = res.linux.as_ref().filter(|_| single) {
        single_cpu_sections(&mut s, o, res.lwk.as_ref(), linux);
    }
    if threads {
        thread_section(
            &mut s,
            o,
            res.lwk_threads.as_ref(),
            res.linux_threads.as_ref(),
        );
    }
    if !res.boots.is_empty() {
        s += "\n## Boot\n\n`mcreboot` started to `ihkosctl 0 get status` printing RUNNING, each followed by `mcstop+release`.\n\n";
        s += "| size | boots (s) |\n|---|---|\n";
        for (size, b) in o.boot_sizes.iter().zip(&res.boots) {
            let v = match b {
                Ok(b) => b
                    .secs
                    .iter()
                    .map(|x| format!("{x:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(_) => "error".into(),
            };
            s += &format!("| {size} | {v} |\n");
        }
    }
    s
}

/// The MPI overlap benchmark: how it ran and its times.
fn overlap_section(
    s: &mut String,
    o: &Options,
    lwk: &Option<crate::bench::overlap::OverlapSide>,
    linux: &Option<crate::bench::overlap::OverlapSide>,
) {
    use crate::bench::overlap::{cpu_list, MIB};
    let cpu = o.cpu();
    *s += &format!(
        "\nMPI overlap (issue 18): `examples/mpi/overlap.c bench {MIB} {reps}`, two Open MPI ranks exchange {MIB} MiB with \
         MPI_Isend/Irecv (`btl_vader_single_copy_mechanism {copy}`), compute for about twice the exchange's time (at least \
         0.25 s) without calling MPI, then wait; overlap = (exchange + compute - both) / exchange, medians of {reps} repetitions, \
         0 = nothing hidden, 1 = all. Without a progress thread, then with mpi-shim's (`LD_PRELOAD=libmpishim.so \
         MPISHIM_ASYNC_PROGRESS=1`, created with uti_pthread_create). LWK: `mcreboot -c {cpu} -m {} -O` \
         (allow_oversubscribe: both ranks share the LWK CPU), `mpirun -n 2 mcexec --enable-uti`: the progress threads \
         run on the Linux CPUs. Linux: `mpirun --bind-to none` pinned to CPU {cpu} (both ranks on it), progress threads on the other CPUs (UTI_CPU_SET). \
         Both ranks share one CPU (on this 2-CPU machine the other one is Linux's, for the progress threads): \
         without a progress thread the exchange alone advances only when the ranks take turns, and a rank that \
         waits while the other computes moves the data meanwhile (Linux's scheduler switches every few \
         milliseconds, the LWK's every 10 ms), which a ratio above 0 without a thread shows.\n\n\
         | side | progress thread | exchange (ms) | compute (ms) | both (ms) | overlap | progress thread's CPUs |\n\
         |---|---|--:|--:|--:|--:|---|\n",
        o.thread_mem,
        reps = o.overlap_reps,
        copy = o.overlap_single_copy,
    );
    for (name, side) in [("LWK", lwk), ("Linux", linux)] {
        let Some(side) = side else { continue };
        for (what, r) in [("none", &side.none), ("mpi-shim", &side.shim)] {
            match r {
                Ok(r) => {
                    *s += &format!(
                        "| {name} | {what} | {:.2} | {:.2} | {:.2} | {:.3} | {} |\n",
                        r.comm_ms,
                        r.comp_ms,
                        r.total_ms,
                        r.ratio,
                        r.progress_cpus.map_or("-".to_string(), cpu_list)
                    )
                }
                Err(e) => *s += &format!("| {name} | {what} | error: {} | | | | |\n", e.replace('\n', " ")),
            }
        }
    }
}

/// The threads section: what was run and the percentiles.
fn thread_section(
    s: &mut String,
    o: &Options,
    lwk: Option<&ThreadSide>,
    linux: Option<&ThreadSide>,
) {
    *s += &format!(
        "\n## Threads\n\n`threads create`: up to {} pthread_create + pthread_join pairs of a thread that returns at once. \
         `threads pingpong`: up to {} round trips of a token between two threads pinned (pthread_setaffinity_np) to the \
         first two CPUs of the process's affinity mask, through one futex word: every wait is FUTEX_WAIT_PRIVATE \
         until the word changes (no spinning), so a round trip is two sleeps and two cross-CPU wake-ups. Each \
         benchmark stops after about {} s. Percentiles in us:\n\n| benchmark | side | iterations | p50 | p99 | max | CPUs |\n\
         |---|---|--:|--:|--:|--:|---|\n",
        o.thread_creates, o.thread_round_trips, o.thread_seconds
    );
    for m in MODES {
        for (name, side) in [("LWK", lwk), ("Linux", linux)] {
            if let Some(Ok(r)) = side.map(|x| x.get(m)) {
                if let Some(sum) = crate::stats::Summary::of(&r.lat_us) {
                    let cpus = match (r.cpus, r.ran_on) {
                        (Some((a, b)), Some((Some(_), Some(_)))) => {
                            format!("{a}, {b} (sched_getcpu agrees)")
                        }
                        (Some((a, b)), _) => format!("{a}, {b}"),
                        _ => "-".into(),
                    };
                    *s += &format!(
                        "| {} | {name} | {} | {} | {} | {} | {cpus} |\n",
                        m.label(),
                        sum.n,
                        report::num(sum.median),
                        report::num(sum.p99),
                        report::num(sum.max)
                    );
                }
            }
        }
    }
    *s += &format!(
        "\n`mpi-pingpong` (examples/mpi-rs, rsmpi against Open MPI): `mpirun.openmpi -n 2 mcexec -n 2` on the \
         partition, `mpirun.openmpi -n 2` natively; {} round trips per size after a warm-up, each message \
         checked and each timed with the TSC (rate calibrated against CLOCK_MONOTONIC over 200 ms, so no clock \
         system call is timed). Latency is half the median round trip of 8 bytes, bandwidth 1 MiB over half the \
         median round trip. Large messages go through vader's default single copy (CMA, process_vm_readv between the ranks, \
         a system call per message) or, with `btl_vader_single_copy_mechanism none`, through the shared-memory \
         segment only (user-mode copies, no system call).\n\n| run | side | 8 B latency us | 1 MiB MB/s | CPUs |\n\
         |---|---|--:|--:|---|\n",
        o.mpi_round_trips
    );
    for (run, pick) in [
        ("vader default", (|m: &MpiSide| &m.default) as fn(&MpiSide) -> &Outcome<PingPong>),
        ("shared memory only", |m: &MpiSide| &m.shared_only),
    ] {
        for (name, side) in [("LWK", lwk), ("Linux", linux)] {
            if let Some(Ok(p)) = side.map(|x| pick(&x.mpi)) {
                *s += &format!(
                    "| {run} | {name} | {} | {} | {}, {} |\n",
                    report::num(p.lat_us),
                    report::num(p.bw_mbs),
                    p.cpus.0,
                    p.cpus.1
                );
            }
        }
    }
}

/// The FWQ section: every run of both sides (alternately made), with its
/// steal time, and on the LWK where each stall over 100 us came from.
fn fwq_section(s: &mut String, o: &Options, lwk: Option<&SideResults>, linux: &SideResults) {
    use crate::bench::fwq::STALL_US;
    *s += "\n## FWQ\n\n![FWQ trace of the LWK and Linux](fwq.png)\n\n";
    *s += &format!(
        "{} runs of {} quanta of {} loop iterations per side, LWK and Linux alternately; the plot shows each \
         side's median-noise run, the table every run. Steal is the time the host did not run the CPU during \
         the run: on Linux the CPU's `steal` in /proc/stat (this machine's own hypervisor), on the LWK that \
         plus the vCPU's KVM steal time (the host's Linux running something else on the CPU), from \
         `ihkosctl 0 trace`. Net noise = (sum - steal - n*min) / (sum - steal).\n\n",
        o.fwq_runs, o.fwq_samples, o.fwq_work
    );
    *s += "| side | run | min (us) | max (us) | max/min | stddev (us) | noise % | steal (ms) | net noise % |\n\
           |---|--:|--:|--:|--:|--:|--:|--:|--:|\n";
    for (name, side) in [("LWK", lwk), ("Linux", Some(linux))] {
        if let Some(Ok(f)) = side.map(|x| &x.fwq) {
            for (i, r) in f.runs.iter().enumerate() {
                let st = r.stats;
                *s += &format!(
                    "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    i + 1,
                    report::num(st.summary.min),
                    report::num(st.summary.max),
                    report::num(st.max_over_min),
                    report::num(st.summary.stddev),
                    report::num(st.noise_pct),
                    report::num(r.steal_us / 1000.0),
                    report::num(r.net_noise_pct)
                );
            }
        }
    }
    *s += &format!(
        "\n### Where the stalls come from\n\nEvery quantum more than {STALL_US} us above its run's shortest. \
         On the LWK it is matched by TSC with the LWK's noise trace (`ihkosctl 0 trace`: every kernel entry \
         from user mode, its cause and duration): a stall during which the CPU entered the kernel is the \
         LWK's own, by cause. A stall without a kernel entry (natively: every stall) is then matched with \
         the host's scheduler: if the thread that runs the program (the LWK's vCPU thread, or the native \
         program) waited on its host run queue for at least half the stall (`run_delay` of its \
         /proc/<pid>/task/<tid>/schedstat, sampled every 0.2 ms), the host's Linux ran another task on the \
         CPU (for the LWK that is KVM steal time). The rest are host interrupts and this machine's own \
         hypervisor (its steal shows only in /proc/stat, in 10 ms units).\n\n\
         | side | run | stalls > {STALL_US} us | in LWK kernel entries (cause: stalls) | without kernel entry | \
         of which host preemption | other (ms above min) | longest other (us) | steal (ms) |\n\
         |---|--:|--:|---|--:|--:|--:|--:|--:|\n"
    );
    for (name, side) in [("LWK", lwk), ("Linux", Some(linux))] {
        let Some(Ok(f)) = side.map(|x| &x.fwq) else { continue };
        for (i, r) in f.runs.iter().enumerate() {
            let st = &r.stalls;
            let causes = if name == "Linux" {
                "-".to_string()
            } else if st.in_kernel.is_empty() {
                "none".to_string()
            } else {
                st.in_kernel.iter().map(|(c, (n, _))| format!("{c}: {n}")).collect::<Vec<_>>().join(", ")
            };
            *s += &format!(
                "| {name} | {} | {} | {causes} | {} | {} | {} | {} | {} |\n",
                i + 1,
                st.count,
                st.outside.0,
                st.preempted.0,
                report::num((st.outside.1 - st.preempted.1) / 1000.0),
                report::num(st.unexplained_max_us),
                report::num(r.steal_us / 1000.0)
            );
        }
    }
}

/// FWQ, system calls and memory: the single-CPU phase.
fn single_cpu_sections(
    s: &mut String,
    o: &Options,
    lwk: Option<&SideResults>,
    linux: &SideResults,
) {
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();


    *s += "\n## System calls and launch\n\n![Latency distributions](latency.png)\n\n";
    *s += &format!(
        "Up to {} timed calls per operation within about {} s (each call timed alone with the TSC), \
         {} launches per side. Percentiles in ns:\n\n| call | side | calls | p50 | p99 | max |\n\
         |---|---|--:|--:|--:|--:|\n",
        o.syscall_iters, o.syscall_seconds, o.launch_reps
    );
    for op in OPS {
        for (name, side) in [("LWK", lwk), ("Linux", Some(linux))] {
            if let Some(Some(Ok(r))) = side.map(|x| x.syscall(op.arg)) {
                if let Some(sum) = crate::stats::Summary::of(&r.lat_ns) {
                    *s += &format!(
                        "| {} | {name} | {} | {} | {} | {} |\n",
                        op.label,
                        sum.n,
                        report::num(sum.median),
                        report::num(sum.p99),
                        report::num(sum.max)
                    );
                }
            }
        }
    }

    *s += "\n## Memory\n\n![STREAM and GUPS](memory.png)\n\n";
    *s += &format!(
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
    *s += "| GUPS run | GUP/s | Linux THP in the table (kB) | checksum |\n|---|--:|--:|---|\n";
    let gups_rows = lwk
        .map(|l| l.gups.iter().map(|g| ("LWK", g)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(linux.gups.iter().map(|g| ("Linux", g)));
    for (side, (mode, res)) in gups_rows {
        if let Ok(g) = res {
            *s += &format!(
                "| {side} {} | {} | {} | {} |\n",
                mode.arg(),
                report::num(g.median()),
                // Under mcexec /proc/self is not the LWK's page table.
                match (side, g.thp_kb) {
                    ("Linux", Some(k)) => k.to_string(),
                    _ => "n/a".into(),
                },
                g.checksum
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::boot::BootResult;
    use crate::bench::fwq::{FwqResult, Run};
    use crate::bench::gups::{GupsResult, Mode};
    use crate::bench::stream::StreamResult;
    use crate::bench::syscall::SyscallResult;
    use crate::bench::threads::ThreadsResult;
    use crate::stats::Fwq;
    use clap::Parser;

    fn side(noise_spike: f64, gups: &[(Mode, f64)], fcntl_ns: f64) -> SideResults {
        let mut q = vec![10.0; 100];
        q[50] = noise_spike;
        SideResults {
            fwq: Ok(FwqResult {
                runs: vec![Run {
                    stats: Fwq::of(&q).unwrap(),
                    net_noise_pct: crate::stats::net_noise_pct(&q, 0.0).unwrap(),
                    steal_us: 0.0,
                    stalls: Default::default(),
                    quanta_us: q,
                }],
            }),
            stream: Ok(StreamResult {
                rates: vec![vec![1000.0]; 4],
                n: 10,
            }),
            gups: gups
                .iter()
                .map(|&(m, v)| {
                    (
                        m,
                        Ok(GupsResult {
                            gups: vec![v],
                            thp_kb: Some(0),
                            madvise_errno: 0,
                            checksum: "ab".into(),
                        }),
                    )
                })
                .collect(),
            syscalls: OPS
                .iter()
                .map(|&op| {
                    (
                        op,
                        Ok(SyscallResult {
                            lat_ns: vec![if op.arg == "fcntl" { fcntl_ns } else { 100.0 }],
                        }),
                    )
                })
                .collect(),
            launch_ms: Ok(vec![1.0, 2.0, 3.0]),
        }
    }

    #[test]
    fn report_has_table_verdicts_plots_and_details() {
        let o = Options::parse_from(["mck-bench", "--cpu", "1", "--stream-n", "10"])
            .resolve()
            .unwrap();
        let lwk = side(10.5, &[(Mode::Default, 2.0)], 2500.0);
        let linux = side(200.0, &[(Mode::NoHuge, 1.0), (Mode::Huge, 2.5)], 150.0);
        let boots = vec![
            Ok(BootResult {
                size: "512M".into(),
                secs: vec![0.5],
            }),
            Err("no".into()),
        ];
        let res = RunResults {
            lwk: Some(lwk),
            linux: Some(linux),
            boots,
            lwk_threads: Some(ThreadSide::failed("booting the 2-CPU partition: no")),
            linux_threads: Some(threads_side()),
            lwk_overlap: Some(crate::bench::overlap::OverlapSide {
                none: Ok(overlap(0.0, None)),
                shim: Ok(overlap(0.75, Some(1))),
            }),
            linux_overlap: Some(crate::bench::overlap::OverlapSide::failed("mpicc.openmpi: no")),
        };
        let rows = report::all_rows(&res, &o.boot_sizes, true, true, true);
        let md = report(&o, &rows, &res, &report::problems(&rows), &[]);
        let line = |prefix: &str| {
            md.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no '{prefix}' in\n{md}"))
                .to_string()
        };
        assert!(line("| FWQ noise |").ends_with("| pass |"), "{md}");
        assert!(line("| GUPS vs Linux THP off |").ends_with("| pass |"));
        assert!(line("| GUPS vs Linux THP on |").ends_with("| MISS |"));
        assert!(line("| fcntl(F_GETFL) (offloaded) |").ends_with("| MISS |"));
        assert!(line("| STREAM triad |").contains("| 1.000 |"));
        assert!(line("| boot 2G to RUNNING |").ends_with("| ERROR |"));
        for img in ["fwq.png", "latency.png", "memory.png"] {
            assert!(md.contains(&format!("]({img})")), "{img} not linked");
        }
        assert!(line("| LWK default |").contains("| n/a |"));
        assert!(md.contains("## Problems") && md.contains("- LWK: no"));
        assert!(
            line("| thread create+join |").ends_with("| ERROR |"),
            "{md}"
        );
        assert!(
            md.contains("- LWK: booting the 2-CPU partition: no"),
            "{md}"
        );
        assert!(md.contains("mcreboot -c 0-1 -m 1G"), "{md}");
        assert!(line("| futex ping-pong 2 CPUs | Linux | 3 |")
            .ends_with("| 0, 1 (sched_getcpu agrees) |"));
        let row = line("| MPI 8 MiB Isend/Irecv overlap, mpi-shim progress thread (UTI) |");
        assert!(row.contains("| 0.750 |") && row.ends_with("| ERROR |"), "{row}");
        assert!(line("| LWK | mpi-shim | 20.00 |").ends_with("| 0.750 | 0 |"), "{md}");
        assert!(line("| Linux | none | error: mpicc.openmpi: no |").len() > 10);
    }

    fn overlap(ratio: f64, cpus: Option<u64>) -> crate::bench::overlap::Overlap {
        crate::bench::overlap::Overlap {
            comm_ms: 20.0,
            comp_ms: 40.0,
            total_ms: 60.0 - 20.0 * ratio,
            ratio,
            progress_cpus: cpus,
        }
    }

    fn threads_side() -> ThreadSide {
        let r = |cpus: bool| ThreadsResult {
            lat_us: vec![10.0, 20.0, 30.0],
            cpus: cpus.then_some((0, 1)),
            ran_on: cpus.then_some((Some(0), Some(1))),
        };
        ThreadSide {
            create: Ok(r(false)),
            pingpong: Ok(r(true)),
            mpi: crate::bench::mpi::MpiSide {
                default: Ok(crate::bench::mpi::PingPong {
                    lat_us: 0.5,
                    bw_mbs: 5000.0,
                    cpus: (0, 1),
                }),
                shared_only: Ok(crate::bench::mpi::PingPong {
                    lat_us: 0.5,
                    bw_mbs: 6000.0,
                    cpus: (0, 1),
                }),
            },
        }
    }

    #[test]
    fn threads_only_report() {
        let o = Options::parse_from([
            "mck-bench",
            "--cpu",
            "1",
            "--stream-n",
            "10",
            "--only",
            "threads",
        ])
        .resolve()
        .unwrap();
        let res = RunResults {
            lwk_threads: Some(threads_side()),
            linux_threads: Some(threads_side()),
            ..Default::default()
        };
        let rows = report::all_rows(&res, &o.boot_sizes, false, false, true);
        let md = report(&o, &rows, &res, &report::problems(&rows), &[]);
        assert!(
            md.contains("| thread create+join | us | 20.00 | 20.00 | 1.000 | - | info |"),
            "{md}"
        );
        assert!(
            md.contains("## Threads") && md.contains("Only the thread phase ran"),
            "{md}"
        );
        for absent in [
            "## FWQ",
            "## Memory",
            "## Boot",
            "fwq.png",
            "Targets (issue 5)",
            "## Problems",
        ] {
            assert!(!md.contains(absent), "{absent} in\n{md}");
        }
        assert!(
            md.contains("| thread create+join | LWK | 3 | 20.00 | 30.00 | 30.00 | - |"),
            "{md}"
        );
        assert!(md.contains("| vader default | LWK | 0.500 | 5000 | 0, 1 |"), "{md}");
        assert!(md.contains("| shared memory only | Linux | 0.500 | 6000 | 0, 1 |"), "{md}");
        assert!(
            md.contains("| MPI 1 MiB bandwidth (shared memory only) | MB/s | 6000 | 6000 | 1.000 | &ge; 1.00x | pass |"),
            "{md}"
        );
    }
}
