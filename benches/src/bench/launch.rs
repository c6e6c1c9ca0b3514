//! Launch: wall time of `<busybox> true`, spawn to exit, as the harness
//! sees it (under mcexec: mcexec's whole life).

use super::Ctx;
use crate::runner::Runner;
use crate::stats;
use anyhow::Result;
use std::time::Duration;

/// Milliseconds per launch (after one untimed warm-up launch).
pub fn run(r: &Runner, ctx: &Ctx) -> Result<Vec<f64>> {
    let args = vec!["true".to_string()];
    let limit = Duration::from_secs(60);
    r.time_once(&ctx.opts.busybox, &args, limit)?;
    let mut ms = Vec::new();
    for _ in 0..ctx.opts.launch_reps {
        ms.push(r.time_once(&ctx.opts.busybox, &args, limit)?.as_secs_f64() * 1e3);
    }
    eprintln!(
        "  [{}] launch {} true: median {:.2} ms",
        r.side().name(),
        ctx.opts.busybox.display(),
        stats::median(&ms).unwrap_or(f64::NAN)
    );
    Ok(ms)
}
