//! The benchmark programs: C sources in `examples/bench/`, compiled here
//! with gcc, statically (so the LWK needs no dynamic loader for them and
//! both sides run the very same file), into `<out>/bin/`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of the compiled programs.
#[derive(Debug, Clone)]
pub struct Programs {
    pub fwq: PathBuf,
    pub stream: PathBuf,
    pub gups: PathBuf,
    pub syscall: PathBuf,
    pub threads: PathBuf,
}

pub const NAMES: [&str; 5] = ["fwq", "stream", "gups", "syscall", "threads"];

/// `examples/bench` of this workspace.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bench")
}

/// Compiles every program from `src` into `bin_dir`.
pub fn build(src: &Path, bin_dir: &Path) -> Result<Programs> {
    std::fs::create_dir_all(bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let bin_dir = bin_dir.canonicalize()?;
    for name in NAMES {
        let source = src.join(format!("{name}.c"));
        if !source.is_file() {
            bail!("benchmark source {} is missing", source.display());
        }
        let out = bin_dir.join(name);
        // Baseline x86-64 code: the LWK may not enable AVX state, and the
        // kernels are memory- or syscall-bound anyway.
        let result = Command::new("gcc")
            .args([
                "-O2",
                "-static",
                "-std=gnu11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pthread",
                "-o",
            ])
            .arg(&out)
            .arg(&source)
            .arg("-lm")
            .output();
        let result = match result {
            Ok(r) => r,
            Err(e) => bail!("cannot run gcc ({e}); install gcc and libc6-dev"),
        };
        if !result.status.success() {
            bail!(
                "gcc failed on {}: {}",
                source.display(),
                String::from_utf8_lossy(&result.stderr).trim()
            );
        }
    }
    Ok(Programs {
        fwq: bin_dir.join("fwq"),
        stream: bin_dir.join("stream"),
        gups: bin_dir.join("gups"),
        syscall: bin_dir.join("syscall"),
        threads: bin_dir.join("threads"),
    })
}
