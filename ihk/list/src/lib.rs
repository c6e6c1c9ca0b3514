//! `ihk-list`: the three list languages of the IHK commands (specification
//! §1.3): CPU lists (`1,3-5`), memory lists (`512M@0,1G@1`, `ALL`, `all`)
//! and IKC maps (`1-3:0+5-7:4`). Each parser rejects bad input with a
//! [`ListError`] that names the offending token and says what was expected;
//! each printer produces the specification's format, which the parsers read
//! back (the query output of one command is the argument of another in
//! mcreboot's undo chain: `ihkconfig 0 release cpu $(ihkconfig 0 query cpu)`).
//!
//! Owns: only parsing and printing. It is a separate crate (re-exported as
//! `ihk::list`) so that programs that must stay small, such as the Slurm
//! SPANK plugin loaded into slurmd, share the one parser without linking the
//! host daemon and the VMM.
//! Must not: depend on anything but serde and thiserror, touch the system,
//! or run code at load time.

mod cpu;
mod ikc;
mod mem;
#[cfg(test)]
mod fuzz;

pub use cpu::{format_cpus, CpuList, MAX_CPU_ID};
pub use ikc::IkcMap;
pub use mem::{format_size, MemChunk, MemList, MemSize, MEM_GRANULE};

/// A rejected list argument: the whole input, the bad token and what the
/// grammar expected at that point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{input}': {problem} (expected {expected})")]
pub struct ListError {
    /// "CPU list", "memory list" or "IKC map".
    pub what: &'static str,
    /// The full argument as given.
    pub input: String,
    /// What is wrong, naming the token.
    pub problem: String,
    /// The grammar, with an example.
    pub expected: &'static str,
}
