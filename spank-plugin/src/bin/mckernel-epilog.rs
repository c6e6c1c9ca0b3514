//! `mckernel-epilog`: the job epilogue (slurm.conf `Epilog=`), also usable
//! by hand. Ends the job's leftover mcexec processes, shuts down the job's
//! LWK partition, releases its CPUs and memory, has the reservation journal
//! replayed, and checks the node is as before the job. Idempotent.
//!
//! Reads `SLURM_JOB_ID` (set by slurmd) or `--job <id>`, `SLURMD_NODENAME`
//! (also set by slurmd) or `--node <name>` for a site file that uses `%n`,
//! and the site file from `--config <path>` or `MCKERNEL_SLURM_CONFIG`
//! (default /etc/slurm/mckernel.toml). Prints what it did; on failure prints
//! what it could not restore and drains the node (`scontrol update`,
//! mckernel_slurm::drain) with the problem as the reason, so that `sinfo -R`
//! says what is wrong and the node gets no job; if it cannot drain it, it
//! exits 1, and slurmd drains the node for the failed epilogue.
//!
//! Owns nothing but its command line; the work is mckernel_slurm::lifecycle.

use std::path::PathBuf;
use std::process::ExitCode;

use mckernel_slurm::config::{SiteConfig, DEFAULT_CONFIG_PATH};
use mckernel_slurm::{drain, lifecycle};

const USAGE: &str =
    "usage: mckernel-epilog [--job <id>] [--node <name>] [--config <site TOML file>]";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mckernel-epilog: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut job: Option<String> = std::env::var("SLURM_JOB_ID").ok();
    let mut node: Option<String> = std::env::var("SLURMD_NODENAME").ok();
    let mut config = std::env::var_os("MCKERNEL_SLURM_CONFIG").map(PathBuf::from);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--job" => job = Some(args.next().ok_or(USAGE)?),
            "--node" => node = Some(args.next().ok_or(USAGE)?),
            "--config" => config = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    let job = job.ok_or_else(|| {
        format!("no job: SLURM_JOB_ID is not set and --job was not given\n{USAGE}")
    })?;
    let job_id: u32 = job.parse().map_err(|_| {
        format!("job id '{job}' is not a number (expected the Slurm job id, e.g. 1234)")
    })?;
    let path = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let config = SiteConfig::load(&path)
        .map_err(|e| e.to_string())?
        .for_node(node.as_deref())?;

    let report = lifecycle::cleanup_job(&config, job_id);
    for a in &report.actions {
        println!("mckernel-epilog: job {job_id}: {a}");
    }
    for p in &report.problems {
        eprintln!("mckernel-epilog: job {job_id}: could not restore the node: {p}");
    }
    if report.clean() {
        return Ok(ExitCode::SUCCESS);
    }
    // Drained with the reason, the node gets no job and the epilogue has
    // done its part: exit 0, or Slurm would replace the reason with
    // "Epilog error". Without a drain, fail: Slurm drains the node itself.
    match node.as_deref() {
        Some(node) => match drain::drain_node(node, &drain::reason(job_id, &report.problems)) {
            Ok(()) => {
                println!("mckernel-epilog: job {job_id}: drained {node}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => eprintln!("mckernel-epilog: job {job_id}: could not drain {node}: {e}"),
        },
        None => eprintln!(
            "mckernel-epilog: job {job_id}: no node name (SLURMD_NODENAME or --node) to drain"
        ),
    }
    Ok(ExitCode::from(1))
}
