//! Log lines on stderr, filtered by the UTI log level.
//!
//! The level lives in the exported C variable `uti_loglevel` (an
//! `enum uti_loglevel`, written directly by the header's inline
//! `uti_set_loglevel`), so C callers and this crate share one value. It
//! starts at `UTI_LOGLEVEL_WARN` and is set from `UTI_LOGLEVEL` when the
//! library is loaded (or, for Rust users, at the first call into the crate).
//! This is a small purpose-built logger rather than `tracing`: libuti is
//! mostly loaded by C programs, which install no subscriber, and the level
//! must be the C-visible variable.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

/// Log levels, numbered as the C `enum uti_loglevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    /// Errors only (`UTI_LOGLEVEL_ERR`).
    Err = 0,
    /// Errors and warnings (`UTI_LOGLEVEL_WARN`), the default.
    Warn = 1,
    /// Everything, including placement decisions (`UTI_LOGLEVEL_DEBUG`).
    Debug = 2,
}

impl Level {
    /// Parses a `UTI_LOGLEVEL` value: `0`-`2` or `err`/`warn`/`debug`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" | "err" | "error" => Some(Level::Err),
            "1" | "warn" | "warning" => Some(Level::Warn),
            "2" | "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

/// The C variable `uti_loglevel` (`extern enum uti_loglevel uti_loglevel;`
/// in `uti.h`). An `AtomicI32` has the size, alignment and representation of
/// a C `int`, which is what the C enum is.
#[allow(non_upper_case_globals)]
#[no_mangle]
pub static uti_loglevel: AtomicI32 = AtomicI32::new(Level::Warn as i32);

static ENV_INIT: Once = Once::new();

/// Runs when the shared library (or a binary linking this crate) is loaded,
/// so `UTI_LOGLEVEL` is applied before the program can call
/// `uti_set_loglevel`, which then overrides it (as in the original libuti).
extern "C" fn load_time_init() {
    init_from_env();
}

// A pointer in `.init_array` is called by the dynamic loader (or the C
// runtime for static links) before `main`; the function only reads the
// environment and stores an integer.
#[used]
#[link_section = ".init_array"]
static INIT_ARRAY_ENTRY: extern "C" fn() = load_time_init;

/// Applies `UTI_LOGLEVEL` once per process.
pub fn init_from_env() {
    ENV_INIT.call_once(|| {
        if let Ok(v) = std::env::var("UTI_LOGLEVEL") {
            match Level::parse(&v) {
                Some(l) => uti_loglevel.store(l as i32, Ordering::Relaxed),
                None => eprintln!(
                    "uti: warning: ignoring UTI_LOGLEVEL={v:?}: expected 0 (err), 1 (warn) or 2 (debug)"
                ),
            }
        }
    });
}

/// Sets the level (the Rust form of `uti_set_loglevel`).
pub fn set_level(level: Level) {
    init_from_env();
    uti_loglevel.store(level as i32, Ordering::Relaxed);
}

/// Whether messages of `level` are printed.
pub fn enabled(level: Level) -> bool {
    init_from_env();
    uti_loglevel.load(Ordering::Relaxed) >= level as i32
}

/// Writes one line to stderr if `level` is enabled.
pub fn emit(level: Level, args: std::fmt::Arguments<'_>) {
    if enabled(level) {
        let tag = match level {
            Level::Err => "error",
            Level::Warn => "warning",
            Level::Debug => "debug",
        };
        eprintln!("uti: {tag}: {args}");
    }
}

/// Logs an error line.
macro_rules! error {
    ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Err, format_args!($($t)*)) };
}
/// Logs a warning line.
macro_rules! warning {
    ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Warn, format_args!($($t)*)) };
}
/// Logs a debug line.
macro_rules! debug {
    ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Debug, format_args!($($t)*)) };
}
pub(crate) use {debug, error, warning};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_levels() {
        assert_eq!(Level::parse("0"), Some(Level::Err));
        assert_eq!(Level::parse(" warn "), Some(Level::Warn));
        assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
        assert_eq!(Level::parse("3"), None);
        assert_eq!(Level::parse("verbose"), None);
    }
}
