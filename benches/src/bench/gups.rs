//! GUPS random updates over a large table, with the table's transparent
//! huge pages chosen per run by gups.c's own madvise (never system-wide).

use super::Ctx;
use crate::parse::Records;
use crate::runner::Runner;
use crate::stats;
use anyhow::{bail, Result};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No madvise: whatever the system does (the LWK side).
    Default,
    NoHuge,
    Huge,
}

impl Mode {
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::NoHuge => "nohuge",
            Mode::Huge => "huge",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Mode::Default => "",
            Mode::NoHuge => "THP off",
            Mode::Huge => "THP on",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GupsResult {
    /// Giga-updates per second of each timed round.
    pub gups: Vec<f64>,
    /// AnonHugePages of the table in kB, when /proc/self/smaps says.
    pub thp_kb: Option<i64>,
    pub madvise_errno: i32,
    pub checksum: String,
}

impl GupsResult {
    pub fn median(&self) -> f64 {
        stats::median(&self.gups).unwrap_or(f64::NAN)
    }
}

pub fn run(r: &Runner, ctx: &Ctx, mode: Mode) -> Result<GupsResult> {
    let o = ctx.opts;
    let args = vec![
        o.gups_log2.to_string(),
        o.gups_updates.to_string(),
        o.gups_rounds.to_string(),
        mode.arg().to_string(),
    ];
    let f = r.run(&ctx.progs.gups, &args, Duration::from_secs(900))?;
    let rec = Records::new("gups", &f.stdout);
    let mut gups = Vec::new();
    for fields in rec.all("round") {
        let Some(Ok(secs)) = fields.get(1).map(|s| s.parse::<f64>()) else {
            bail!("gups: bad round line {fields:?}")
        };
        if secs <= 0.0 {
            bail!("gups: non-positive round time {secs}");
        }
        gups.push(o.gups_updates as f64 / secs / 1e9);
    }
    if gups.len() as u64 != o.gups_rounds {
        bail!(
            "gups: {} rounds reported, expected {}",
            gups.len(),
            o.gups_rounds
        );
    }
    let thp = rec.f64("thp_kb")? as i64;
    let res = GupsResult {
        gups,
        thp_kb: (thp >= 0).then_some(thp),
        madvise_errno: rec.f64("madvise_errno")? as i32,
        checksum: rec.value("checksum")?.to_string(),
    };
    eprintln!(
        "  [{}] gups {}: {:.4} GUP/s, table THP {} kB, checksum {}",
        r.side().name(),
        mode.arg(),
        res.median(),
        res.thp_kb.map_or("?".to_string(), |k| k.to_string()),
        res.checksum
    );
    Ok(res)
}
