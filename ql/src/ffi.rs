//! The C ABI of libqlmpi.so (ql/include/qlmpilib.h, qlmpif.h): `ql_client`
//! for C, `ql_client_` for gfortran's `call ql_client(ierr)`, and the
//! library constructor that registers the quick-launch hook with mpi-shim.

use crate::rank;
use crate::QL_EXIT;
use std::ffi::{c_char, c_int};

extern "C" fn register_hook() {
    mpi_shim::register_post_init(rank::on_mpi_init);
}

/// Runs when libqlmpi.so is loaded, before `main` can call MPI_Init.
#[used]
#[link_section = ".init_array"]
static REGISTER_HOOK: extern "C" fn() = register_hook;

fn guarded(f: impl FnOnce() -> c_int + std::panic::UnwindSafe) -> c_int {
    std::panic::catch_unwind(f).unwrap_or_else(|_| {
        eprintln!("ql: internal error in ql_client; exiting the quick-launch loop");
        QL_EXIT
    })
}

/// `int ql_client(int *argc, char ***argv)`: end the round; on QL_CONTINUE
/// `*argc`/`*argv` (if not NULL) hold the next round's arguments.
///
/// # Safety
/// `argc` and `argv` are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn ql_client(argc: *mut c_int, argv: *mut *mut *mut c_char) -> c_int {
    let (argc, argv) = (argc as usize, argv as usize);
    guarded(move || {
        let next = rank::client();
        if let Some((n, v)) = next.args {
            let (argc, argv) = (argc as *mut c_int, argv as *mut *mut *mut c_char);
            // SAFETY: the caller passes NULL or writable pointers.
            unsafe {
                if !argc.is_null() {
                    *argc = n;
                }
                if !argv.is_null() {
                    *argv = v;
                }
            }
        }
        next.code
    })
}

/// gfortran `call ql_client(ierr)`: ierr = QL_CONTINUE (1) or QL_EXIT (0);
/// the new arguments are what `get_command_argument` returns.
///
/// # Safety
/// `ierr` is the caller's INTEGER, passed by reference.
#[no_mangle]
pub unsafe extern "C" fn ql_client_(ierr: *mut c_int) {
    let code = guarded(|| rank::client().code);
    // SAFETY: Fortran passes a valid INTEGER reference.
    unsafe { *ierr = code };
}

/// Double-underscore spelling (`-fsecond-underscore`).
///
/// # Safety
/// `ierr` is the caller's INTEGER, passed by reference.
#[no_mangle]
pub unsafe extern "C" fn ql_client__(ierr: *mut c_int) {
    // SAFETY: forwarded caller contract.
    unsafe { ql_client_(ierr) }
}
