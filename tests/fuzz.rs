//! Settings shared by the fuzz harnesses of every crate (issue 20, item 5):
//! proptest runs as ordinary `cargo test` tests on the stable toolchain,
//! with a fixed seed (the same inputs on every run, so a CI failure
//! reproduces) and a bounded number of cases (a few seconds per target).
//!
//! For a longer search outside CI: `MCK_FUZZ_SCALE=100` runs a hundred
//! times more cases, `MCK_FUZZ_SEED=<u64>` other inputs. A failing input
//! found so is kept as an explicit regression test next to its harness.

use proptest::test_runner::{Config, RngSeed};

/// The seed of every harness unless `MCK_FUZZ_SEED` names another.
pub const SEED: u64 = 0x4d43_4b20_4655_5a5a;

/// A proptest configuration of `cases` inputs (times `MCK_FUZZ_SCALE`),
/// fixed seed, no shrinking budget beyond 10 s, no regression files.
pub fn config(cases: u32) -> Config {
    let scale = std::env::var("MCK_FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let seed = std::env::var("MCK_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(SEED);
    Config {
        cases: cases.saturating_mul(scale),
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_time: 10_000,
        ..Config::default()
    }
}
