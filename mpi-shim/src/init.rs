//! The exported MPI initialisation entry points (C and gfortran name
//! mangling). Each forwards to the MPI library's profiling version and, on
//! success, starts the progress thread (if asked for) and runs the
//! post-initialisation hooks.
//!
//! With asynchronous progress asked for, `MPI_Init` becomes
//! `PMPI_Init_thread(MPI_THREAD_MULTIPLE)` and `MPI_Init_thread` asks for
//! `MPI_THREAD_MULTIPLE` whatever the application required; `provided`
//! is what the library really gave (as `MPI_Query_thread` reports it
//! afterwards), which the standard allows to exceed `required`.

use crate::hooks::run_post_init;
use crate::pmpi::{lookup, THREAD_MULTIPLE};
use crate::progress;
use std::ffi::{c_char, c_int, CStr};

/// Returned when the MPI library's entry point cannot be found: non-zero is
/// an error in every MPI ABI (the specific MPI_ERR_* values differ).
const NO_MPI_LIBRARY: c_int = 1;

type CInit = unsafe extern "C" fn(*mut c_int, *mut *mut *mut c_char) -> c_int;
type CInitThread =
    unsafe extern "C" fn(*mut c_int, *mut *mut *mut c_char, c_int, *mut c_int) -> c_int;
type FInit = unsafe extern "C" fn(*mut c_int);
type FInitThread = unsafe extern "C" fn(*mut c_int, *mut c_int, *mut c_int);

fn missing(name: &CStr) -> c_int {
    say!(
        "{} not found: the program must be linked with an MPI library",
        name.to_string_lossy()
    );
    NO_MPI_LIBRARY
}

/// C `MPI_Init`.
///
/// # Safety
/// Called by MPI programs with the arguments the MPI standard defines.
#[no_mangle]
pub unsafe extern "C" fn MPI_Init(argc: *mut c_int, argv: *mut *mut *mut c_char) -> c_int {
    if progress::settings().is_some() {
        let mut provided: c_int = 0;
        // SAFETY: forwarded caller contract; `provided` is a local.
        return unsafe { init_thread(argc, argv, THREAD_MULTIPLE, &mut provided) };
    }
    let Some(f) = lookup(c"PMPI_Init") else {
        return missing(c"PMPI_Init");
    };
    // SAFETY: PMPI_Init has the same standard signature as MPI_Init; the
    // caller's arguments are passed on unchanged.
    let rc = unsafe { std::mem::transmute::<*mut std::ffi::c_void, CInit>(f)(argc, argv) };
    if rc == 0 {
        run_post_init();
    }
    rc
}

/// C `MPI_Init_thread`.
///
/// # Safety
/// Called by MPI programs with the arguments the MPI standard defines.
#[no_mangle]
pub unsafe extern "C" fn MPI_Init_thread(
    argc: *mut c_int,
    argv: *mut *mut *mut c_char,
    required: c_int,
    provided: *mut c_int,
) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { init_thread(argc, argv, progress::level_to_ask(required), provided) }
}

/// `PMPI_Init_thread(argc, argv, level)`, then the progress thread and the
/// hooks.
///
/// # Safety
/// The arguments of `MPI_Init_thread`.
unsafe fn init_thread(
    argc: *mut c_int,
    argv: *mut *mut *mut c_char,
    level: c_int,
    provided: *mut c_int,
) -> c_int {
    let Some(f) = lookup(c"PMPI_Init_thread") else {
        return missing(c"PMPI_Init_thread");
    };
    // SAFETY: same standard signature as MPI_Init_thread; arguments
    // unchanged but the level.
    let rc = unsafe {
        std::mem::transmute::<*mut std::ffi::c_void, CInitThread>(f)(argc, argv, level, provided)
    };
    if rc == 0 {
        // SAFETY: the library wrote the level it provides.
        progress::start(unsafe { *provided });
        run_post_init();
    }
    rc
}

/// Shared body of the gfortran `mpi_init_` spellings.
///
/// # Safety
/// `ierr` is the Fortran INTEGER the caller passed by reference.
unsafe fn fortran_init(ierr: *mut c_int) {
    if progress::settings().is_some() {
        let (mut required, mut provided) = (THREAD_MULTIPLE, 0);
        // SAFETY: locals for the level, the caller's INTEGER for ierr.
        return unsafe { fortran_init_thread(&mut required, &mut provided, ierr) };
    }
    let Some(f) = lookup(c"pmpi_init_") else {
        // SAFETY: ierr is the caller's INTEGER (Fortran passes by reference).
        unsafe { *ierr = missing(c"pmpi_init_") };
        return;
    };
    // SAFETY: pmpi_init_(MPI_Fint *ierr) is the Fortran binding of both
    // Open MPI and MPICH; MPI_Fint is a C int in both.
    unsafe { std::mem::transmute::<*mut std::ffi::c_void, FInit>(f)(ierr) };
    // SAFETY: pmpi_init_ wrote the status into the caller's INTEGER.
    if unsafe { *ierr } == 0 {
        run_post_init();
    }
}

/// Shared body of the gfortran `mpi_init_thread_` spellings.
///
/// # Safety
/// Arguments are the Fortran INTEGERs the caller passed by reference.
unsafe fn fortran_init_thread(required: *mut c_int, provided: *mut c_int, ierr: *mut c_int) {
    let Some(f) = lookup(c"pmpi_init_thread_") else {
        // SAFETY: ierr is the caller's INTEGER.
        unsafe { *ierr = missing(c"pmpi_init_thread_") };
        return;
    };
    // SAFETY: the caller's INTEGER.
    let mut level = progress::level_to_ask(unsafe { *required });
    // SAFETY: pmpi_init_thread_(required, provided, ierr), all MPI_Fint*.
    unsafe {
        std::mem::transmute::<*mut std::ffi::c_void, FInitThread>(f)(&mut level, provided, ierr)
    };
    // SAFETY: the status was written into the caller's INTEGER.
    if unsafe { *ierr } == 0 {
        // SAFETY: the library wrote the level it provides.
        progress::start(unsafe { *provided });
        run_post_init();
    }
}

/// gfortran `call MPI_Init(ierr)`.
///
/// # Safety
/// Called from Fortran with a valid INTEGER reference.
#[no_mangle]
pub unsafe extern "C" fn mpi_init_(ierr: *mut c_int) {
    // SAFETY: forwarded caller contract.
    unsafe { fortran_init(ierr) }
}

/// Double-underscore spelling (`-fsecond-underscore`).
///
/// # Safety
/// Called from Fortran with a valid INTEGER reference.
#[no_mangle]
pub unsafe extern "C" fn mpi_init__(ierr: *mut c_int) {
    // SAFETY: forwarded caller contract.
    unsafe { fortran_init(ierr) }
}

/// gfortran `call MPI_Init_thread(required, provided, ierr)`.
///
/// # Safety
/// Called from Fortran with valid INTEGER references.
#[no_mangle]
pub unsafe extern "C" fn mpi_init_thread_(
    required: *mut c_int,
    provided: *mut c_int,
    ierr: *mut c_int,
) {
    // SAFETY: forwarded caller contract.
    unsafe { fortran_init_thread(required, provided, ierr) }
}

/// Double-underscore spelling (`-fsecond-underscore`).
///
/// # Safety
/// Called from Fortran with valid INTEGER references.
#[no_mangle]
pub unsafe extern "C" fn mpi_init_thread__(
    required: *mut c_int,
    provided: *mut c_int,
    ierr: *mut c_int,
) {
    // SAFETY: forwarded caller contract.
    unsafe { fortran_init_thread(required, provided, ierr) }
}
