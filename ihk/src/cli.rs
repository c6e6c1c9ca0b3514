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
