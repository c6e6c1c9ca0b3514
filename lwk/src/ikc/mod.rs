//! Inter-kernel communication. Only the master channel exists so far; the
//! per-CPU syscall channels will reuse `ihk_abi::ring` the same way.
//! `freeze` (ihk_os_freeze/thaw) and `rusage` (the rusage page) serve
//! requests of the host's libihk.
pub mod freeze;
pub mod master;
pub mod rusage;
