//! FWQ: quanta of fixed work on the benchmark CPU; noise is the time above
//! the shortest quantum.

use super::Ctx;
use crate::parse::{read_samples, Records};
use crate::runner::Runner;
use crate::stats::{self, Fwq};
use anyhow::{bail, Result};
use std::time::Duration;

/// One run: quantum lengths in microseconds, in order, and their statistics.
#[derive(Debug, Clone)]
pub struct Run {
    pub quanta_us: Vec<f64>,
    pub stats: Fwq,
}

#[derive(Debug, Clone)]
pub struct FwqResult {
    pub runs: Vec<Run>,
}

impl FwqResult {
    /// Median over runs of one statistic.
    pub fn median_of(&self, f: impl Fn(&Fwq) -> f64) -> f64 {
        let v: Vec<f64> = self.runs.iter().map(|r| f(&r.stats)).collect();
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

pub fn run(r: &Runner, ctx: &Ctx) -> Result<FwqResult> {
    let o = ctx.opts;
    let mut runs = Vec::new();
    for i in 0..o.fwq_runs {
        let file = ctx.raw_file(&format!("fwq{i}"), r.side());
        let args = vec![
            o.fwq_samples.to_string(),
            o.fwq_work.to_string(),
            file.display().to_string(),
        ];
        let f = r.run(&ctx.progs.fwq, &args, Duration::from_secs(120))?;
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
        eprintln!(
            "  [{}] fwq run {}/{}: min {:.2} us, max {:.2} us, noise {:.4} %",
            r.side().name(),
            i + 1,
            o.fwq_runs,
            stats.summary.min,
            stats.summary.max,
            stats.noise_pct
        );
        runs.push(Run { quanta_us, stats });
    }
    Ok(FwqResult { runs })
}
