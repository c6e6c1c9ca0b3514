//! ql_server: the per-user, per-job quick-launch server (see
//! `qlmpi::server`). Started by ql_mpiexec_start with the job's listening
//! socket as a descriptor; not meant to be run by hand. Owns its job's
//! mpiexec and socket; must not touch other jobs.

use clap::Parser;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Quick-launch server (started by ql_mpiexec_start)")]
struct Args {
    /// Inherited descriptor of the bound, listening job socket.
    #[arg(long)]
    listen_fd: RawFd,
    /// Path of that socket (removed when the job ends).
    #[arg(long)]
    socket: PathBuf,
    /// Job name.
    #[arg(long)]
    name: String,
    /// The user's quick-launch directory.
    #[arg(long)]
    dir: PathBuf,
    /// Seconds without a round after which the job finalizes itself.
    #[arg(long)]
    idle_timeout: Option<u64>,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let listening = nix::sys::socket::getsockopt(
        &unsafe_borrow(args.listen_fd),
        nix::sys::socket::sockopt::AcceptConn,
    );
    if listening != Ok(true) {
        eprintln!(
            "ql_server: descriptor {} is not a listening socket (ql_server is started by ql_mpiexec_start)",
            args.listen_fd
        );
        std::process::exit(2);
    }
    // SAFETY: the descriptor was checked above to be an open listening
    // socket; it was handed to this process for its exclusive use.
    let listener = UnixListener::from(unsafe { OwnedFd::from_raw_fd(args.listen_fd) });
    let dir = match qlmpi::sockdir::SocketDir::open(&args.dir, false) {
        Ok(Some(d)) => d,
        Ok(None) => {
            eprintln!("ql_server: directory {} does not exist", args.dir.display());
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("ql_server: {e}");
            std::process::exit(2);
        }
    };
    let code = qlmpi::server::run(qlmpi::server::Config {
        listener,
        socket: args.socket,
        dir,
        name: args.name,
        idle_timeout: args.idle_timeout.map(std::time::Duration::from_secs),
    });
    std::process::exit(code);
}

/// A borrowed view of `fd` for a validity check. getsockopt on a closed or
/// foreign descriptor only fails with EBADF/ENOTSOCK.
fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used only for the getsockopt check above, before anything
    // could close the descriptor; a bad number makes that call fail cleanly.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
