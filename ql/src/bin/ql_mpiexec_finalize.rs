//! ql_mpiexec_finalize: end a resident quick-launch job (see `qlmpi::client`).
//! Owns nothing but its exit code; must not touch other users' jobs.

fn main() {
    std::process::exit(qlmpi::client::main_with(
        "ql_mpiexec_finalize",
        qlmpi::client::finalize,
    ));
}
