//! libihk: the IHK C API (specification §1.2.1-1.2.2) as `libihk.so`, with
//! `include/ihklib.h`. Each function is a thin layer over the ihk crate's
//! client (`ihk::client::Client`), the same one ihkconfig and ihkosctl use,
//! so the library and the commands share one implementation: argument
//! conversion and checks here, everything else in ihkd.
//!
//! Owns: the C types and their layout (`ffi`), argument and error
//! conversion (`util`), the device functions (`device`), the OS-instance
//! configuration functions (`os`), status/kmsg/monitoring/statistics
//! (`monitor`), freeze/thaw and dumps (`freeze_dump`), the `*_str`
//! variants with their `KEY=VAL` lists (`strs`), and the functions this
//! design cannot support (`unsupported`).
//!
//! Must not: talk to ihkd other than through the client, keep state between
//! calls (apart from the thread's last error text), or panic across the C
//! boundary (every entry point catches panics and returns -EIO).
#![allow(clippy::missing_safety_doc)]

mod device;
mod ffi;
mod freeze_dump;
mod monitor;
mod os;
mod strs;
mod unsupported;
mod util;
