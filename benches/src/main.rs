//! `mck-bench`: the performance report of the README (see `lib.rs`).
fn main() -> std::process::ExitCode {
    mck_bench::run_cli()
}
