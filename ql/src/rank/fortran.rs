//! gfortran's view of a round: its buffered units must be flushed before
//! output changes hands, and `get_command_argument`/`command_argument_count`
//! read the argv that `_gfortran_set_args` recorded. Both entry points are
//! looked up at run time, so C programs (no libgfortran) are unaffected.

use std::ffi::{c_char, c_int, c_void, CStr};

fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads
    // the loaded objects' symbol tables.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Flushes every open gfortran unit.
pub fn flush_units() {
    if let Some(f) = lookup(c"_gfortran_flush_i4") {
        // SAFETY: libgfortran's `void flush_i4(GFC_INTEGER_4 *unit)`; a NULL
        // unit means "all units".
        let f = unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*const i32)>(f) };
        unsafe { f(std::ptr::null()) };
    }
}

/// Makes the Fortran runtime see `argv` as the command line.
pub fn set_args(argc: c_int, argv: *mut *mut c_char) {
    if let Some(f) = lookup(c"_gfortran_set_args") {
        // SAFETY: libgfortran's `void set_args(int argc, char **argv)`, which
        // keeps the pointer; argv stays allocated for at least this round
        // (argv.rs).
        let f = unsafe {
            std::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int, *mut *mut c_char)>(f)
        };
        unsafe { f(argc, argv) };
    }
}
