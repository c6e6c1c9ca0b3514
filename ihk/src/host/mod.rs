//! Facts about the host node (read-only).

pub mod topology;
