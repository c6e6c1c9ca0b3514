//! `cargo bench -p mck-bench`: the same report as `cargo run -p mck-bench --release`.
fn main() -> std::process::ExitCode {
    mck_bench::run_cli()
}
