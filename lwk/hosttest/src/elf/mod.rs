//! `lwk/src/elf`: header checks and the initial stack layout.

#[path = "../../../src/elf/header.rs"]
pub mod header;
#[path = "../../../src/elf/layout.rs"]
pub mod layout;
