//! `ihk`: the host side of IHK without kernel modules.
//!
//! Owns: the list languages of the commands (`list`), what the node has
//! (`host`), taking CPUs and memory from Linux and giving them back with a
//! journal (`journal`, `reserve`), and the daemon itself
//! (`daemon`: OS instances on top of `ihk-vm` partitions), and ihkmond's
//! kmsg forwarding and hang detection (`mond`). The errors (`error`), the
//! ihkd protocol (`proto`), its client API (`client`) and the runtime
//! directory layout (`paths`) are the `ihk-client` crate's, re-exported here
//! unchanged: mcexec, libihk and the Slurm plugin use that crate alone.
//!
//! Must not: build or run the VM itself (that is `ihk-vm`), or change a
//! process, IRQ or sysfs value without journaling the old value first.

pub mod admin;
pub mod cli;
pub mod daemon;
pub mod host;
pub mod journal;
pub mod list;
pub mod mond;
pub mod reserve;

pub use ihk_client::{client, error, fault, paths, proto};
pub use ihk_client::{IhkError, IhkResult};
