//! ql_mpiexec_start: run one round of a quick-launch job (see `qlmpi::client`).
//! Owns nothing but its exit code; must not touch other users' jobs.

fn main() {
    std::process::exit(qlmpi::client::main_with(
        "ql_mpiexec_start",
        qlmpi::client::start,
    ));
}
