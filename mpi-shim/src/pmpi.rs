//! Run-time lookup of the MPI library's profiling (`PMPI_*`) entry points,
//! and the rank/size of `MPI_COMM_WORLD` for both MPI ABIs.

use std::ffi::{c_char, c_int, c_void, CStr};

/// Looks `name` up in the global symbol scope (the program and every library
/// it loaded). We never define `PMPI_*` or `pmpi_*` ourselves, so the first
/// definition found is the MPI library's.
pub(crate) fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads
    // the dynamic symbol tables; it has no other precondition.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!sym.is_null()).then_some(sym)
}

/// MPICH's (and Intel MPI's, MVAPICH's) `MPI_COMM_WORLD`: a plain int handle.
const MPICH_COMM_WORLD: c_int = 0x4400_0000;
/// Size of the buffer `MPI_Get_library_version` may fill (MPICH's maximum,
/// larger than Open MPI's).
const LIBRARY_VERSION_MAX: usize = 8192;

type CommQueryOmpi = unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int;
type CommQueryMpich = unsafe extern "C" fn(c_int, *mut c_int) -> c_int;
type GetLibraryVersion = unsafe extern "C" fn(*mut c_char, *mut c_int) -> c_int;

enum World {
    /// Open MPI: the handle is the address of `ompi_mpi_comm_world`.
    Ompi(*mut c_void),
    /// MPICH ABI: an integer handle.
    Mpich,
}

fn detect_world() -> Option<World> {
    if let Some(addr) = lookup(c"ompi_mpi_comm_world") {
        return Some(World::Ompi(addr));
    }
    let version = lookup(c"PMPI_Get_library_version")?;
    // SAFETY: the symbol is the MPI standard's
    // `int MPI_Get_library_version(char *version, int *resultlen)`.
    let version = unsafe { std::mem::transmute::<*mut c_void, GetLibraryVersion>(version) };
    let mut buf = vec![0u8; LIBRARY_VERSION_MAX];
    let mut len: c_int = 0;
    // SAFETY: buf holds LIBRARY_VERSION_MAX bytes, the largest string any
    // MPI writes here; len is a valid out-pointer.
    if unsafe { version(buf.as_mut_ptr().cast(), &mut len) } != 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&buf[..len.clamp(0, LIBRARY_VERSION_MAX as c_int) as usize]);
    ["MPICH", "Intel(R) MPI", "MVAPICH"]
        .iter()
        .any(|n| text.contains(n))
        .then_some(World::Mpich)
}

/// Rank and size of `MPI_COMM_WORLD` from the MPI library itself, after MPI
/// is initialised. `None` if the library is neither Open MPI nor of the MPICH
/// ABI family, or if the calls fail; callers may then fall back to the
/// launcher's environment.
pub fn world_rank_size() -> Option<(i32, i32)> {
    let rank_fn = lookup(c"PMPI_Comm_rank")?;
    let size_fn = lookup(c"PMPI_Comm_size")?;
    let (mut rank, mut size): (c_int, c_int) = (-1, -1);
    match detect_world()? {
        World::Ompi(comm) => {
            // SAFETY: in Open MPI, MPI_Comm is a pointer and MPI_COMM_WORLD is
            // &ompi_mpi_comm_world; the two functions have the standard
            // signatures with that handle type.
            let (r, s) = unsafe {
                (
                    std::mem::transmute::<*mut c_void, CommQueryOmpi>(rank_fn),
                    std::mem::transmute::<*mut c_void, CommQueryOmpi>(size_fn),
                )
            };
            // SAFETY: valid handle and out-pointers (see above).
            if unsafe { r(comm, &mut rank) } != 0 || unsafe { s(comm, &mut size) } != 0 {
                return None;
            }
        }
        World::Mpich => {
            // SAFETY: in the MPICH ABI, MPI_Comm is an int and MPI_COMM_WORLD
            // is 0x44000000.
            let (r, s) = unsafe {
                (
                    std::mem::transmute::<*mut c_void, CommQueryMpich>(rank_fn),
                    std::mem::transmute::<*mut c_void, CommQueryMpich>(size_fn),
                )
            };
            // SAFETY: valid handle and out-pointers (see above).
            if unsafe { r(MPICH_COMM_WORLD, &mut rank) } != 0
                || unsafe { s(MPICH_COMM_WORLD, &mut size) } != 0
            {
                return None;
            }
        }
    }
    (rank >= 0 && size > 0).then_some((rank, size))
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_mpi_means_no_rank() {
        // Unit tests do not load an MPI library.
        assert_eq!(super::world_rank_size(), None);
    }
}
