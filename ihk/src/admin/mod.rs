//! The two administrator scripts as library functions, so that the commands
//! (`mcreboot`, `mcstop+release`) and other callers (the Slurm plugin) share
//! them: [`reboot::reboot`] boots a partition in mckernel-operations.rst's
//! step order and undoes every earlier step when one fails;
//! [`stop::stop_release`] gives the whole node back and says what it could
//! not restore.

pub mod daemon_proc;
pub mod ihkmond_proc;
pub mod reboot;
pub mod stop;

pub use ihk_client::client::destroy_all_instances;
