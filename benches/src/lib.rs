//! mck-bench: the performance report (issue 5; the thread rows of issue 12).
//!
//! Owns: compiling the benchmark programs of `examples/bench/` (C, static),
//! booting its own partitions (`mcreboot`, `pin` isolation, its own
//! IHK_RUNTIME_DIR; one CPU, then two for the thread benchmarks) under the
//! workspace's partition lock and running every benchmark there under
//! `mcexec`, then running the same binaries natively pinned to the same
//! CPUs after the partitions are released; statistics, targets, the table
//! (console and `report.md`) and the PNG plots in the output directory.
//!
//! Must not touch: partitions, processes or runtime directories it did not
//! create; system-wide settings (transparent huge pages are chosen per table
//! by gups.c's own madvise). It never asserts on timings: it reports them.

pub mod affinity;
pub mod bench;
pub mod config;
pub mod interrupt;
pub mod lock;
pub mod markdown;
pub mod parse;
pub mod partition;
pub mod plot;
pub mod programs;
pub mod report;
pub mod runner;
pub mod stats;
pub mod suite;
pub mod tools;

use clap::Parser;
use std::process::ExitCode;

/// The command line entry point of `mck-bench` and `cargo bench -p mck-bench`.
pub fn run_cli() -> ExitCode {
    let opts = config::Options::parse();
    match opts.resolve().and_then(|o| suite::run(&o)) {
        Ok(summary) => summary.exit_code(),
        Err(e) => {
            eprintln!("mck-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
