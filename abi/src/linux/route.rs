//! Where each system call runs, as the LWK's routing table
//! (`lwk/src/syscall/table.rs`, include!d here) says: the answer mcexec asks
//! before it executes an offloaded call, so that the LWK and mcexec cannot
//! disagree. The table's handler paths are dropped here: only whether a
//! call is local, offloaded or refused (with which errno) crosses over.

use super::errno::{self, Errno};
use super::sys;

/// How a system call is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The LWK handles it; it must never run on Linux for the program.
    Local,
    /// The LWK's handler serves what the LWK owns (a /proc path, its own
    /// pid) and offloads the rest as this same call, which mcexec runs.
    LocalOrOffload,
    /// mcexec runs it on Linux.
    Offload,
    /// The LWK answers `-errno` itself.
    Refused(Errno),
}

/// One line of the table.
#[derive(Clone, Copy, Debug)]
pub struct RouteLine {
    /// `SYS_` name.
    pub name: &'static str,
    pub nr: u64,
    pub route: Route,
    /// Why, for a refused call ("" otherwise).
    pub reason: &'static str,
}

/// abi's reading of `routes! { SYS_x => Local(handler), SYS_y => Offload,
/// SYS_w => LocalOrOffload(handler), SYS_z => Refused(ERRNO, "reason"),
/// _ => Offload }`: [`TABLE`] and [`route`].
macro_rules! routes {
    ($($nr:ident => $kind:ident $(($($arg:tt)*))?,)* _ => Offload $(,)?) => {
        /// Every line of the table, in its order.
        pub const TABLE: &[RouteLine] = &[$(RouteLine {
            name: stringify!($nr),
            nr: sys::$nr,
            route: routes!(@route $kind $(($($arg)*))?),
            reason: routes!(@why $kind $(($($arg)*))?),
        },)*];

        /// How system call `nr` is served (numbers Linux does not define:
        /// [`Route::Offload`], as the table's last line says).
        pub fn route(nr: u64) -> Route {
            #[deny(unreachable_patterns)]
            match nr {
                $(sys::$nr => routes!(@route $kind $(($($arg)*))?),)*
                _ => Route::Offload,
            }
        }
    };
    (@route Offload) => { Route::Offload };
    (@route Local($($handler:tt)*)) => { Route::Local };
    (@route LocalOrOffload($($handler:tt)*)) => { Route::LocalOrOffload };
    (@route Refused($errno:ident, $why:literal)) => { Route::Refused(errno::$errno) };
    (@why Refused($errno:ident, $why:literal)) => { $why };
    (@why $($other:tt)*) => { "" };
}

include!("../../../lwk/src/syscall/table.rs");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_linux_call_has_exactly_one_line() {
        for &(name, nr) in sys::ALL {
            let lines: usize = TABLE.iter().filter(|l| l.nr == nr).count();
            assert_eq!(lines, 1, "{name} ({nr}) has {lines} lines in table.rs");
            let line = TABLE.iter().find(|l| l.nr == nr).unwrap();
            assert_eq!(line.name, name, "number {nr}");
        }
        assert_eq!(TABLE.len(), sys::ALL.len());
        // Ascending, as Linux numbers them: easy to read and to diff.
        assert!(TABLE.windows(2).all(|w| w[0].nr < w[1].nr));
    }

    #[test]
    fn lines_and_lookups_agree() {
        for l in TABLE {
            assert_eq!(route(l.nr), l.route, "{}", l.name);
            assert_eq!(
                matches!(l.route, Route::Refused(_)),
                !l.reason.is_empty(),
                "{}",
                l.name
            );
        }
        assert_eq!(route(sys::SYS_mmap), Route::Local);
        assert_eq!(route(sys::SYS_pread64), Route::Offload);
        assert_eq!(route(sys::SYS_read), Route::LocalOrOffload);
        assert_eq!(route(sys::SYS_openat), Route::LocalOrOffload);
        assert_eq!(route(sys::SYS_shmat), Route::Local);
        assert_eq!(route(sys::SYS_msync), Route::LocalOrOffload);
        assert_eq!(route(1000), Route::Offload);
    }
}
