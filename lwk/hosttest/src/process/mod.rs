//! `lwk/src/process`: the signal frame layout, CPU sets, futex queues.

#[path = "../../../src/process/sigframe.rs"]
pub mod sigframe;

#[path = "../../../src/process/cpuset.rs"]
pub mod cpuset;

#[path = "../../../src/process/futex_queue.rs"]
pub mod futex_queue;
