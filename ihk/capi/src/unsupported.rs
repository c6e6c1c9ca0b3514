//! The functions this design cannot support, with the error the
//! specification documents for them (see ihklib.h):
//! * CPU performance counters (§1.2.2.29-31): the LWK runs in a KVM guest
//!   whose PMU is not handed through; -ENOENT for a missing instance, else
//!   -EINVAL.
//! * Control registers and the offloading source (§1.2.5): interfaces of
//!   the Linux kernel modules this design does not have; -EINVAL.

use std::os::raw::{c_int, c_ulong, c_void};

use ihk_host::IhkError;

use crate::util::{entry, os};

fn no_perf(index: c_int, what: &str) -> c_int {
    entry(|| {
        os(index)?.os_get_status()?;
        Err(IhkError::inval(format!(
            "{what}: CPU performance counters are not available to the LWK (a KVM guest without a PMU)"
        )))
    })
}

#[no_mangle]
pub extern "C" fn ihk_os_setperfevent(index: c_int, _attr: *mut c_void, _n: c_int) -> c_int {
    no_perf(index, "ihk_os_setperfevent")
}

#[no_mangle]
pub extern "C" fn ihk_os_perfctl(index: c_int, _comm: c_int) -> c_int {
    no_perf(index, "ihk_os_perfctl")
}

#[no_mangle]
pub extern "C" fn ihk_os_getperfevent(index: c_int, _counter: *mut c_ulong, _n: c_int) -> c_int {
    no_perf(index, "ihk_os_getperfevent")
}

fn no_driver(what: &str) -> c_int {
    entry(|| {
        Err(IhkError::inval(format!(
            "{what}: a Linux-driver interface; this IHK has no kernel module"
        )))
    })
}

#[no_mangle]
pub extern "C" fn ihk_os_read_cpu_register(
    _os: *mut c_void,
    _cpu: c_int,
    _desc: *mut c_void,
) -> c_int {
    no_driver("ihk_os_read_cpu_register")
}

#[no_mangle]
pub extern "C" fn ihk_os_write_cpu_register(
    _os: *mut c_void,
    _cpu: c_int,
    _desc: *mut c_void,
) -> c_int {
    no_driver("ihk_os_write_cpu_register")
}

#[no_mangle]
pub extern "C" fn ihk_get_request_os_cpu(_os: *mut *mut c_void, _cpu: *mut c_int) -> c_int {
    no_driver("ihk_get_request_os_cpu")
}
