//! Boot: `mcreboot` to RUNNING for each partition size, each boot followed
//! by `mcstop+release`.

use crate::partition::Node;
use crate::stats;
use anyhow::Result;

#[derive(Debug, Clone)]
pub struct BootResult {
    pub size: String,
    pub secs: Vec<f64>,
}

impl BootResult {
    pub fn median(&self) -> f64 {
        stats::median(&self.secs).unwrap_or(f64::NAN)
    }
}

pub fn run(node: &Node, cpus: &str, size: &str, reps: usize) -> Result<BootResult> {
    let mut secs = Vec::new();
    for i in 0..reps {
        let (partition, t) = node.boot(cpus, size)?;
        partition.shutdown()?;
        eprintln!(
            "  boot {size} ({}/{reps}): {:.3} s to RUNNING",
            i + 1,
            t.as_secs_f64()
        );
        secs.push(t.as_secs_f64());
    }
    Ok(BootResult {
        size: size.to_string(),
        secs,
    })
}
