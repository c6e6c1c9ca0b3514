//! Run-time lookup of the MPI library's profiling (`PMPI_*`) entry points,
//! the handles and constants that differ between the two MPI ABI families (Open MPI's and
//! MPICH's), and the rank/size of `MPI_COMM_WORLD`.
//!
//! A handle (communicator, datatype, request) is carried as a `u64`
//! ([`Handle`]): Open MPI's are pointers, MPICH's C `int`s. On x86-64 (and
//! AArch64) an `int` argument is read from the low half of its register, so
//! one function type with `u64` handles calls either library; an `MPI_Comm
//! *` or `MPI_Request *` result is written into a zeroed `u64` (8 bytes by
//! Open MPI, the low 4 by MPICH), and read back from it the same way.

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

/// A handle (communicator, datatype, request) of either ABI, as a u64
/// (see the module comment).
pub(crate) type Handle = u64;
/// A communicator handle.
pub(crate) type Comm = Handle;

/// `MPI_THREAD_MULTIPLE`: 3 in Open MPI and in MPICH.
pub(crate) const THREAD_MULTIPLE: c_int = 3;

/// MPICH's (and Intel MPI's, MVAPICH's) `MPI_COMM_WORLD` and `MPI_COMM_SELF`.
const MPICH_COMM_WORLD: Comm = 0x4400_0000;
const MPICH_COMM_SELF: Comm = 0x4400_0001;
/// MPICH's `MPI_BYTE`.
const MPICH_BYTE: Handle = 0x4c00_010d;
/// `MPI_ANY_SOURCE`: -1 in Open MPI, -2 in MPICH; `MPI_ANY_TAG` is -1 in both.
const OMPI_ANY_SOURCE: c_int = -1;
const MPICH_ANY_SOURCE: c_int = -2;
const ANY_TAG: c_int = -1;
/// Size of the buffer `MPI_Get_library_version` may fill (MPICH's maximum,
/// larger than Open MPI's).
const LIBRARY_VERSION_MAX: usize = 8192;

type GetLibraryVersion = unsafe extern "C" fn(*mut c_char, *mut c_int) -> c_int;
type CommQuery = unsafe extern "C" fn(Comm, *mut c_int) -> c_int;

/// The MPI library's ABI family and the handles that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Abi {
    pub name: &'static str,
    pub world: Comm,
    pub self_comm: Comm,
    pub byte: Handle,
    pub any_source: c_int,
    pub any_tag: c_int,
}

/// Which MPI is loaded: Open MPI (its communicators are the addresses of
/// `ompi_mpi_comm_*`) or one of the MPICH ABI (told by its version string).
/// `None` for any other MPI, or none.
pub(crate) fn detect() -> Option<Abi> {
    if let (Some(world), Some(self_comm), Some(byte)) = (
        lookup(c"ompi_mpi_comm_world"),
        lookup(c"ompi_mpi_comm_self"),
        lookup(c"ompi_mpi_byte"),
    ) {
        return Some(Abi {
            name: "Open MPI",
            world: world as Comm,
            self_comm: self_comm as Comm,
            byte: byte as Handle,
            any_source: OMPI_ANY_SOURCE,
            any_tag: ANY_TAG,
        });
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
        .then_some(Abi {
            name: "MPICH",
            world: MPICH_COMM_WORLD,
            self_comm: MPICH_COMM_SELF,
            byte: MPICH_BYTE,
            any_source: MPICH_ANY_SOURCE,
            any_tag: ANY_TAG,
        })
}

/// Rank and size of `MPI_COMM_WORLD` from the MPI library itself, after MPI
/// is initialised. `None` if the library is neither Open MPI nor of the MPICH
/// ABI family, or if the calls fail; callers may then fall back to the
/// launcher's environment.
pub fn world_rank_size() -> Option<(i32, i32)> {
    let rank_fn = lookup(c"PMPI_Comm_rank")?;
    let size_fn = lookup(c"PMPI_Comm_size")?;
    let world = detect()?.world;
    // SAFETY: `int MPI_Comm_rank/size(MPI_Comm, int *)`; the communicator
    // is passed as a u64 (module comment).
    let (r, s) = unsafe {
        (
            std::mem::transmute::<*mut c_void, CommQuery>(rank_fn),
            std::mem::transmute::<*mut c_void, CommQuery>(size_fn),
        )
    };
    let (mut rank, mut size): (c_int, c_int) = (-1, -1);
    // SAFETY: a valid handle of this library and valid out-pointers.
    if unsafe { r(world, &mut rank) } != 0 || unsafe { s(world, &mut size) } != 0 {
        return None;
    }
    (rank >= 0 && size > 0).then_some((rank, size))
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_mpi_means_no_rank() {
        // Unit tests do not load an MPI library.
        assert_eq!(super::detect(), None);
        assert_eq!(super::world_rank_size(), None);
    }
}
