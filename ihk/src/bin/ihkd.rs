//! ihkd: the IHK-master daemon (stands in for ihk.ko + ihk-smp-x86.ko and
//! their /dev/mcd0). It owns reserved CPUs and memory and the OS instances;
//! see `ihk::daemon`. Everything it changes on the node is journaled and
//! restored when it exits (Quit request, SIGTERM, SIGINT) or, after a crash,
//! when the next ihkd starts on the same runtime directory.

use std::path::PathBuf;

use clap::Parser;
use ihk::daemon::{self, Config, Readiness};
use ihk::paths::{Roots, RuntimeDir};
use ihk::reserve::Isolation;

#[derive(Parser, Debug)]
#[command(
    name = "ihkd",
    version,
    about = "IHK-master daemon: reserves CPUs and memory and runs LWK partitions as KVM VMs",
    after_help = "Environment: IHK_RUNTIME_DIR (default /run/ihk), IHK_ISOLATION (pin|evict, default evict), \
IHK_PROC_ROOT / IHK_SYS_ROOT (default /), IHK_LOG (log filter, default info).\n\
Sockets: <runtime dir>/mcd0 (device) and <runtime dir>/mcos<N> (OS instances); log: <runtime dir>/ihkd.log when daemonized."
)]
struct Args {
    /// Stay in the foreground and log to stderr.
    #[arg(long)]
    foreground: bool,
    /// How reserved CPUs are isolated: `pin` (only pin the vCPU threads) or
    /// `evict` (move every other task and IRQ off them).
    #[arg(long, value_name = "pin|evict")]
    isolation: Option<String>,
    /// Runtime directory (overrides IHK_RUNTIME_DIR).
    #[arg(long, value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
}

fn main() {
    fixed_mmap_threshold();
    let args = Args::parse();
    let iso_text = args
        .isolation
        .clone()
        .or_else(|| {
            std::env::var("IHK_ISOLATION")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "evict".to_string());
    let Some(isolation) = Isolation::parse(&iso_text) else {
        eprintln!("ihkd: invalid isolation mode '{iso_text}' (expected pin or evict)");
        std::process::exit(2);
    };
    let dir = args
        .runtime_dir
        .map(RuntimeDir)
        .unwrap_or_else(RuntimeDir::from_env);
    let cfg = Config {
        dir: dir.clone(),
        roots: Roots::from_env(),
        isolation,
    };

    let ready = if args.foreground {
        Readiness::Foreground
    } else {
        // The log goes next to the sockets; create the directory first so
        // the daemon can open it after detaching.
        if let Err(e) = daemon::prepare_runtime_dir(&dir) {
            eprintln!("ihkd: {e:#}");
            std::process::exit(1);
        }
        match daemon::daemonize() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ihkd: cannot daemonize: {e:#}");
                std::process::exit(1);
            }
        }
    };
    init_logging(args.foreground, &dir);
    if let Err(e) = daemon::run(cfg, ready) {
        tracing::error!("{e:#}");
        if args.foreground {
            eprintln!("ihkd: {e:#}");
        }
        std::process::exit(1);
    }
}

/// ihkd lives through many boots: every buffer of 1 MiB or more (a loaded
/// LWK image, a kmsg or dump copy) gets its own mapping, unmapped when it is
/// freed. With glibc's default the threshold rises to the largest size
/// freed, after which such buffers come from the connection threads'
/// arenas, which keep the memory: scripts/soak.sh saw ihkd's resident
/// memory grow by about 7.5 MiB (two copies of the image) every few boots.
fn fixed_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; no thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn init_logging(foreground: bool, dir: &RuntimeDir) {
    ihk::cli::init_daemon_logging(foreground, &dir.log_file());
}
