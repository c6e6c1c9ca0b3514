//! ihkmond (specification §1.3.2.18): forwards the kernel messages of every
//! OS instance to syslog and detects hangs and panics, which it reports to
//! ihkd (status HUNGUP, eventfds of `ihk_os_get_eventfd`). See `ihk::mond`.
//!
//! `ihkmond [-k <redirect_kmsg>] [-i <mon_interval>] [-f <facility>]`;
//! it detaches and returns once it runs (`--foreground` keeps it attached).
//! One per runtime directory (`<dir>/ihkmond.pid`, locked); SIGTERM or
//! SIGINT stop it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use ihk::daemon::{self, PidLock, Readiness};
use ihk::mond::{self, syslog, Options, DEFAULT_INTERVAL_SECS};
use ihk::paths::RuntimeDir;

#[derive(Parser, Debug)]
#[command(
    name = "ihkmond",
    version,
    about = "Forward LWK kernel messages to syslog and detect hangs and panics",
    after_help = "Environment: IHK_RUNTIME_DIR (default /run/ihk), IHKMOND_SYSLOG_SOCKET (default /dev/log), \
IHK_LOG (log filter, default info).\nLog: <runtime dir>/ihkmond.log when detached; pid file <runtime dir>/ihkmond.pid."
)]
struct Args {
    /// Forward kernel messages to syslog: 0 no, anything else yes.
    #[arg(
        short = 'k',
        value_name = "redirect_kmsg",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    redirect_kmsg: i64,
    /// Seconds between hang checks; -1 turns hang detection off.
    #[arg(short = 'i', value_name = "mon_interval", default_value_t = DEFAULT_INTERVAL_SECS, allow_negative_numbers = true)]
    mon_interval: i64,
    /// Syslog facility (LOG_LOCAL0 ... LOG_LOCAL7, LOG_DAEMON, ...).
    #[arg(short = 'f', value_name = "facility", default_value = "LOG_LOCAL6")]
    facility: String,
    /// Stay in the foreground and log to stderr.
    #[arg(long)]
    foreground: bool,
    /// Runtime directory (overrides IHK_RUNTIME_DIR).
    #[arg(long, value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    let args = Args::parse();
    let Some(facility) = syslog::facility_code(&args.facility) else {
        let names: Vec<&str> = syslog::FACILITIES.iter().map(|f| f.0).collect();
        eprintln!(
            "ihkmond: -f {}: unknown syslog facility (expected one of {})",
            args.facility,
            names.join(", ")
        );
        std::process::exit(2);
    };
    let interval = match args.mon_interval {
        -1 => None,
        s if s > 0 => Some(Duration::from_secs(s as u64)),
        s => {
            eprintln!(
                "ihkmond: -i {s}: expected -1 (no hang detection) or a positive number of seconds"
            );
            std::process::exit(2);
        }
    };
    let opts = Options {
        facility,
        redirect_kmsg: args.redirect_kmsg != 0,
        interval,
    };
    let dir = args
        .runtime_dir
        .map(|d| RuntimeDir(ihk::paths::absolute(d)))
        .unwrap_or_else(RuntimeDir::from_env);
    if let Err(e) = daemon::prepare_runtime_dir(&dir) {
        eprintln!("ihkmond: {e:#}");
        std::process::exit(1);
    }
    let mut ready = if args.foreground {
        Readiness::Foreground
    } else {
        match daemon::daemonize_as("ihkmond") {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ihkmond: cannot daemonize: {e:#}");
                std::process::exit(1);
            }
        }
    };
    init_logging(args.foreground, &dir);
    let lock = match PidLock::acquire_file(mond::pid_file(&dir), "ihkmond", &dir) {
        Ok(l) => l,
        Err(e) => {
            ready.fail(&format!("{e:#}"));
            tracing::error!("{e:#}");
            if args.foreground {
                eprintln!("ihkmond: {e:#}");
            }
            std::process::exit(1);
        }
    };
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    ready.ok();
    ihk::fault::point("ihkmond:started");
    mond::run(&dir, &opts, &STOP);
    drop(lock);
}

fn init_logging(foreground: bool, dir: &RuntimeDir) {
    ihk::cli::init_daemon_logging(foreground, &mond::log_file(dir));
}
