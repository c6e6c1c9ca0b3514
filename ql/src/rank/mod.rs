//! The quick-launch side of an MPI program (inside libqlmpi.so).
//!
//! After MPI_Init (hook registered with mpi-shim), a program started by
//! ql_mpiexec_start (QL_SOCKET in its environment) introduces itself to the
//! job's server and takes the first round's caller as its stdin (rank 0
//! only), stdout and stderr. `ql_client` ends a round: it flushes output,
//! gives the launcher's descriptors back, reports to the server and waits
//! for the next round (new argv, environment, directory and descriptors:
//! QL_CONTINUE) or the end (QL_EXIT). Without QL_SOCKET nothing happens and
//! `ql_client` returns QL_EXIT.
//!
//! The launcher's own stdout/stderr pipes are kept open (saved above fd 10)
//! the whole time: mpiexec's proxies take the closing of a rank's output as
//! a sign that it is ending, and MPICH's stop serving PMI then.

mod argv;
mod environ;
mod fortran;
mod stdio;

use crate::proto::{self, Hello, RoundSpec, ToRank, ToServer};
use crate::{ENV_NAME, ENV_SOCKET, QL_CONTINUE, QL_EXIT};
use std::ffi::{c_char, c_int};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

struct Resident {
    conn: UnixStream,
    /// The launcher's stdin, stdout, stderr.
    launcher: stdio::Saved,
    /// Variables the launcher (and MPI_Init) added: kept every round.
    overlay: Vec<(Vec<u8>, Vec<u8>)>,
    argv: argv::Generations,
    /// Told to exit: every further ql_client returns QL_EXIT.
    ended: bool,
}

static STATE: Mutex<Option<Resident>> = Mutex::new(None);

fn warn(msg: &str) {
    eprintln!("ql: {msg}");
}

/// Rank and size from the launcher's environment, for MPIs whose handles we
/// cannot query.
fn rank_size_from_env() -> Option<(i32, i32)> {
    let get = |k: &str| std::env::var(k).ok()?.parse::<i32>().ok();
    [
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
        ("PMI_RANK", "PMI_SIZE"),
        ("PMIX_RANK", "OMPI_COMM_WORLD_SIZE"),
    ]
    .iter()
    .find_map(|(r, s)| Some((get(r)?, get(s)?)))
}

/// A process started by ql_mpiexec_start that cannot join its job would
/// leave the round waiting for it: say why and exit, so that mpiexec ends
/// the job and the caller gets a failure.
fn cannot_join(msg: &str) -> ! {
    eprintln!("ql: {msg}; this process cannot take part in the quick-launch job and exits");
    stdio::flush_all();
    std::process::exit(1);
}

/// Runs after MPI_Init succeeded (see mpi-shim).
pub fn on_mpi_init() {
    let Some(sock) = std::env::var_os(ENV_SOCKET).filter(|s| !s.is_empty()) else {
        return;
    };
    // Programs this process starts are not part of the job.
    std::env::remove_var(ENV_SOCKET);
    std::env::remove_var(ENV_NAME);
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if state.is_some() {
        return;
    }
    let Some((rank, size)) = mpi_shim::world_rank_size().or_else(rank_size_from_env) else {
        cannot_join("cannot determine this process's MPI rank");
    };
    let sock = std::path::PathBuf::from(sock);
    let conn = UnixStream::connect(&sock).unwrap_or_else(|e| {
        cannot_join(&format!(
            "rank {rank} cannot reach the quick-launch server at {}: {e} (ranks must run on the host of ql_mpiexec_start)",
            sock.display()
        ))
    });
    let hello = Hello {
        rank,
        size,
        pid: std::process::id() as i32,
    };
    if let Err(e) = proto::send(&conn, &ToServer::Hello(hello), &[]) {
        cannot_join(&format!("quick-launch server: {e}"));
    }
    // The environment as the launcher and MPI_Init left it.
    let initial = environ::snapshot();
    let launcher =
        stdio::Saved::save().unwrap_or_else(|e| cannot_join(&format!("saving stdio: {e}")));
    match proto::recv::<ToRank>(&conn) {
        Ok(Some((ToRank::Round { spec, .. }, fds))) => {
            stdio::flush_all();
            fortran::flush_units();
            stdio::install(fds);
            let overlay = environ::overlay(&initial, &spec.env);
            *state = Some(Resident {
                conn,
                launcher,
                overlay,
                argv: argv::Generations::default(),
                ended: false,
            });
        }
        // The job is ending already: this process runs its course once.
        Ok(Some((ToRank::Exit, _))) => {
            *state = Some(Resident {
                conn,
                launcher,
                overlay: Vec::new(),
                argv: argv::Generations::default(),
                ended: true,
            });
        }
        Ok(None) => cannot_join("the quick-launch server closed the connection"),
        Err(e) => cannot_join(&format!("quick-launch server: {e}")),
    }
}

/// What `ql_client` decided.
pub struct Next {
    pub code: c_int,
    /// The new argc/argv when `code` is QL_CONTINUE.
    pub args: Option<(c_int, *mut *mut c_char)>,
}

/// The end of a round (C `ql_client` and the Fortran binding).
pub fn client() -> Next {
    let exit = Next {
        code: QL_EXIT,
        args: None,
    };
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(state) = guard.as_mut() else {
        return exit;
    };
    if state.ended {
        return exit;
    }
    stdio::flush_all();
    fortran::flush_units();
    // The round's caller gets its descriptors back now, so its pipes close
    // when it exits, whatever the ranks do next.
    state.launcher.restore();
    if let Err(e) = proto::send(&state.conn, &ToServer::RoundEnd, &[]) {
        warn(&format!("quick-launch server: {e}; exiting"));
        state.ended = true;
        return exit;
    }
    match proto::recv::<ToRank>(&state.conn) {
        Ok(Some((ToRank::Round { spec, .. }, fds))) => {
            stdio::install(fds);
            let (argc, argv) = begin_round(state, &spec);
            Next {
                code: QL_CONTINUE,
                args: Some((argc, argv)),
            }
        }
        Ok(Some((ToRank::Exit, fds))) => {
            stdio::install(fds);
            state.ended = true;
            exit
        }
        Ok(None) => {
            warn("the quick-launch server went away; exiting");
            state.ended = true;
            exit
        }
        Err(e) => {
            warn(&format!("quick-launch server: {e}; exiting"));
            state.ended = true;
            exit
        }
    }
}

fn begin_round(state: &mut Resident, spec: &RoundSpec) -> (c_int, *mut *mut c_char) {
    use std::os::unix::ffi::OsStrExt;
    environ::apply(&spec.env, &state.overlay);
    let cwd = std::ffi::OsStr::from_bytes(&spec.cwd);
    if let Err(e) = std::env::set_current_dir(cwd) {
        warn(&format!(
            "cannot enter {}: {e}",
            std::path::Path::new(cwd).display()
        ));
    }
    let (argc, argv) = state.argv.push(&spec.argv);
    fortran::set_args(argc, argv);
    (argc, argv)
}

/// Descriptors of a round, in order stdin, stdout, stderr.
type RoundFds = Vec<OwnedFd>;
