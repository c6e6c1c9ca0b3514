//! `mcexec [<os index>] [options] <program> [args...]`: run a Linux program
//! on the LWK. See the library (`mcexec::session`) for how.

use std::ffi::OsString;

use mcexec::cli::{self, Parsed, USAGE};
use mcexec::session;

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let opts = match cli::parse(&args) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("mcexec: {e}");
            eprint!("{USAGE}");
            std::process::exit(1);
        }
    };
    session::exit_as(session::run(&opts))
}
