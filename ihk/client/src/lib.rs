//! `ihk-client`: the client side of IHK, light enough for every program
//! that talks to `ihkd`: the commands (through `ihk`), `libihk.so`
//! (`ihk/capi`), `mcexec` and the Slurm plugin.
//!
//! Owns: the ihkd control protocol (`proto`: requests, replies, the wire
//! framing with descriptors), the client API of the IHK functions
//! (`client`), the runtime directory layout (`paths`), the error every
//! IHK operation returns (`error`) and the fault-injection points of the
//! reliability tests (`fault`).
//!
//! Must not: depend on the daemon, the VMM (`ihk-vm`) or the LWK build; a
//! program linking this crate builds none of them.

pub mod client;
pub mod error;
pub mod fault;
pub mod paths;
pub mod proto;

/// The list languages (CPU lists, memory lists, IKC maps) the requests
/// carry: the `ihk-list` crate.
pub use ihk_list as list;

pub use error::{IhkError, IhkResult};
