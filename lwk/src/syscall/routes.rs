//! The LWK's reading of the routing table (`table.rs`, shared with mcexec
//! through `ihk_abi::linux::route`): its `routes!` turns each line into an
//! arm of `table::lookup`, keeping the handler (`Local` and `LocalOrOffload`
//! are the same here: the handler decides what to offload). A
//! `Refused(errno, ..)` line becomes a handler that returns `-errno` without
//! offloading.
//!
//! Owns: [`Entry`], [`Handler`] and the `routes!` macro; no routing decision
//! (those are all in `table.rs`).

use super::errno::{Errno, SysResult};
use crate::arch::x86_64::idt::TrapFrame;

pub type Handler = fn(&mut TrapFrame) -> SysResult;

pub enum Entry {
    Local(Handler),
    Offload,
}

/// The handler of a `Refused(errno, reason)` line.
pub fn refused<const ERRNO: i32>(_: &mut TrapFrame) -> SysResult {
    Err(Errno(ERRNO))
}

/// `routes! { SYS_x => Local(module::handler), SYS_y => Offload,
/// SYS_w => LocalOrOffload(module::handler), SYS_z => Refused(ERRNO,
/// "reason"), _ => Offload }` defines
/// `lookup(nr) -> Entry` in the invoking module (`table`), handler paths
/// relative to `syscall`. A number listed twice does not compile.
macro_rules! routes {
    ($($nr:ident => $kind:ident $(($($arg:tt)*))?,)* _ => Offload $(,)?) => {
        pub use super::routes::Entry;

        pub fn lookup(nr: u64) -> Entry {
            #[deny(unreachable_patterns)]
            match nr {
                $(ihk_abi::linux::sys::$nr => routes!(@entry $kind $(($($arg)*))?),)*
                _ => Entry::Offload,
            }
        }
    };
    (@entry Offload) => {
        Entry::Offload
    };
    (@entry Local($($handler:tt)*)) => {
        Entry::Local(super::$($handler)*)
    };
    (@entry LocalOrOffload($($handler:tt)*)) => {
        Entry::Local(super::$($handler)*)
    };
    (@entry Refused($errno:ident, $why:literal)) => {
        Entry::Local(super::routes::refused::<{ ihk_abi::linux::errno::$errno.0 }>)
    };
}
