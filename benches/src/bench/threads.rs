//! Threads (issue 12): pthread_create + pthread_join of an empty thread, and
//! a futex ping-pong between two threads pinned to two CPUs, with
//! `examples/bench/threads.c`. The LWK side runs on a 2-CPU partition, the
//! Linux side natively pinned to the same two CPUs.

use super::mpi::MpiSide;
use super::{Ctx, Outcome};
use crate::parse::{read_samples, Records};
use crate::runner::Runner;
use crate::stats;
use anyhow::{bail, Result};
use std::time::Duration;

/// What threads.c measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// pthread_create + pthread_join.
    Create,
    /// One futex round trip between two CPUs.
    PingPong,
}

impl Mode {
    /// Argument of threads.c.
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::PingPong => "pingpong",
        }
    }

    /// What the table calls it.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Create => "thread create+join",
            Mode::PingPong => "futex ping-pong 2 CPUs",
        }
    }
}

pub const MODES: [Mode; 2] = [Mode::Create, Mode::PingPong];

#[derive(Debug, Clone)]
pub struct ThreadsResult {
    /// Per-iteration latency in microseconds.
    pub lat_us: Vec<f64>,
    /// Pingpong: the two CPUs the threads were pinned to, and where
    /// sched_getcpu saw them (None when it could not tell).
    pub cpus: Option<(i64, i64)>,
    pub ran_on: Option<(Option<i64>, Option<i64>)>,
}

impl ThreadsResult {
    pub fn median(&self) -> f64 {
        stats::median(&self.lat_us).unwrap_or(f64::NAN)
    }
}

/// The 2-CPU benchmarks of one side: both thread benchmarks and the MPI
/// ping-pong.
#[derive(Debug)]
pub struct ThreadSide {
    pub create: Outcome<ThreadsResult>,
    pub pingpong: Outcome<ThreadsResult>,
    pub mpi: MpiSide,
}

impl ThreadSide {
    /// Neither could be measured, for the same reason.
    pub fn failed(why: &str) -> ThreadSide {
        ThreadSide {
            create: Err(why.to_string()),
            pingpong: Err(why.to_string()),
            mpi: MpiSide::failed(why),
        }
    }

    pub fn get(&self, mode: Mode) -> &Outcome<ThreadsResult> {
        match mode {
            Mode::Create => &self.create,
            Mode::PingPong => &self.pingpong,
        }
    }
}

fn cpu_pair(rec: &Records, key: &str) -> Result<(i64, i64)> {
    let v = rec
        .all(key)
        .last()
        .ok_or_else(|| anyhow::anyhow!("threads: no '{key}' line in its output"))?;
    match v {
        [a, b] => match (a.parse::<i64>(), b.parse::<i64>()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => bail!("threads: '{key}' should be two CPU numbers, got '{a} {b}'"),
        },
        _ => bail!("threads: '{key}' should be two CPU numbers, got {v:?}"),
    }
}

/// Turns threads.c's stdout and its samples (TSC ticks) into a result;
/// `max` is the number of iterations asked for.
pub fn parse(mode: Mode, stdout: &str, ticks: &[f64], max: u64) -> Result<ThreadsResult> {
    let rec = Records::new("threads", stdout);
    if !rec.has("done") {
        bail!("threads: no 'done' line: the program did not finish");
    }
    let got = rec.value("mode")?;
    if got != mode.arg() {
        bail!("threads: ran mode '{got}', expected '{}'", mode.arg());
    }
    let hz = rec.f64("tsc_hz")?;
    if !(1e8..1e11).contains(&hz) {
        bail!("threads: implausible TSC frequency {hz} Hz");
    }
    let done = rec.f64("iters")? as u64;
    if ticks.len() as u64 != done || done == 0 || done > max {
        bail!(
            "threads: {} samples, the program reported {done} of at most {max}",
            ticks.len()
        );
    }
    let (cpus, ran_on) = if mode == Mode::PingPong {
        let cpus = cpu_pair(&rec, "cpus")?;
        if cpus.0 == cpus.1 || cpus.0 < 0 || cpus.1 < 0 {
            bail!(
                "threads: pinned to CPUs {} and {}, expected two different CPUs",
                cpus.0,
                cpus.1
            );
        }
        let (a, b) = cpu_pair(&rec, "ran_on")?;
        let known = |c: i64| (c >= 0).then_some(c);
        let ran = (known(a), known(b));
        if let (Some(a), Some(b)) = ran {
            if (a, b) != cpus {
                bail!(
                    "threads: pinned to CPUs {} and {} but sched_getcpu says {a} and {b}",
                    cpus.0,
                    cpus.1
                );
            }
        }
        (Some(cpus), Some(ran))
    } else {
        (None, None)
    };
    Ok(ThreadsResult {
        lat_us: ticks.iter().map(|t| t / hz * 1e6).collect(),
        cpus,
        ran_on,
    })
}

pub fn run(r: &Runner, ctx: &Ctx, mode: Mode) -> Result<ThreadsResult> {
    let o = ctx.opts;
    let iters = match mode {
        Mode::Create => o.thread_creates,
        Mode::PingPong => o.thread_round_trips,
    };
    let file = ctx.raw_file(&format!("threads-{}", mode.arg()), r.side());
    let args = vec![
        mode.arg().to_string(),
        iters.to_string(),
        file.display().to_string(),
        o.thread_seconds.to_string(),
    ];
    // The budget, plus calibration, warm-up and a slow start under mcexec.
    let limit = Duration::from_secs(o.thread_seconds + 120);
    let f = r.run(&ctx.progs.threads, &args, limit)?;
    let ticks = read_samples(&file)?;
    let res = parse(mode, &f.stdout, &ticks, iters)?;
    if (res.lat_us.len() as u64) < iters {
        eprintln!(
            "  [{}] {}: time budget of {} s reached after {} iterations",
            r.side().name(),
            mode.label(),
            o.thread_seconds,
            res.lat_us.len()
        );
    }
    let on = match (res.cpus, res.ran_on) {
        (Some((a, b)), Some(ran)) => format!(
            " (CPUs {a} and {b}{})",
            if ran.0.is_some() && ran.1.is_some() {
                ", confirmed by sched_getcpu"
            } else {
                ", sched_getcpu unknown"
            }
        ),
        _ => String::new(),
    };
    eprintln!(
        "  [{}] {}: median {:.1} us over {}{on}",
        r.side().name(),
        mode.label(),
        res.median(),
        res.lat_us.len()
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PP: &str = "tsc_hz 2000000000\nmode pingpong\niters 3\ncpus 0 1\nran_on 0 1\ndone\n";

    #[test]
    fn create_output() {
        let out = "tsc_hz 2000000000\nmode create\niters 2\ndone\n";
        let r = parse(Mode::Create, out, &[2000.0, 4000.0], 200).unwrap();
        assert_eq!(r.lat_us, vec![1.0, 2.0]);
        assert_eq!(r.median(), 1.5);
        assert!(r.cpus.is_none());
        // Fewer samples than reported, or more than asked for.
        assert!(parse(Mode::Create, out, &[1.0], 200).is_err());
        assert!(parse(Mode::Create, out, &[1.0, 2.0], 1).is_err());
        // The wrong mode, or no "done".
        assert!(parse(Mode::PingPong, out, &[1.0, 2.0], 200).is_err());
        let cut = "tsc_hz 2000000000\nmode create\niters 2\n";
        let e = parse(Mode::Create, cut, &[1.0, 2.0], 200).unwrap_err();
        assert!(e.to_string().contains("done"), "{e}");
    }

    #[test]
    fn pingpong_output() {
        let r = parse(Mode::PingPong, PP, &[2e3, 4e3, 6e3], 2000).unwrap();
        assert_eq!(r.median(), 2.0);
        assert_eq!(r.cpus, Some((0, 1)));
        assert_eq!(r.ran_on, Some((Some(0), Some(1))));
        // sched_getcpu unknown on one side: still valid.
        let unknown = PP.replace("ran_on 0 1", "ran_on -1 1");
        let r = parse(Mode::PingPong, &unknown, &[1.0, 1.0, 1.0], 2000).unwrap();
        assert_eq!(r.ran_on, Some((None, Some(1))));
    }

    #[test]
    fn pingpong_must_use_two_cpus() {
        let same = PP.replace("cpus 0 1", "cpus 1 1");
        let e = parse(Mode::PingPong, &same, &[1.0; 3], 2000).unwrap_err();
        assert!(e.to_string().contains("two different CPUs"), "{e}");
        let moved = PP.replace("ran_on 0 1", "ran_on 0 0");
        let e = parse(Mode::PingPong, &moved, &[1.0; 3], 2000).unwrap_err();
        assert!(e.to_string().contains("sched_getcpu says 0 and 0"), "{e}");
        let missing = PP.replace("cpus 0 1\n", "");
        assert!(parse(Mode::PingPong, &missing, &[1.0; 3], 2000).is_err());
        let bad = PP.replace("cpus 0 1", "cpus 0 x");
        assert!(parse(Mode::PingPong, &bad, &[1.0; 3], 2000).is_err());
    }
}
