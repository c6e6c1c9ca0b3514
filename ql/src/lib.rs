//! Quick process launch (mckernel-guide.txt "Quick Process Launch",
//! ARCHITECTURE.md §7): MPI programs stay resident between the runs of a job
//! script.
//!
//! Owns: the three commands' logic (`client`: ql_mpiexec_start and
//! ql_mpiexec_finalize; `server`: ql_server, one per user and job key, which
//! runs mpiexec and hands each round to the resident ranks), the wire
//! protocol between them (`proto`), and the in-process side linked into MPI
//! programs as `libqlmpi.so` (`rank`, `ffi`: `ql_client` for C and Fortran,
//! the hook run after `MPI_Init`).
//!
//! Must not touch: MPI itself (the `MPI_Init` interposition is `mpi-shim`'s),
//! other users' sockets, or any process it did not start.

pub mod client;
pub mod key;
pub mod options;
pub mod proto;
pub mod server;
pub mod sockdir;

mod ffi;
mod rank;

/// `ql_client` result: the program was given a new round (qlmpilib.h).
pub const QL_CONTINUE: i32 = 1;
/// `ql_client` result: no further round; finalize MPI and exit (qlmpilib.h).
pub const QL_EXIT: i32 = 0;

/// Environment variable naming the server socket; set only in the
/// environment of jobs started by ql_mpiexec_start, it is what makes a
/// program quick-launch aware.
pub const ENV_SOCKET: &str = "QL_SOCKET";
/// Environment variable carrying the job name (key) to the ranks.
pub const ENV_NAME: &str = "QL_NAME";
