//! The list languages of the IHK commands (specification §1.3): CPU lists,
//! memory lists and IKC maps. They live in the `ihk-list` crate
//! (`ihk/list/`), which the Slurm SPANK plugin shares without linking the
//! rest of `ihk`; this module re-exports it unchanged.

pub use ihk_list::*;
