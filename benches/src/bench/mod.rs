//! The benchmarks. Each module runs one program through a `Runner` (so the
//! LWK and the Linux side share the code) and turns its output into samples.

pub mod boot;
pub mod fwq;
pub mod gups;
pub mod launch;
pub mod mpi;
pub mod overlap;
pub mod stream;
pub mod syscall;
pub mod threads;

use crate::config::Options;
use crate::programs::Programs;
use crate::runner::Side;
use std::path::PathBuf;

/// What every benchmark needs besides the runner.
pub struct Ctx<'a> {
    pub opts: &'a Options,
    pub progs: &'a Programs,
    /// Where the programs write their raw samples.
    pub raw_dir: PathBuf,
}

impl Ctx<'_> {
    /// `<raw>/<name>-<side>.txt`, absolute (the LWK side opens it through
    /// mcexec, whose working directory may differ).
    pub fn raw_file(&self, name: &str, side: Side) -> PathBuf {
        self.raw_dir
            .join(format!("{name}-{}.txt", side.name().to_lowercase()))
    }
}

/// A benchmark's result, or why it could not be measured.
pub type Outcome<T> = Result<T, String>;

pub fn outcome<T>(r: anyhow::Result<T>) -> Outcome<T> {
    r.map_err(|e| format!("{e:#}"))
}
