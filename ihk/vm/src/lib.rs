//! `ihk-vm`: one IHK OS instance as a KVM virtual machine (ARCHITECTURE §3-§5).
//!
//! Owns: the VM and its memslots (`vm`), the vCPU threads pinned to their
//! Linux CPUs (`vcpu`), the guest-physical placement of the reserved chunks
//! (`memory`), loading and entering the LWK (`boot/`), the host end of the
//! master IKC channel (`ikc`), and reading the kmsg buffer and monitor page
//! (`kmsg`, `monitor`), and ELF core files of the partition (`coredump`).
//! [`Partition`] ties them together.
//!
//! Must not: reserve or release host resources (CPUs, memfds: the caller,
//! `ihk`, owns them and hands them in through [`BootSpec`]), re-pin or signal
//! any thread it did not start, or change anything on the host besides its
//! own VM. The LWK image built from `lwk/` is at [`LWK_IMAGE_PATH`].

mod boot;
mod coredump;
mod error;
#[cfg(test)]
mod fuzz;
mod ikc;
mod kmsg;
mod memory;
mod monitor;
mod partition;
mod spec;
mod vcpu;
mod vm;

pub use error::VmError;
pub use ihk_abi::{CpuState, OsStatus};
pub use memory::GuestRegion;
pub use monitor::CpuMonitor;
pub use partition::{
    AttachRegion, CpuTrace, DumpLevel, DumpSummary, KmsgChunk, OffloadAttachment, Partition,
    Rusage, ShareBacking, TraceEntry, TraceInfo,
};
pub use spec::{BootSpec, ChunkSpec, CpuSpec};

/// Path of the LWK image (`mckernel.img`) built with this crate.
pub const LWK_IMAGE_PATH: &str = env!("IHK_LWK_IMAGE");

/// Check that `bytes` is an LWK image this crate can boot: ELF64,
/// little-endian, x86-64, `ET_EXEC`, entry point and every loadable segment
/// inside the kernel window at [`ihk_abi::layout::KERNEL_VIRT_BASE`].
/// Used by `ihkosctl load` before keeping an image.
pub fn validate_image(bytes: &[u8]) -> Result<(), VmError> {
    boot::elf::KernelImage::parse(bytes).map(|_| ())
}

// The daemon shares partitions between threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Partition>();
};
