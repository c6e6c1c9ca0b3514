//! `util_indicate_clone` (McKernel's system call 731): libuti's
//! `uti_pthread_create` calls it just before `pthread_create`, so that the
//! calling thread's next clone creates a utility thread, whose user code
//! runs on Linux (`process::uti`, docs/uti.md).
//!
//! Without `mcexec --enable-uti` it answers EOPNOTSUPP after a kmsg line,
//! and libuti creates an ordinary LWK thread (as McKernel does). Mode -1
//! only asks (no indication, no log line); mode -2 withdraws the
//! indication (libuti, when pthread_create failed). On Linux
//! the number is unknown (ENOSYS): that is how libuti tells the two apart.

use core::sync::atomic::Ordering;

use ihk_abi::offload::START_UTI;

use super::current;
use super::errno::*;
use crate::arch::x86_64::idt::TrapFrame;

/// `mode` of a query: answer as for a request, indicate nothing, log nothing.
/// (-1 as an int: a C caller's variadic `syscall(731, -1, 0)` may leave the
/// upper half of the register unset.)
const MODE_QUERY: i32 = -1;
/// `mode` that withdraws an indication (pthread_create failed before its
/// clone).
const MODE_WITHDRAW: i32 = -2;

/// util_indicate_clone(mode, arg): other modes and `arg` are ignored
/// (McKernel's spread-out and NUMA modes are libuti's placement here).
pub fn indicate_clone(f: &mut TrapFrame) -> SysResult {
    let t = current();
    let p = &t.process;
    let enabled = p.start.flags & START_UTI != 0;
    if f.rdi as i32 == MODE_QUERY {
        return if enabled { Ok(0) } else { Err(EOPNOTSUPP) };
    }
    if f.rdi as i32 == MODE_WITHDRAW {
        t.uti_next.store(false, Ordering::Release);
        return Ok(0);
    }
    if !enabled {
        crate::printk!(
            "{}[{}]: utility thread requested without mcexec --enable-uti: it runs on the LWK",
            p.comm.lock(),
            p.pid
        );
        return Err(EOPNOTSUPP);
    }
    t.uti_next.store(true, Ordering::Release);
    Ok(0)
}
