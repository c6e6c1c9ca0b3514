//! The exported `MPI_Finalize` entry points (C and gfortran): stop and join
//! the progress thread, then the MPI library's profiling version.

use crate::pmpi::lookup;
use crate::progress;
use std::ffi::{c_int, c_void};

type CFinalize = unsafe extern "C" fn() -> c_int;
type FFinalize = unsafe extern "C" fn(*mut c_int);

/// C `MPI_Finalize`.
///
/// # Safety
/// Called by MPI programs as the MPI standard defines.
#[no_mangle]
pub unsafe extern "C" fn MPI_Finalize() -> c_int {
    progress::stop();
    let Some(f) = lookup(c"PMPI_Finalize") else {
        say!("PMPI_Finalize not found: the program must be linked with an MPI library");
        return 1;
    };
    // SAFETY: `int PMPI_Finalize(void)`.
    unsafe { std::mem::transmute::<*mut c_void, CFinalize>(f)() }
}

/// Shared body of the gfortran spellings.
///
/// # Safety
/// `ierr` is the caller's INTEGER.
unsafe fn fortran_finalize(ierr: *mut c_int) {
    progress::stop();
    let Some(f) = lookup(c"pmpi_finalize_") else {
        say!("pmpi_finalize_ not found: the program must be linked with an MPI library");
        // SAFETY: the caller's INTEGER.
        unsafe { *ierr = 1 };
        return;
    };
    // SAFETY: `pmpi_finalize_(MPI_Fint *ierr)` in Open MPI and MPICH.
    unsafe { std::mem::transmute::<*mut c_void, FFinalize>(f)(ierr) }
}

/// gfortran `call MPI_Finalize(ierr)`.
///
/// # Safety
/// Called from Fortran with a valid INTEGER reference.
#[no_mangle]
pub unsafe extern "C" fn mpi_finalize_(ierr: *mut c_int) {
    // SAFETY: forwarded caller contract.
    unsafe { fortran_finalize(ierr) }
}

/// Double-underscore spelling (`-fsecond-underscore`).
///
/// # Safety
/// Called from Fortran with a valid INTEGER reference.
#[no_mangle]
pub unsafe extern "C" fn mpi_finalize__(ierr: *mut c_int) {
    // SAFETY: forwarded caller contract.
    unsafe { fortran_finalize(ierr) }
}
