//! `lwk/src/process`: the signal frame layout.

#[path = "../../../src/process/sigframe.rs"]
pub mod sigframe;
