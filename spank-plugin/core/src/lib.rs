//! Slurm integration of the Rust IHK/McKernel, without Slurm: everything
//! the SPANK plugin (`spank-plugin/`) and the job epilogue
//! (`mckernel-epilog`) decide and do, as plain Rust that unit tests can run.
//!
//! Owns: parsing and validating the `--mckernel*` options, the site
//! configuration file, turning a step's allocation into a partition
//! (CPUs, memory, IKC map, kernel arguments), the node's partition record
//! and lock (boot once per job, reuse by later steps), running the IHK
//! tools, and the ordered cleanup with its "node as before" checks.
//! Must not touch: Slurm's API (the plugin crate wraps it), IHK internals
//! (it only runs the installed `mcreboot`, `mcstop+release`, `ihkconfig`,
//! `ihkosctl`, `mcexec`), and any process that is not the job's mcexec.

pub mod baseline;
pub mod command;
pub mod config;
pub mod drain;
#[cfg(test)]
mod fuzz;
pub mod launch;
pub mod lifecycle;
pub mod lists;
pub mod options;
pub mod plan;
pub mod procs;
pub mod state;
pub mod topology;
