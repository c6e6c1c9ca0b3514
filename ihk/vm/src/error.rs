//! Errors of the partition. Each names the bad value and what was expected.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The boot specification or the image is unusable (nothing was changed).
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    /// A KVM ioctl failed.
    #[error("KVM {op} failed: {source}")]
    Kvm {
        op: &'static str,
        #[source]
        source: vmm_sys_util::errno::Error,
    },
    /// Another system call failed.
    #[error("{op} failed: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The LWK panicked (message from its panic line, or the fatal vCPU exit).
    #[error("LWK panic: {msg}")]
    Panic { msg: String },
    /// The LWK did not reach the awaited state in time.
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout { what: &'static str, ms: u64 },
    /// The partition is not in a state that allows the operation.
    #[error("{0}")]
    State(String),
}

impl VmError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> VmError {
        VmError::Invalid {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn kvm(op: &'static str) -> impl FnOnce(vmm_sys_util::errno::Error) -> VmError {
        move |source| VmError::Kvm { op, source }
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(io::Error) -> VmError {
        move |source| VmError::Io { op, source }
    }

    /// The closest errno, for the C library and the daemon's replies.
    pub fn errno(&self) -> i32 {
        match self {
            VmError::Invalid { .. } => libc::EINVAL,
            VmError::Kvm { source, .. } => source.errno(),
            VmError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            VmError::Panic { .. } => libc::EIO,
            VmError::Timeout { .. } => libc::ETIMEDOUT,
            VmError::State(_) => libc::EBUSY,
        }
    }
}
