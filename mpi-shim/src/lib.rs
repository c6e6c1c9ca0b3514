//! PMPI interposition of the MPI initialisation and finalisation entry
//! points.
//!
//! Owns: the exported `MPI_Init`, `MPI_Init_thread`, `MPI_Finalize` (C) and
//! `mpi_init_`, `mpi_init_thread_`, `mpi_finalize_` (gfortran) symbols,
//! which call the MPI library's `PMPI_*` versions; around them the
//! asynchronous progress thread (`progress`, `MPISHIM_ASYNC_PROGRESS=1`:
//! started after initialisation through UTI, joined before finalisation)
//! and the post-initialisation hooks registered with
//! [`register_post_init`]; and [`world_rank_size`], the rank and size of
//! `MPI_COMM_WORLD` without compiling against one MPI's header.
//!
//! Must not touch: anything a hook does. Quick-launch logic lives in `ql/`
//! (libqlmpi.so links this crate and registers its hook); this crate knows
//! nothing of sockets or rounds.
//!
//! Built as `libmpishim.so` (`LD_PRELOAD` it, or link it before libmpi)
//! and as an rlib. Link it into the one shared library a program links
//! before libmpi (the linker resolves `MPI_Init` to the first definition).
//! Two libraries that each embed this crate would each carry a hook table,
//! and only the first one's `MPI_Init` would run: register every hook from
//! the same library.
//!
//! The MPI functions are looked up at run time (`dlsym`), so the crate builds
//! without MPI and works with Open MPI's and MPICH's ABIs alike.

/// Writes `mpi-shim: <message>` to stderr in one write, so that the lines
/// of ranks sharing a terminal or a pipe do not interleave.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line(&format!($($arg)*))
    };
}

fn say_line(message: &str) {
    use std::io::Write;
    let line = format!("mpi-shim: {message}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

mod finalize;
mod hooks;
mod init;
mod pmpi;
mod progress;

pub use hooks::register_post_init;
pub use pmpi::world_rank_size;
