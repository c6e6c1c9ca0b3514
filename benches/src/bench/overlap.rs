//! Communication/computation overlap (issue 18): `examples/mpi/overlap.c
//! bench`, two Open MPI ranks that exchange 8 MiB with MPI_Isend/Irecv,
//! compute (about twice the exchange's time) and then wait; overlap = the
//! part of the exchange's time hidden behind the computation. Each side
//! runs it without mpi-shim and with its progress thread
//! (`LD_PRELOAD=libmpishim.so MPISHIM_ASYNC_PROGRESS=1`), one after the
//! other in the same run.
//!
//! LWK side: `mcreboot -c <cpu> -O` (allow_oversubscribe: both ranks on
//! the one LWK CPU), `mpirun -n 2 mcexec --enable-uti overlap bench`: the
//! progress threads run on the Linux CPUs, placed by UTI. Linux side:
//! `mpirun --bind-to none` pinned to the same CPU (its ranks inherit it),
//! the progress threads on the other CPUs (`UTI_CPU_SET`). vader's single copy is off
//! by default (`--overlap-single-copy none`): with CMA the whole 8 MiB is
//! one `process_vm_readv` by the receiver, which on the LWK is one
//! offloaded call, while the copy-in/copy-out pipeline is what a progress
//! engine must keep moving, fragment after fragment.

use super::Outcome;
use crate::parse::Records;
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Message size of the exchange.
pub const MIB: usize = 8;

/// One run of overlap.c's bench mode (rank 0's medians).
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    pub comm_ms: f64,
    pub comp_ms: f64,
    pub total_ms: f64,
    /// (comm + comp - total) / comm, clamped to 0..1.
    pub ratio: f64,
    /// CPUs rank 0's progress thread was seen on (bit n = CPU n), None
    /// without the shim.
    pub progress_cpus: Option<u64>,
}

/// Both runs of one side.
#[derive(Debug)]
pub struct OverlapSide {
    pub none: Outcome<Overlap>,
    pub shim: Outcome<Overlap>,
}

impl OverlapSide {
    pub fn failed(why: &str) -> OverlapSide {
        OverlapSide {
            none: Err(why.to_string()),
            shim: Err(why.to_string()),
        }
    }
}

/// What both sides need: the program and the shim.
#[derive(Debug, Clone)]
pub struct Setup {
    pub exe: PathBuf,
    /// libmpishim.so (libuti.so beside it).
    pub shim: PathBuf,
}

/// Compiles overlap.c with `mpicc.openmpi` into `bin_dir` and finds
/// libmpishim.so: in `<prefix>/lib`, or built (with libuti) into the
/// harness's own cargo profile directory.
pub fn setup(bin_dir: &Path, prefix: Option<&Path>, build: bool) -> Result<Setup> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mpi/overlap.c");
    let exe = bin_dir.join("overlap");
    let out = Command::new("mpicc.openmpi")
        .args(["-O2", "-Wall", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .context("running mpicc.openmpi (install libopenmpi-dev)")?;
    if !out.status.success() {
        bail!(
            "mpicc.openmpi failed on {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let shim = match prefix {
        Some(p) => p.join("lib/libmpishim.so"),
        None => {
            let dir = crate::tools::own_profile_dir()?;
            if build {
                build_libs(&dir)?;
            }
            dir.join("libmpishim.so")
        }
    };
    if !shim.is_file() {
        bail!(
            "{} does not exist (cargo build --release -p mpi-shim -p uti, or install it)",
            shim.display()
        );
    }
    Ok(Setup { exe, shim })
}

/// `cargo build --release -p uti -p mpi-shim --lib` into the harness's
/// target directory (the workspace build builds binaries only).
fn build_libs(profile_dir: &Path) -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target_dir = profile_dir.parent().context("profile dir has no parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--release", "-p", "uti", "-p", "mpi-shim", "--lib"])
        .status()
        .context("running cargo")?;
    if !st.success() {
        bail!("cargo build --release -p uti -p mpi-shim failed ({st})");
    }
    Ok(())
}

/// Turns rank 0's output into a result; `shim`: whether the progress
/// thread was asked for (its counters must then be there).
pub fn parse(stdout: &str, shim: bool) -> Result<Overlap> {
    let rec = Records::new("overlap", stdout);
    if !rec.has("done") {
        bail!("overlap: no 'done' line (a message was corrupt, or it did not finish)");
    }
    let v = rec
        .all("reps")
        .last()
        .context("overlap: no result line")?
        .to_vec();
    let field = |name: &str| -> Result<f64> {
        let i = v
            .iter()
            .position(|w| w == name)
            .with_context(|| format!("overlap: no {name} in 'reps {}'", v.join(" ")))?;
        v.get(i + 1)
            .and_then(|x| x.parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .with_context(|| format!("overlap: bad {name} in 'reps {}'", v.join(" ")))
    };
    let (comm_ms, comp_ms, total_ms, ratio) = (
        field("comm_ms")?,
        field("comp_ms")?,
        field("total_ms")?,
        field("overlap")?,
    );
    if comm_ms <= 0.0 || comp_ms <= 0.0 || total_ms <= 0.0 || !(0.0..=1.0).contains(&ratio) {
        bail!("overlap: implausible times in 'reps {}'", v.join(" "));
    }
    let polls = field("polls")?;
    let cpus = field("cpus")?;
    let progress_cpus = match (shim, polls > 0.0 && cpus > 0.0) {
        (true, true) => Some(cpus as u64),
        (true, false) => bail!("overlap: the shim's progress thread did not run (polls {polls}, cpus {cpus})"),
        (false, _) if polls >= 0.0 => bail!("overlap: a progress thread ran without the shim"),
        (false, _) => None,
    };
    Ok(Overlap {
        comm_ms,
        comp_ms,
        total_ms,
        ratio,
        progress_cpus,
    })
}

/// Runs the bench once on `r`'s side, with the shim's progress thread if
/// `shim`. `other_cpus`: the CPUs the native side's progress threads may
/// use (the LWK side's are mcexec's Linux CPUs).
pub fn run(
    r: &Runner,
    setup: &Setup,
    reps: u64,
    single_copy: &str,
    shim: bool,
    other_cpus: &str,
) -> Result<Overlap> {
    // --bind-to none: natively, mpirun's default binding would put the two
    // ranks on two cores whatever CPU it was started on; both sides run
    // them on the one CPU.
    let mut launcher: Vec<String> = ["mpirun.openmpi", "-n", "2", "--bind-to", "none"]
        .map(String::from)
        .to_vec();
    launcher.extend(["--mca", "btl_vader_single_copy_mechanism", single_copy].map(String::from));
    if shim {
        for e in [
            format!("LD_PRELOAD={}", setup.shim.display()),
            "MPISHIM_ASYNC_PROGRESS=1".to_string(),
        ] {
            launcher.extend(["-x".to_string(), e]);
        }
    }
    let args = ["bench".to_string(), MIB.to_string(), reps.to_string()];
    let mut cmd = r.launched_command(&launcher, &["--enable-uti"], &setup.exe, &args);
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("UTI_CPU_SET", other_cpus);
    let f = r.run_prepared(cmd, Duration::from_secs(600))?;
    let res = parse(&f.stdout, shim)?;
    eprintln!(
        "  [{}] MPI {MIB} MiB overlap, {}: exchange {:.2} ms, compute {:.2} ms, both {:.2} ms: overlap {:.2}{}",
        r.side().name(),
        if shim { "mpi-shim progress thread" } else { "no progress thread" },
        res.comm_ms,
        res.comp_ms,
        res.total_ms,
        res.ratio,
        res.progress_cpus
            .map(|m| format!(" (progress thread on CPUs {})", cpu_list(m)))
            .unwrap_or_default()
    );
    Ok(res)
}

/// "0,2" for a CPU mask.
pub fn cpu_list(mask: u64) -> String {
    (0..64)
        .filter(|c| mask & (1 << c) != 0)
        .map(|c: u32| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: &str =
        "reps 5 bytes 8388608 comm_ms 20.000 comp_ms 40.000 total_ms 60.000 overlap 0.000 polls -1 cpus -1\ndone\n";
    const SHIM: &str =
        "reps 5 bytes 8388608 comm_ms 20.000 comp_ms 40.000 total_ms 45.000 overlap 0.750 polls 1000 cpus 1\ndone\n";

    #[test]
    fn output() {
        let r = parse(NONE, false).unwrap();
        assert_eq!(r.ratio, 0.0);
        assert_eq!(r.progress_cpus, None);
        let r = parse(SHIM, true).unwrap();
        assert_eq!((r.comm_ms, r.total_ms, r.ratio), (20.0, 45.0, 0.75));
        assert_eq!(r.progress_cpus, Some(1));
        // The shim asked for but not running, or running unasked.
        assert!(parse(NONE, true).is_err());
        assert!(parse(SHIM, false).is_err());
        assert!(parse(&NONE.replace("done\n", ""), false).is_err());
        assert!(parse(&NONE.replace("overlap 0.000", "overlap 1.5"), false).is_err());
        assert!(parse(&NONE.replace("comm_ms 20.000", "comm_ms nan"), false).is_err());
        assert_eq!(cpu_list(0b101), "0,2");
    }
}
