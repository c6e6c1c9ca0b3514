//! Linux errno values the LWK returns: the names and the [`Errno`] type are
//! `ihk_abi::linux::errno`'s (one definition for the LWK, mcexec and tests);
//! this module adds the handlers' result type. Below every layer: imports
//! nothing of the kernel, so any layer may return an [`Errno`].

pub use ihk_abi::linux::errno::*;

/// Result of a system call handler: the value for rax, or an errno.
pub type SysResult = Result<u64, Errno>;

/// The raw return value for rax.
pub fn to_raw(r: SysResult) -> u64 {
    match r {
        Ok(v) => v,
        Err(Errno(e)) => (-(e as i64)) as u64,
    }
}
