//! Keeps POSIX thread cancellation out of the library's own code.
//!
//! Deferred cancellation acts at cancellation points, which include the
//! file calls of the usage table (open, pread, flock...). A cancellation
//! acted on inside the library would unwind Rust frames that are not built
//! for it (and abort at a `catch_unwind`), so library code runs with
//! cancellation disabled and restores the caller's state on the way out;
//! a pending request then acts at the caller's next cancellation point.

use std::ffi::c_int;

/// glibc's `PTHREAD_CANCEL_DISABLE`.
const PTHREAD_CANCEL_DISABLE: c_int = 1;

extern "C" {
    fn pthread_setcancelstate(state: c_int, oldstate: *mut c_int) -> c_int;
}

/// Cancellation disabled for the calling thread while this lives.
pub struct NoCancel {
    old: c_int,
}

impl NoCancel {
    /// Disables cancellation, remembering the previous state.
    pub fn new() -> Self {
        let mut old = 0;
        // SAFETY: valid state constant and out-pointer; affects only the
        // calling thread.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
        NoCancel { old }
    }
}

impl Default for NoCancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoCancel {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: restores the state read in `new` on the same thread.
        unsafe { pthread_setcancelstate(self.old, &mut ignored) };
    }
}
