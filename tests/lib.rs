//! Cross-component integration tests live in `tests/tests/`: whole user
//! sessions that go through several crates (install tree, `mcreboot`,
//! `mcexec`, `mcstop+release`). Each component's own tests stay in its crate.
//! This library is intentionally empty: the package exists for its tests.
