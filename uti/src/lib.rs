//! UTI, the utility-thread library: `libuti.so` + `uti.h` (the API of
//! RIKEN's libuti) and the same logic as a Rust API.
//!
//! A runtime asks for a helper thread (an MPI progress thread, an I/O
//! thread) with hints — same/different NUMA domain or cache as the caller,
//! a NUMA node set, a CPU of its own, real-time priority, LWK or Linux CPUs —
//! and the library turns them into a CPU set from the node's hwloc topology,
//! `UTI_CPU_SET` and the node-wide count of utility threads, then creates the
//! thread there.
//!
//! Owns: placement policy, the per-user usage table (`/dev/shm/uti-<uid>.cpus`)
//! and the thread it creates. Must not touch: threads and processes it did
//! not create (it never re-pins the caller), and the caller's
//! `pthread_attr_t` beyond the call (changes are undone before returning).
//!
//! For `mcexec --enable-uti`, `mcexec` describes the CPU split in
//! `UTI_FWK_CPU_SET` / `UTI_LWK_CPU_SET` ([`env`](mod@env)); placement already honours
//! them, and creating the thread on a Linux CPU on behalf of an LWK process is
//! a second back end of [`spawn`](mod@spawn) behind the same API (a later
//! issue; not implemented here).

pub mod attr;
pub mod cancel;
pub mod context;
pub mod cpuset;
pub mod env;
pub mod error;
pub mod ffi;
pub mod log;
pub mod lwk;
pub mod machine;
pub mod placement;
pub mod registry;
pub mod spawn;
pub mod topology;

pub use attr::{flags, Attr};
pub use context::{Plan, Uti};
pub use cpuset::CpuSet;
pub use env::Env;
pub use error::Error;
pub use log::{set_level, Level};
pub use machine::Machine;
pub use placement::Kernel;
pub use spawn::{current_applied, current_cpus, UtiThread};

/// Starts `f` on a utility thread placed by `attr`, like
/// `uti_pthread_create`: honours `DISABLE_UTI`, `UTI_CPU_SET` and the other
/// variables of [`env`](mod@env), relative to the calling thread's current CPU.
pub fn spawn<F, T>(attr: &Attr, f: F) -> Result<UtiThread<T>, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    attr.validate()?;
    if Env::disabled_from_process()? {
        return spawn::spawn(None, f);
    }
    let env = Env::from_process()?;
    let plan = Uti::global()?.plan(attr, &env, context::current_cpu(), None)?;
    spawn::spawn(Some(plan), f)
}

impl Uti {
    /// Starts `f` on a utility thread placed by `attr` with this state and
    /// the given environment, relative to the calling thread's CPU.
    pub fn spawn<F, T>(&self, attr: &Attr, env: &Env, f: F) -> Result<UtiThread<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if env.disabled {
            attr.validate()?;
            return spawn::spawn(None, f);
        }
        let plan = self.plan(attr, env, context::current_cpu(), None)?;
        spawn::spawn(Some(plan), f)
    }
}
