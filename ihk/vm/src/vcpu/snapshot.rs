//! Reading a running vCPU's registers (for memory dumps). KVM serialises
//! a vCPU's ioctls with its KVM_RUN, so the request is served by the vCPU's
//! own thread: the requester sets `want` and pokes the thread with the kick
//! signal (without its stop flag); KVM_RUN returns EINTR, the thread reads
//! the registers, hands them over and goes back into the guest.

use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// General and segment registers of one vCPU at one moment.
#[derive(Clone, Copy, Debug)]
pub struct VcpuRegs {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
}

#[derive(Default)]
pub(crate) struct RegsSlot {
    want: AtomicBool,
    got: Mutex<Option<VcpuRegs>>,
    cond: Condvar,
}

impl RegsSlot {
    /// vCPU thread, outside KVM_RUN: serve a pending request.
    pub fn serve(&self, fd: &VcpuFd) {
        if !self.want.swap(false, Ordering::SeqCst) {
            return;
        }
        let r = match (fd.get_regs(), fd.get_sregs()) {
            (Ok(regs), Ok(sregs)) => Some(VcpuRegs { regs, sregs }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("reading vCPU registers: {e}");
                None
            }
        };
        *self.got.lock().unwrap() = r;
        self.cond.notify_all();
    }

    /// Requester: announce a request (then poke the thread).
    pub fn request(&self) {
        *self.got.lock().unwrap() = None;
        self.want.store(true, Ordering::SeqCst);
    }

    /// Requester: wait for the answer; `poke` is called again every few
    /// milliseconds (a signal that arrived just before KVM_RUN is not lost,
    /// but repeating costs nothing). `alive` says whether the thread runs.
    pub fn wait(
        &self,
        timeout: Duration,
        poke: impl Fn(),
        alive: impl Fn() -> bool,
    ) -> Option<VcpuRegs> {
        let deadline = Instant::now() + timeout;
        let mut got = self.got.lock().unwrap();
        loop {
            if let Some(r) = got.take() {
                return Some(r);
            }
            let now = Instant::now();
            if now >= deadline || !alive() {
                self.want.store(false, Ordering::SeqCst);
                return None;
            }
            poke();
            got = self
                .cond
                .wait_timeout(got, (deadline - now).min(Duration::from_millis(5)))
                .unwrap()
                .0;
        }
    }
}
