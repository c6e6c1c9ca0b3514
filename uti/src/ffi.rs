//! The C API of `uti.h`. Every entry point checks its pointers, turns errors
//! into errno values (with a log line), never lets a Rust panic cross into
//! C, and runs with thread cancellation disabled ([`crate::cancel`]).

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::attr::Attr;
use crate::context::{current_cpu, Uti};
use crate::cpuset::CpuSet;
use crate::env::Env;
use crate::error::Error;
use crate::log;
use crate::spawn::{self, StartRoutine};

/// Runs `f`, mapping errors and panics to errno values.
fn guarded(what: &str, f: impl FnOnce() -> Result<(), Error>) -> c_int {
    let _no_cancel = crate::cancel::NoCancel::new();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            log::error!("{what}: {e}");
            e.errno()
        }
        Err(_) => {
            log::error!("{what}: internal error");
            libc::EIO
        }
    }
}

/// `int uti_attr_init(uti_attr_t *attr)`: no hints.
///
/// # Safety
/// `attr` must be NULL or valid for writing a `uti_attr_t`.
#[no_mangle]
pub unsafe extern "C" fn uti_attr_init(attr: *mut Attr) -> c_int {
    if attr.is_null() {
        log::error!("uti_attr_init: attr is NULL");
        return libc::EINVAL;
    }
    // SAFETY: non-NULL and writable per the contract.
    unsafe { attr.write(Attr::new()) };
    0
}

/// `int uti_attr_destroy(uti_attr_t *attr)`: nothing to free.
///
/// # Safety
/// None beyond passing a pointer (it is not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn uti_attr_destroy(attr: *mut Attr) -> c_int {
    if attr.is_null() {
        log::error!("uti_attr_destroy: attr is NULL");
        return libc::EINVAL;
    }
    0
}

/// `int uti_set_loglevel(enum uti_loglevel)`: the function form of the
/// 2018 header (the current header sets `uti_loglevel` inline), kept so
/// binaries built against either header link.
#[no_mangle]
pub extern "C" fn uti_set_loglevel(level: c_int) -> c_int {
    match level {
        0 => log::set_level(log::Level::Err),
        1 => log::set_level(log::Level::Warn),
        2 => log::set_level(log::Level::Debug),
        _ => {
            log::error!("uti_set_loglevel: level {level} is not 0 (err), 1 (warn) or 2 (debug)");
            return libc::EINVAL;
        }
    }
    0
}

/// `int uti_pthread_create(pthread_t *thread, pthread_attr_t *attr,
/// void *(*start_routine)(void *), void *arg, uti_attr_t *uti_attr)`.
///
/// Returns 0 or an errno value: EINVAL for a NULL `thread`,
/// `start_routine` or `uti_attr`, contradictory hints, no CPU left, or a
/// bad environment variable; otherwise what `pthread_create` returned.
///
/// # Safety
/// As `pthread_create`; `uti_attr` must be NULL or point to a `uti_attr_t`.
#[no_mangle]
pub unsafe extern "C" fn uti_pthread_create(
    thread: *mut libc::pthread_t,
    attr: *mut libc::pthread_attr_t,
    start_routine: Option<StartRoutine>,
    arg: *mut c_void,
    uti_attr: *const Attr,
) -> c_int {
    guarded("uti_pthread_create", || {
        let (Some(start), false, false) = (start_routine, thread.is_null(), uti_attr.is_null())
        else {
            return Err(Error::InvalidAttr(format!(
                "NULL argument (thread {:p}, start_routine {}, uti_attr {:p})",
                thread,
                if start_routine.is_some() {
                    "set"
                } else {
                    "NULL"
                },
                uti_attr
            )));
        };
        // SAFETY: non-NULL, points to a uti_attr_t per the contract.
        let hints = unsafe { uti_attr.read() };
        if Env::disabled_from_process()? {
            log::debug!("DISABLE_UTI is set: plain pthread_create");
            let start_c = start_as_c(start);
            // SAFETY: arguments as the caller gave them to us.
            let rc = unsafe { libc::pthread_create(thread, attr, start_c, arg) };
            return if rc == 0 {
                Ok(())
            } else {
                Err(Error::os("pthread_create", rc))
            };
        }
        hints.validate()?;
        let env = Env::from_process()?;
        let uti = Uti::global()?;
        let within = if attr.is_null() {
            None
        } else {
            // SAFETY: non-NULL caller attr is initialized per the contract.
            unsafe { spawn::attr_affinity(attr)? }.map(|m| CpuSet::from_mask_words(&m))
        };
        // On the LWK, sched_getcpu numbers the LWK's CPUs: the caller's
        // Linux CPU (for relative hints) is the first of UTI_LWK_CPU_SET.
        let caller = if crate::lwk::on_lwk() { env.lwk_cpus.as_ref().and_then(|s| s.first()) } else { current_cpu() };
        let plan = uti.plan(&hints, &env, caller, within.as_ref())?;
        // SAFETY: the caller's contract covers thread, attr, start, arg.
        unsafe { spawn::create_pthread(thread, attr, start, arg, plan) }
    })
}

fn start_as_c(start: StartRoutine) -> extern "C" fn(*mut c_void) -> *mut c_void {
    // SAFETY: same calling convention; the caller's routine is a C function.
    unsafe { std::mem::transmute::<StartRoutine, extern "C" fn(*mut c_void) -> *mut c_void>(start) }
}

/// `int uti_self_cpuset(size_t cpusetsize, cpu_set_t *cpuset)` (extension):
/// the CPU set libuti computed for the calling thread, as an affinity mask
/// of `cpusetsize` bytes. 0, ENOENT if the thread was not placed by
/// `uti_pthread_create`, EINVAL for a NULL or too small mask.
///
/// # Safety
/// `cpuset` must be NULL or valid for writing `cpusetsize` bytes.
#[no_mangle]
pub unsafe extern "C" fn uti_self_cpuset(cpusetsize: usize, cpuset: *mut c_void) -> c_int {
    if cpuset.is_null() || cpusetsize == 0 {
        log::error!("uti_self_cpuset: NULL or empty mask");
        return libc::EINVAL;
    }
    let Some(cpus) = spawn::current_cpus() else {
        return libc::ENOENT;
    };
    if cpus.last().is_some_and(|c| c >= cpusetsize * 8) {
        log::error!("uti_self_cpuset: {cpusetsize} bytes cannot hold CPU set {{{cpus}}}");
        return libc::EINVAL;
    }
    // SAFETY: `cpuset` is writable for `cpusetsize` bytes per the contract.
    let bytes = unsafe { std::slice::from_raw_parts_mut(cpuset.cast::<u8>(), cpusetsize) };
    bytes.fill(0);
    for c in cpus.iter() {
        bytes[c / 8] |= 1 << (c % 8);
    }
    0
}
