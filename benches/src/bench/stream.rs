//! STREAM copy/scale/add/triad bandwidth in MB/s.

use super::Ctx;
use crate::parse::Records;
use crate::runner::Runner;
use crate::stats;
use anyhow::{bail, Result};
use std::time::Duration;

pub const KERNELS: [&str; 4] = ["copy", "scale", "add", "triad"];

#[derive(Debug, Clone)]
pub struct StreamResult {
    /// Per kernel (in KERNELS order), the rates of the timed iterations.
    pub rates: Vec<Vec<f64>>,
    pub n: u64,
}

impl StreamResult {
    pub fn median(&self, kernel: usize) -> f64 {
        stats::median(&self.rates[kernel]).unwrap_or(f64::NAN)
    }
}

pub fn run(r: &Runner, ctx: &Ctx) -> Result<StreamResult> {
    let o = ctx.opts;
    let n = o.stream_n();
    let args = vec![n.to_string(), o.stream_ntimes.to_string()];
    let f = r.run(&ctx.progs.stream, &args, Duration::from_secs(600))?;
    let rec = Records::new("stream", &f.stdout);
    if rec.value("valid")? != "1" {
        bail!("stream: results failed validation (wrong array contents)");
    }
    let mut rates = vec![Vec::new(); KERNELS.len()];
    for fields in rec.all("rate") {
        let [kernel, iter, rate] = fields else {
            bail!("stream: bad rate line {fields:?}")
        };
        let Some(k) = KERNELS.iter().position(|k| k == kernel) else {
            bail!("stream: unknown kernel '{kernel}'")
        };
        let (Ok(iter), Ok(rate)) = (iter.parse::<u64>(), rate.parse::<f64>()) else {
            bail!("stream: bad rate line {fields:?}")
        };
        // Like STREAM, the first iteration is a warm-up when there are more.
        if iter > 0 || o.stream_ntimes == 1 {
            rates[k].push(rate);
        }
    }
    if rates.iter().any(|v| v.is_empty()) {
        bail!("stream: some kernels have no timed iterations");
    }
    let res = StreamResult { rates, n };
    eprintln!(
        "  [{}] stream: copy {:.0} scale {:.0} add {:.0} triad {:.0} MB/s",
        r.side().name(),
        res.median(0),
        res.median(1),
        res.median(2),
        res.median(3)
    );
    Ok(res)
}
