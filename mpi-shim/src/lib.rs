//! PMPI interposition of the MPI initialisation entry points.
//!
//! Owns: the exported `MPI_Init`, `MPI_Init_thread` (C) and `mpi_init_`,
//! `mpi_init_thread_` (gfortran) symbols, which call the MPI library's
//! `PMPI_*` versions and then run the post-initialisation hooks registered
//! with [`register_post_init`]; and [`world_rank_size`], the rank and size of
//! `MPI_COMM_WORLD` without compiling against one MPI's header.
//!
//! Must not touch: anything a hook does. Quick-launch logic lives in `ql/`
//! (libqlmpi.so links this crate and registers its hook); this crate knows
//! nothing of sockets or rounds.
//!
//! Link it into the one shared library a program links before libmpi (the
//! linker resolves `MPI_Init` to the first definition). Two libraries that
//! each embed this crate would each carry a hook table, and only the first
//! one's `MPI_Init` would run: register every hook from the same library.
//!
//! The MPI functions are looked up at run time (`dlsym`), so the crate builds
//! without MPI and works with Open MPI's and MPICH's ABIs alike.

mod hooks;
mod init;
mod pmpi;

pub use hooks::register_post_init;
pub use pmpi::world_rank_size;
