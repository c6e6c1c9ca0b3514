//! `ihk`: the host side of IHK without kernel modules.
//!
//! Owns: the list languages of the commands (`list`), the errors and errno
//! values of the specification (`error`), the ihkd protocol (`proto`) and its
//! client API (`client`, which ihkconfig, ihkosctl, mcreboot, mcstop+release
//! and later libihk and mcexec use), the runtime directory layout (`paths`),
//! what the node has (`host`), taking CPUs and memory from Linux and giving
//! them back with a journal (`journal`, `reserve`), and the daemon itself
//! (`daemon`: OS instances on top of `ihk-vm` partitions), and ihkmond's
//! kmsg forwarding and hang detection (`mond`).
//!
//! Must not: build or run the VM itself (that is `ihk-vm`), or change a
//! process, IRQ or sysfs value without journaling the old value first.

pub mod admin;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod error;
pub mod host;
pub mod journal;
pub mod list;
pub mod mond;
pub mod paths;
pub mod proto;
pub mod reserve;

pub use error::{IhkError, IhkResult};
