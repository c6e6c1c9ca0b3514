//! What the commands share: error reporting in the specification's form
//! (`Error: ...` then a detail line, non-zero exit) and output formats.

use crate::error::IhkError;
use crate::list::{MemChunk, MemList};

/// Print `Error: <spec text>` and `<prog>: <what>: <detail>` on stderr and
/// exit with the error's status.
pub fn fail(prog: &str, what: &str, e: &IhkError, about_os: bool) -> ! {
    eprintln!("{}", e.headline(about_os));
    eprintln!("{prog}: {what}: {}", e.detail);
    std::process::exit(e.exit_code())
}

/// Print the daemon's warnings for a successful call.
pub fn print_warnings(prog: &str, warnings: &[String]) {
    for w in warnings {
        eprintln!("{prog}: warning: {w}");
    }
}

/// `(bytes, node)` pairs in the query format `<bytes>@<node>,...`.
pub fn format_mem(mem: &[(u64, u32)]) -> String {
    MemList(mem.iter().map(|&(b, n)| MemChunk::bytes(b, n)).collect()).to_string()
}

/// The program name for messages (basename of argv[0], or `default`).
pub fn prog_name(default: &str) -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| default.to_string())
}

/// Logging of the daemons (`ihkd`, `ihkmond`): to stderr in the foreground,
/// else appended to `log_file` (discarded if it cannot be opened). The
/// filter comes from `IHK_LOG` (default `info`).
pub fn init_daemon_logging(foreground: bool, log_file: &std::path::Path) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("IHK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if foreground {
        use std::io::IsTerminal;
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    match std::fs::OpenOptions::new().create(true).append(true).open(log_file) {
        Ok(f) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .init(),
        Err(_) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::sink)
            .init(),
    }
}
