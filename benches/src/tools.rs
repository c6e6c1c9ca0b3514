//! Finding the host tools (mcreboot, mcstop+release, ihkosctl, mcexec):
//! in an install tree of `scripts/install.sh <prefix>` (sbin/, bin/), or in
//! the cargo target directory this harness was built in, after building the
//! workspace in release mode.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct Tools {
    pub mcreboot: PathBuf,
    pub mcstop_release: PathBuf,
    pub ihkosctl: PathBuf,
    /// Where mcexec is, or why it is not there (boots can be timed without it).
    pub mcexec: std::result::Result<PathBuf, String>,
}

impl Tools {
    /// The tools of an install tree.
    pub fn in_prefix(prefix: &Path) -> Result<Tools> {
        let sbin = prefix.join("sbin");
        let bin = prefix.join("bin");
        Ok(Tools {
            mcreboot: first_existing(&[sbin.join("mcreboot"), sbin.join("mcreboot.sh")])?,
            mcstop_release: first_existing(&[
                sbin.join("mcstop+release"),
                sbin.join("mcstop+release.sh"),
                sbin.join("mcstop-release"),
            ])?,
            ihkosctl: first_existing(&[sbin.join("ihkosctl")])?,
            mcexec: first_existing(&[bin.join("mcexec")])
                .map_err(|e| format!("mcexec not found: {e:#}")),
        })
    }

    /// The tools of a cargo profile directory (target/release).
    pub fn in_profile_dir(dir: &Path) -> Result<Tools> {
        Ok(Tools {
            mcreboot: first_existing(&[dir.join("mcreboot")])?,
            mcstop_release: first_existing(&[dir.join("mcstop-release")])?,
            ihkosctl: first_existing(&[dir.join("ihkosctl")])?,
            mcexec: first_existing(&[dir.join("mcexec")])
                .map_err(|e| format!("mcexec not found: {e:#}")),
        })
    }
}

fn first_existing(candidates: &[PathBuf]) -> Result<PathBuf> {
    for c in candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    let names: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    bail!("none of {} exists", names.join(", "))
}

/// The cargo profile directory of the running executable: `<target>/release`
/// for `cargo run`, the parent of `deps/` for `cargo bench`.
pub fn own_profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the harness executable")?;
    let dir = exe.parent().context("executable has no directory")?;
    Ok(if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// `cargo build --release --workspace` in this workspace, into the target
/// directory the harness itself lives in.
pub fn build_workspace(profile_dir: &Path) -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target_dir = profile_dir.parent().context("profile dir has no parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("mck-bench: building the workspace (cargo build --release --workspace)");
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--release", "--workspace", "--bins"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!(
            "cargo build --release --workspace failed ({status}); fix the build or pass --no-build"
        );
    }
    Ok(())
}

/// Locates the tools as the options say, building first when asked.
pub fn locate(prefix: Option<&Path>, build: bool) -> Result<Tools> {
    if let Some(p) = prefix {
        return Tools::in_prefix(p)
            .with_context(|| format!("--prefix {} is not an install tree", p.display()));
    }
    let dir = own_profile_dir()?;
    if build {
        build_workspace(&dir)?;
    }
    Tools::in_profile_dir(&dir).with_context(|| {
        format!(
            "host tools not found in {} (build the workspace with --release, or pass --prefix)",
            dir.display()
        )
    })
}
