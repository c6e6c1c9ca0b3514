//! Draining the node when its cleanup could not finish: `scontrol update
//! NodeName=<node> State=DRAIN Reason=<what is wrong>`, so that `sinfo -R`
//! says why, and no job is given a node that is not as before. (Slurm
//! drains a node whose epilogue failed in any case, with the reason
//! "Epilog error".) scontrol finds the cluster through `SLURM_CONF`, as
//! slurmd passes it to the epilogue.

use std::path::Path;
use std::process::Command;

/// The longest reason kept: Slurm shows it on one line of `sinfo -R`; the
/// whole text is in the slurmd log.
const REASON_MAX: usize = 200;

/// Drains `node` with `reason`; returns what scontrol said on failure.
pub fn drain_node(node: &str, reason: &str) -> Result<(), String> {
    let reason: String = reason.chars().take(REASON_MAX).collect();
    let scontrol = ["/usr/bin/scontrol", "/usr/local/bin/scontrol"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("scontrol");
    let out = Command::new(scontrol)
        .args(["update", &format!("NodeName={node}"), "State=DRAIN"])
        .arg(format!("Reason={reason}"))
        .output()
        .map_err(|e| format!("cannot run {scontrol}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{scontrol} update NodeName={node} State=DRAIN failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The reason a node is drained with after a failed cleanup of `job_id`.
pub fn reason(job_id: u32, problems: &[String]) -> String {
    format!("mckernel: job {job_id}: could not restore the node: {}", problems.join("; "))
}
