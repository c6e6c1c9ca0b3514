//! MPI ping-pong (issue 13): `mpi-pingpong` of examples/mpi-rs (rsmpi,
//! Open MPI) between two ranks, 8-byte one-way latency and 1 MiB
//! bandwidth, with vader's default single-copy mechanism (CMA:
//! process_vm_readv between the ranks) and with copy-in/copy-out through
//! shared memory (`btl_vader_single_copy_mechanism none`). The LWK side
//! is `mpirun -n 2 mcexec -n 2 mpi-pingpong` on the 2-CPU partition, the
//! Linux side `mpirun -n 2 mpi-pingpong` pinned to the same two CPUs.

use super::{Ctx, Outcome};
use crate::parse::Records;
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// The two message sizes measured.
pub const SMALL: usize = 8;
pub const LARGE: usize = 1 << 20;

/// vader's single-copy mechanism for large messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    /// Open MPI's default: CMA (process_vm_readv) where it works.
    Default,
    /// Copy-in/copy-out through the shared-memory segment.
    SharedOnly,
}

impl Copy {
    fn mca(self) -> Option<&'static str> {
        match self {
            Copy::Default => None,
            Copy::SharedOnly => Some("none"),
        }
    }
}

/// One ping-pong run.
#[derive(Debug, Clone, PartialEq)]
pub struct PingPong {
    /// One-way latency of an 8-byte message, microseconds.
    pub lat_us: f64,
    /// 1 MiB bandwidth, 10^6 bytes per second.
    pub bw_mbs: f64,
    /// Where ranks 0 and 1 ran.
    pub cpus: (i64, i64),
}

/// Both runs of one side.
#[derive(Debug)]
pub struct MpiSide {
    pub default: Outcome<PingPong>,
    pub shared_only: Outcome<PingPong>,
}

impl MpiSide {
    pub fn failed(why: &str) -> MpiSide {
        MpiSide {
            default: Err(why.to_string()),
            shared_only: Err(why.to_string()),
        }
    }
}

/// Turns rank 0's output into a result.
pub fn parse(stdout: &str) -> Result<PingPong> {
    let rec = Records::new("mpi-pingpong", stdout);
    if !rec.has("done") {
        bail!("mpi-pingpong: no 'done' line (a message was corrupt, or it did not finish)");
    }
    let mut lat = None;
    let mut bw = None;
    for v in rec.all("size") {
        // size <bytes> iters <n> latency_us <x> bandwidth_mbs <y>
        let field = |name: &str| -> Result<f64> {
            let i = v
                .iter()
                .position(|w| w == name)
                .with_context(|| format!("mpi-pingpong: no {name} in 'size {}'", v.join(" ")))?;
            v.get(i + 1)
                .and_then(|x| x.parse::<f64>().ok())
                .filter(|x| x.is_finite() && *x > 0.0)
                .with_context(|| format!("mpi-pingpong: bad {name} in 'size {}'", v.join(" ")))
        };
        match v.first().and_then(|s| s.parse::<usize>().ok()) {
            Some(SMALL) => lat = Some(field("latency_us")?),
            Some(LARGE) => bw = Some(field("bandwidth_mbs")?),
            _ => {}
        }
    }
    let cpus = match rec.all("cpus").last() {
        Some([a, b]) => (a.parse::<i64>()?, b.parse::<i64>()?),
        other => bail!("mpi-pingpong: bad 'cpus' line {other:?}"),
    };
    if cpus.0 == cpus.1 {
        bail!("mpi-pingpong: both ranks ran on CPU {}", cpus.0);
    }
    Ok(PingPong {
        lat_us: lat.context("mpi-pingpong: no 8-byte result")?,
        bw_mbs: bw.context("mpi-pingpong: no 1 MiB result")?,
        cpus,
    })
}

/// Runs the ping-pong once with `copy` on `r`'s side.
pub fn run(r: &Runner, ctx: &Ctx, copy: Copy) -> Result<PingPong> {
    let dir = mck_tests::build_mpi_examples().map_err(anyhow::Error::msg)?;
    let mut launcher: Vec<String> = ["mpirun.openmpi", "-n", "2"].map(String::from).to_vec();
    if let Some(m) = copy.mca() {
        launcher.extend(["--mca", "btl_vader_single_copy_mechanism", m].map(String::from));
    }
    let iters = ctx.opts.mpi_round_trips.to_string();
    let args = [iters, SMALL.to_string(), LARGE.to_string()];
    let mut cmd = r.launched_command(&launcher, &["-n", "2"], &dir.join("mpi-pingpong"), &args);
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    let f = r.run_prepared(cmd, Duration::from_secs(300))?;
    let res = parse(&f.stdout)?;
    eprintln!(
        "  [{}] MPI ping-pong ({:?}): 8 B {:.2} us, 1 MiB {:.0} MB/s, ranks on CPUs {} and {}",
        r.side().name(),
        copy,
        res.lat_us,
        res.bw_mbs,
        res.cpus.0,
        res.cpus.1
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "size 8 iters 200 latency_us 0.391 bandwidth_mbs 20.5 min_us 0.3 p90_us 0.5 tsc_mhz 2600\n\
        size 1048576 iters 200 latency_us 259.793 bandwidth_mbs 4036.2\ncpus 0 1\ndone\n";

    #[test]
    fn output() {
        let r = parse(OUT).unwrap();
        assert_eq!(r, PingPong { lat_us: 0.391, bw_mbs: 4036.2, cpus: (0, 1) });
        assert!(parse(&OUT.replace("done\n", "corrupt messages 1\n")).is_err());
        assert!(parse(&OUT.replace("cpus 0 1", "cpus 1 1")).is_err());
        assert!(parse(&OUT.replace("size 8 ", "size 16 ")).is_err());
        assert!(parse(&OUT.replace("bandwidth_mbs 4036.2", "bandwidth_mbs nan")).is_err());
    }
}
