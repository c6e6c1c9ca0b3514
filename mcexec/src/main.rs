//! `mcexec [<os index>] [options] <program> [args...]`: run a Linux program
//! on the LWK. See the library (`mcexec::session`) for how.

use std::ffi::OsString;

use mcexec::cli::{self, Parsed, USAGE};
use mcexec::session::{self, Ending};

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
    match session::run(&opts) {
        // _exit: proxy threads may still be inside calls; nothing of ours
        // needs flushing.
        // SAFETY: _exit ends the process at once.
        Ok(Ending::Exited(code)) => unsafe { libc::_exit(code) },
        Ok(Ending::Signaled(sig)) => die_of(sig),
        Err(f) => {
            eprintln!("mcexec: {}", f.message);
            // SAFETY: as above.
            unsafe { libc::_exit(f.code) }
        }
    }
}

/// End the way the LWK process ended: killed by `sig` (without a core dump
/// of mcexec itself), so that a shell reports the same status.
fn die_of(sig: i32) -> ! {
    // SAFETY: plain libc calls on our own process; SIG_DFL installs no code.
    unsafe {
        let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        libc::_exit(128 + sig)
    }
}
