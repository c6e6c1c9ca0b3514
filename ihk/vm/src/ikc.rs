//! Host end of the master IKC channel (§1.2.4.1): the LWK-to-host ring is
//! drained by a host thread woken by an ioeventfd doorbell; packets to the
//! LWK go into the host-to-LWK ring and, when the BSP declared itself
//! sleeping, an irqfd raises the master vector on it.

use crate::error::VmError;
use crate::vm::Vm;
use ihk_abi::doorbell::{IKC_DOORBELL_PORT, IKC_MASTER_CHANNEL_ID, IKC_MASTER_VECTOR};
use ihk_abi::master::MasterPacket;
use ihk_abi::ring::{Consumer, Producer};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Receives what the LWK sends on the master channel.
pub(crate) trait MasterHandler: Send + Sync + 'static {
    /// A packet arrived.
    fn packet(&self, p: &MasterPacket);
    /// The doorbell rang (also for a panic, when the ring may be empty).
    fn doorbell(&self);
    /// The LWK corrupted the ring; the channel is dead.
    fn broken(&self, why: String);
}

pub(crate) struct MasterChannel {
    to_lwk: Mutex<Producer<MasterPacket>>,
    irq: EventFd,
    stop: Arc<EventFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MasterChannel {
    /// Wire the channel. The rings must already be initialised in guest
    /// memory at `to_host` / `to_lwk` (host pointers, `size` bytes each).
    ///
    /// # Safety
    /// Both ring regions must stay mapped until this channel is dropped, and
    /// the host must hold no other handle to them.
    pub unsafe fn new(
        vm: &Vm,
        to_host: (*mut u8, usize),
        to_lwk: (*mut u8, usize),
        bsp_apic_id: u32,
        handler: Arc<dyn MasterHandler>,
    ) -> Result<MasterChannel, VmError> {
        // SAFETY: forwarded contract.
        let mut rx = unsafe { Consumer::<MasterPacket>::attach(to_host.0, to_host.1) }
            .map_err(|e| VmError::State(format!("master ring to host: {e:?}")))?;
        // SAFETY: forwarded contract.
        let tx = unsafe { Producer::<MasterPacket>::attach(to_lwk.0, to_lwk.1) }
            .map_err(|e| VmError::State(format!("master ring to LWK: {e:?}")))?;
        let doorbell = EventFd::new(EFD_NONBLOCK).map_err(VmError::io("eventfd"))?;
        let irq = EventFd::new(EFD_NONBLOCK).map_err(VmError::io("eventfd"))?;
        let stop = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(VmError::io("eventfd"))?);
        vm.add_port_ioeventfd(&doorbell, IKC_DOORBELL_PORT, IKC_MASTER_CHANNEL_ID)?;
        vm.add_msi_irqfd(&irq, bsp_apic_id, IKC_MASTER_VECTOR)?;
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ihk-ikc-master".into())
            .spawn(move || loop {
                loop {
                    match rx.recv() {
                        Ok(Some(p)) => handler.packet(&p),
                        Ok(None) => break,
                        Err(e) => {
                            handler.broken(format!("master channel ring: {e:?}"));
                            return;
                        }
                    }
                }
                if !rx.prepare_sleep() {
                    continue;
                }
                let woke = wait_readable(&doorbell, &stop2);
                rx.awake();
                match woke {
                    Wake::Doorbell => {
                        let _ = doorbell.read();
                        handler.doorbell();
                    }
                    Wake::Stop => return,
                }
            })
            .map_err(VmError::io("spawning the master channel thread"))?;
        Ok(MasterChannel {
            to_lwk: Mutex::new(tx),
            irq,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Send `p` to the LWK; interrupt the BSP when it sleeps (or always,
    /// with `force_irq`).
    pub fn send(&self, p: &MasterPacket, force_irq: bool) -> Result<(), VmError> {
        let sleeping = self
            .to_lwk
            .lock()
            .unwrap()
            .send(p)
            .map_err(|e| VmError::State(format!("master channel to LWK: {e:?}")))?;
        if sleeping || force_irq {
            self.irq.write(1).map_err(VmError::io("irqfd write"))?;
        }
        Ok(())
    }

    /// Stop and join the host thread (idempotent).
    pub fn stop(&self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
        }
    }
}

impl Drop for MasterChannel {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Wake {
    Doorbell,
    Stop,
}

fn wait_readable(doorbell: &EventFd, stop: &EventFd) -> Wake {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        // SAFETY: both eventfds outlive this call.
        let (d, s) = unsafe {
            (
                BorrowedFd::borrow_raw(doorbell.as_raw_fd()),
                BorrowedFd::borrow_raw(stop.as_raw_fd()),
            )
        };
        let mut fds = [
            PollFd::new(d, PollFlags::POLLIN),
            PollFd::new(s, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    return Wake::Stop;
                }
                if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                    return Wake::Doorbell;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::error!("poll on the master channel doorbell failed: {e}");
                return Wake::Stop;
            }
        }
    }
}
