//! The LWK's system-call layer (STYLE.md: one small file per family, and a
//! number-to-handler table, `table.rs`, where every entry is a local handler
//! or `offload`). Handlers parse raw arguments and call into the subsystem
//! that owns the state (`process`); they own no state themselves.

// Errno values live below every layer (`crate::errno`); re-exported for
// the handlers' `super::errno`.
pub(crate) use crate::errno;
mod exit;
mod fsview;
mod ids;
pub mod mm;
mod process;
mod rusage;
#[macro_use]
mod routes; // `routes!`, which turns table.rs into `table::lookup`
mod signal;
mod signalfd;
mod sysinfo;
mod table;
mod thread;
mod time;
mod timer;
mod uname;
mod uti;

use crate::arch::x86_64::idt::TrapFrame;
// Offloading belongs to the process layer; the handlers reach it as
// `super::offload`.
use crate::process::offload;
use table::Entry;

/// The six argument registers of a system call.
pub fn args(f: &TrapFrame) -> [u64; 6] {
    f.syscall_args()
}

/// Run the system call in `f` (number in `vector`, the saved rax) and put
/// its result in `f.rax`.
pub fn dispatch(f: &mut TrapFrame) {
    use crate::arch::x86_64::entry::RING0_ENTRY;
    use core::sync::atomic::Ordering::Relaxed;
    if RING0_ENTRY.load(Relaxed) == 1 && RING0_ENTRY.compare_exchange(1, 2, Relaxed, Relaxed).is_ok() {
        crate::printk!("syscall entry: SYSCALL/SYSRET through LSTAR (ring 0)");
    }
    let r = match table::lookup(f.vector) {
        Entry::Local(h) => h(f),
        Entry::Offload => offload::syscall(f),
    };
    f.rax = errno::to_raw(r);
}

/// The thread making the call.
fn current() -> &'static crate::process::Thread {
    crate::process::sched::current().expect("system call without a current thread")
}
