//! `lwk/src/lwkfs`: rewriting directory listings of the view.

#[path = "../../../src/lwkfs/dirents.rs"]
pub mod dirents;
