//! The LWK's pure logic, compiled for the host: the files of `lwk/src` that
//! touch no hardware, included as they are through `#[path]` in a module
//! tree that mirrors the kernel's (so their `crate::` and `super::` paths
//! resolve the same way). What the kernel gets from files not included
//! here (a few constants and `Perm`) comes from the small shims below,
//! which must agree with the kernel's.
//!
//! The tests are in `tests/`: one file per module, and `layers.rs`, the
//! check that `lwk/src` imports only downwards.

extern crate alloc;

#[path = "../../src/errno.rs"]
pub mod errno;

pub mod elf;
pub mod lwkfs;
pub mod mm;
pub mod process;
