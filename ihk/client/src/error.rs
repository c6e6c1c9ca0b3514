//! The error every IHK operation returns: a specification errno plus a
//! sentence for the administrator.
//!
//! The errno is what `libihk` returns (negated) and what the commands turn
//! into the specification's `Error: ...` line (§1.3); the detail names the
//! bad value and what was expected.

use std::fmt;

pub use libc::{EACCES, EBUSY, EINVAL, EIO, ENOENT, ENOMEM, EPERM, EPROTO, ETIMEDOUT};

/// An IHK error: errno (positive) and detail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IhkError {
    pub errno: i32,
    pub detail: String,
}

pub type IhkResult<T> = Result<T, IhkError>;

impl IhkError {
    pub fn new(errno: i32, detail: impl Into<String>) -> Self {
        IhkError {
            errno,
            detail: detail.into(),
        }
    }
    pub fn inval(detail: impl Into<String>) -> Self {
        Self::new(EINVAL, detail)
    }
    pub fn noent(detail: impl Into<String>) -> Self {
        Self::new(ENOENT, detail)
    }
    pub fn perm(detail: impl Into<String>) -> Self {
        Self::new(EPERM, detail)
    }
    pub fn busy(detail: impl Into<String>) -> Self {
        Self::new(EBUSY, detail)
    }
    pub fn nomem(detail: impl Into<String>) -> Self {
        Self::new(ENOMEM, detail)
    }
    pub fn io(detail: impl Into<String>) -> Self {
        Self::new(EIO, detail)
    }

    /// An OS error (from a system call) with what was being done.
    pub fn os(err: std::io::Error, doing: impl fmt::Display) -> Self {
        let errno = err.raw_os_error().unwrap_or(EIO);
        Self::new(errno, format!("{doing}: {err}"))
    }

    /// The specification's `Error: ...` line for this errno. `about_os`
    /// selects the ihkosctl wording for ENOENT.
    pub fn headline(&self, about_os: bool) -> String {
        let text = match self.errno {
            ENOENT if about_os => "OS instance not found",
            ENOENT => "IHK device not found",
            EINVAL => "Invalid argument",
            EPERM => "Operation not permitted",
            EACCES => "Permission denied",
            EBUSY => "Device or resource busy",
            ENOMEM => "Cannot allocate memory",
            _ => {
                let text = std::io::Error::from_raw_os_error(self.errno).to_string();
                // "Input/output error (os error 5)" -> "Input/output error"
                let text = text.split(" (os error").next().unwrap_or(&text).to_string();
                return format!("Error: {text}");
            }
        };
        format!("Error: {text}")
    }

    /// The exit status a command returns for this error: the errno when it
    /// fits a shell status, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if (1..=125).contains(&self.errno) {
            self.errno
        } else {
            1
        }
    }
}

impl fmt::Display for IhkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            self.detail,
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for IhkError {}

impl From<crate::list::ListError> for IhkError {
    fn from(e: crate::list::ListError) -> Self {
        IhkError::inval(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headlines_are_the_spec_strings() {
        assert_eq!(
            IhkError::noent("x").headline(true),
            "Error: OS instance not found"
        );
        assert_eq!(
            IhkError::inval("x").headline(false),
            "Error: Invalid argument"
        );
        assert_eq!(
            IhkError::perm("x").headline(false),
            "Error: Operation not permitted"
        );
        assert_eq!(IhkError::inval("x").exit_code(), EINVAL);
        assert_eq!(IhkError::new(300, "x").exit_code(), 1);
    }
}
