//! Linux's x86-64 system-call interface by name, for the LWK, mcexec and
//! tests: call numbers (`sys`), errno values (`errno`), and how the system
//! routes each call (`route`, read from the LWK's `syscall/table.rs`),
//! and how execve reads a `#!` script's interpreter line (`script`).

pub mod errno;
pub mod route;
pub mod script;
pub mod sys;

pub use errno::Errno;
pub use route::{route, Route};
