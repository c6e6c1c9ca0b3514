//! `ihk-abi`: the one definition of everything the host (`ihk`, `mcexec`) and
//! the lightweight kernel (`lwk`) share through guest memory.
//!
//! Owns: the guest-physical layout of the boot area, the boot parameters, the
//! monitor / memory-info / rusage pages, the noise trace, the kmsg ring header, the generic
//! single-producer/single-consumer IKC ring, the master-channel packets, and
//! the doorbell port and interrupt-vector numbers; Linux's system-call
//! numbers, errno values and the routing of each call (`linux`), and pure
//! range arithmetic both sides use (`range`).
//!
//! Must not: depend on `std` or allocate (the LWK links it), contain policy
//! (who boots what), or touch KVM. Every shared struct is `#[repr(C)]` and its
//! layout is asserted in this crate's tests; changing a layout means bumping
//! [`boot_params::BOOT_PARAMS_VERSION`].
#![no_std]

pub mod boot_params;
pub mod doorbell;
#[cfg(test)]
mod fuzz;
pub mod kmsg;
pub mod layout;
pub mod linux;
pub mod master;
pub mod meminfo;
pub mod monitor;
pub mod offload;
pub mod range;
pub mod ring;
pub mod rusage;
pub mod status;
pub mod trace;

pub use boot_params::{BootParams, CoreInfo, MemChunk, NumaNode, PhysRegion};
pub use monitor::{CpuMonitorSlot, MonitorPage};
pub use status::{CpuState, OsStatus};
