//! System call round trips, one timed call at a time.

use super::Ctx;
use crate::parse::{read_samples, Records};
use crate::runner::Runner;
use crate::stats;
use anyhow::{bail, Result};
use std::time::Duration;

/// One measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// Argument of syscall.c.
    pub arg: &'static str,
    /// What the table and plots call it.
    pub label: &'static str,
    /// Answered by the LWK itself (true) or offloaded to Linux.
    pub local: bool,
}

pub const OPS: [Op; 7] = [
    Op {
        arg: "getpid",
        label: "getpid",
        local: true,
    },
    Op {
        arg: "getppid",
        label: "getppid",
        local: true,
    },
    Op {
        arg: "fcntl",
        label: "fcntl(F_GETFL)",
        local: false,
    },
    Op {
        arg: "write1",
        label: "write 1 B",
        local: false,
    },
    Op {
        arg: "write64k",
        label: "write 64 KiB",
        local: false,
    },
    Op {
        arg: "clock",
        label: "clock_gettime(MONOTONIC)",
        local: true,
    },
    Op {
        arg: "mmap64m",
        label: "mmap+touch+munmap 64 MiB",
        local: true,
    },
];

#[derive(Debug, Clone)]
pub struct SyscallResult {
    /// Per-call latency in nanoseconds.
    pub lat_ns: Vec<f64>,
}

impl SyscallResult {
    pub fn median(&self) -> f64 {
        stats::median(&self.lat_ns).unwrap_or(f64::NAN)
    }
}

pub fn run(r: &Runner, ctx: &Ctx, op: Op) -> Result<SyscallResult> {
    let o = ctx.opts;
    let file = ctx.raw_file(&format!("syscall-{}", op.arg), r.side());
    let args = vec![
        op.arg.to_string(),
        o.syscall_iters.to_string(),
        file.display().to_string(),
        o.syscall_seconds.to_string(),
    ];
    let f = r.run(&ctx.progs.syscall, &args, Duration::from_secs(300))?;
    let rec = Records::new("syscall", &f.stdout);
    let hz = rec.f64("tsc_hz")?;
    if !(1e8..1e11).contains(&hz) {
        bail!("syscall: implausible TSC frequency {hz} Hz");
    }
    let done = rec.f64("iters")? as u64;
    let ticks = read_samples(&file)?;
    if ticks.len() as u64 != done || done > o.syscall_iters {
        bail!(
            "syscall: {} samples in {}, the program reported {done} of at most {}",
            ticks.len(),
            file.display(),
            o.syscall_iters
        );
    }
    if done < o.syscall_iters {
        eprintln!(
            "  [{}] {}: time budget of {} s reached after {done} calls",
            r.side().name(),
            op.label,
            o.syscall_seconds
        );
    }
    let res = SyscallResult {
        lat_ns: ticks.iter().map(|t| t / hz * 1e9).collect(),
    };
    eprintln!(
        "  [{}] {}: median {:.0} ns",
        r.side().name(),
        op.label,
        res.median()
    );
    Ok(res)
}
