//! The `mckernel` SPANK plugin (libspank_mckernel.so): `srun --mckernel=<mem>`
//! boots a per-job LWK partition on every node of the step, runs every task
//! through `mcexec`, and the job epilogue shuts the partition down.
//!
//! Owns: the plugin symbols Slurm's loader checks, the SPANK hooks, and the
//! thin safe layer over the bindgen-generated SPANK API. All decisions live
//! in the `mckernel-slurm` crate (`core/`); this crate only adapts Slurm's
//! calls to it. Must not touch: the IHK tools' internals (it runs the
//! installed commands), other plugins' state, processes it did not start.

mod ffi;
mod hooks;
mod spank;

use std::os::raw::c_uint;

// What SPANK_PLUGIN(mckernel, 1) defines in C: Slurm's plugin loader checks
// the type and that the version's major.minor is its own (0x160508 = 22.05.8
// with Debian 12's headers).
#[no_mangle]
pub static plugin_name: [u8; 9] = *b"mckernel\0";
#[no_mangle]
pub static plugin_type: [u8; 6] = *b"spank\0";
#[no_mangle]
pub static plugin_version: c_uint = ffi::SLURM_VERSION_NUMBER;
#[no_mangle]
pub static spank_plugin_version: c_uint = 1;
