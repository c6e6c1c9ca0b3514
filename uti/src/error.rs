//! Errors of the UTI library and the errno each one is reported as through
//! the C API.

use crate::cpuset::CpuListError;

/// Why a utility thread could not be placed or created.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A NULL or malformed argument, or hints that exclude each other.
    #[error("invalid UTI attribute: {0}")]
    InvalidAttr(String),
    /// The hints, the environment and the allowed CPUs leave no CPU.
    #[error("no CPU satisfies the request: {0}")]
    NoCpu(String),
    /// An environment variable of the library has a value it cannot use.
    #[error("bad value {value:?} in environment variable {var}: {expected}")]
    BadEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A CPU list in the environment does not parse.
    #[error("environment variable {var}: {source}")]
    BadCpuList {
        /// The variable.
        var: &'static str,
        /// The parse error (names the bad text).
        source: CpuListError,
    },
    /// The topology could not be loaded.
    #[error("cannot load the topology: {0}")]
    Topology(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// The errno value the C API returns for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::InvalidAttr(_)
            | Error::NoCpu(_)
            | Error::BadEnv { .. }
            | Error::BadCpuList { .. }
            | Error::Topology(_) => libc::EINVAL,
            Error::Os { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// An [`Error::Os`] from the current `errno`.
    pub(crate) fn last_os(what: impl Into<String>) -> Self {
        Error::Os {
            what: what.into(),
            source: std::io::Error::last_os_error(),
        }
    }

    /// An [`Error::Os`] from an errno value.
    pub(crate) fn os(what: impl Into<String>, errno: i32) -> Self {
        Error::Os {
            what: what.into(),
            source: std::io::Error::from_raw_os_error(errno),
        }
    }
}
