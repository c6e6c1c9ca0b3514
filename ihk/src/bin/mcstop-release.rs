//! mcstop+release (also installed as mcstop+release.sh): shut down and
//! destroy every OS instance, release all CPUs and memory, restore the node
//! from the journal and stop ihkd. Exit 0 when the node is clean; otherwise
//! non-zero, naming what could not be restored. See `ihk::admin::stop`.

use clap::Parser;
use ihk::admin::stop::stop_release;
use ihk::paths::RuntimeDir;

#[derive(Parser, Debug)]
#[command(
    name = "mcstop+release",
    version,
    about = "Shut McKernel down and give every reserved CPU and byte of memory back to Linux",
    after_help = "Idempotent: with no ihkd running and no journal left behind, it does nothing and exits 0. \
If a crashed ihkd left a journal, a new ihkd is started to replay it.\nEnvironment: IHK_RUNTIME_DIR."
)]
struct Args {}

fn main() {
    let _ = Args::parse();
    let dir = RuntimeDir::from_env();
    let report = stop_release(&dir);
    if report.failures.is_empty() {
        return;
    }
    eprintln!("Error: the node is not fully restored");
    for f in &report.failures {
        eprintln!("mcstop+release: {f}");
    }
    std::process::exit(1);
}
