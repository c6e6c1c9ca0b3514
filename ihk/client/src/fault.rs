//! Deterministic fault injection (issue 20, item 1): with
//! `IHK_FAULT_STOP=<point>` in its environment, the process that reaches
//! the named point kills itself with SIGKILL there, exactly as a `kill -9`
//! at that moment would (no destructor, no undo, no reply). The points sit
//! right after a step changed the node, where a crash leaves the most to
//! clean up. ihkd inherits the variable from the `mcreboot` that starts
//! it, so one setting reaches the process named by the point's prefix.
//! `ihk/tests/faults.rs` kills each process at each point and checks that
//! `mcstop+release` gives the node back; `spank-plugin/tests/epilog_faults.rs`
//! does the same for the epilogue's points, with the epilogue run again.
//!
//! Without the variable a point costs one environment lookup; points are
//! only on the boot, attach, fork, shutdown and release paths and in
//! ihkmond's watch, never per system call.

/// The environment variable naming the point to die at.
pub const ENV: &str = "IHK_FAULT_STOP";

/// A file to which the dying process appends `<point> <pid>` (optional).
pub const LOG_ENV: &str = "IHK_FAULT_LOG";

/// Every point, by process, in the order the process reaches them.
pub const POINTS: &[&str] = &[
    "mcreboot:ihkd-started",
    "mcreboot:mem-reserved",
    "mcreboot:cpus-reserved",
    "mcreboot:os-created",
    "mcreboot:cpus-assigned",
    "mcreboot:mem-assigned",
    "mcreboot:image-loaded",
    "mcreboot:booted",
    "ihkd:mem-reserved",
    "ihkd:cpus-reserved",
    "ihkd:os-created",
    "ihkd:booted",
    "ihkd:attached",
    "ihkd:destroyed",
    "ihkd:quit",
    "mcexec:attached",
    "mcexec:running",
    "mcexec:exited",
    "mcexec:forked",
    "mcexec:fork-attached",
    "mcexec:fork-started",
    "mcstop+release:destroyed",
    "mcstop+release:cpus-released",
    "mcstop+release:mem-released",
    "ihkosctl:shutdown-sent",
    "ihkd:shut-down",
    "ihkmond:started",
    "ihkmond:watching",
    "mckernel-epilog:locked",
    "mckernel-epilog:proxies-ended",
    "mckernel-epilog:released",
];

/// Die here (SIGKILL) when `IHK_FAULT_STOP` names `point`.
pub fn point(point: &str) {
    debug_assert!(POINTS.contains(&point), "unknown fault point {point}");
    if std::env::var_os(ENV).is_some_and(|v| v == point) {
        eprintln!("{ENV}={point}: killing myself with SIGKILL");
        // A detached daemon's stderr is /dev/null: the test learns where
        // it died from this file.
        if let Some(log) = std::env::var_os(LOG_ENV) {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(f, "{point} {}", std::process::id());
            }
        }
        // SAFETY: kill(2) of our own pid; SIGKILL cannot be caught, so
        // nothing after this runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
