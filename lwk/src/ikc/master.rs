//! LWK end of the master channel (§1.2.4.2): the BSP consumes the
//! host-to-LWK ring from its idle loop (the host's MSI only wakes it) and
//! produces into the LWK-to-host ring, ringing the ioeventfd doorbell when
//! the host's thread sleeps.

use crate::arch::x86_64 as cpu;
use ihk_abi::doorbell::{IKC_DOORBELL_PORT, IKC_MASTER_CHANNEL_ID};
use ihk_abi::master::{MasterPacket, MSG_BOOTED, MSG_FREEZE, MSG_SHUTDOWN, MSG_THAW, MSG_WINDOW_RELEASE};
use ihk_abi::ring::{Consumer, Producer};
use ihk_abi::BootParams;
use spin::Mutex;

static RX: Mutex<Option<Consumer<MasterPacket>>> = Mutex::new(None);
static TX: Mutex<Option<Producer<MasterPacket>>> = Mutex::new(None);

/// `ihk_ikc_master_init` (LWK side): attach to the rings the host made.
pub fn init(bp: &BootParams) {
    let (r, t) = (bp.ikc_master_to_lwk, bp.ikc_master_to_host);
    // SAFETY: the host initialised both rings in identity-mapped guest
    // memory that lives as long as the kernel; the BSP is the only LWK-side
    // consumer of one and producer of the other.
    // Through the direct map (mm/phys.rs): valid under any page table.
    let virt = crate::mm::phys::to_virt;
    let rx = unsafe { Consumer::attach(virt(r.phys), r.size as usize) };
    let tx = unsafe { Producer::attach(virt(t.phys), t.size as usize) };
    match (rx, tx) {
        (Ok(rx), Ok(tx)) => {
            *RX.lock() = Some(rx);
            *TX.lock() = Some(tx);
            crate::printk!(
                "IKC: master channel ready ({} packets each way)",
                TX.lock().as_ref().map_or(0, |t| t.capacity())
            );
        }
        (rx, tx) => panic!(
            "master channel rings invalid: {:?} / {:?}",
            rx.err(),
            tx.err()
        ),
    }
}

/// Send a packet to the host, ringing the doorbell when it sleeps.
pub fn send(p: &MasterPacket) {
    let need_doorbell = match TX.lock().as_mut().map(|t| t.send(p)) {
        Some(Ok(sleeping)) => sleeping,
        Some(Err(e)) => {
            crate::printk!("IKC: master channel send failed: {:?}", e);
            return;
        }
        None => return,
    };
    if need_doorbell {
        cpu::outl(IKC_DOORBELL_PORT, IKC_MASTER_CHANNEL_ID);
    }
}

/// Tell the host that no process maps the share window at `gpa` (`len`
/// bytes) any more. Waits for room when the ring is full: a lost release
/// would keep the host file mapped until shutdown.
pub fn send_window_release(gpa: u64, len: u64) {
    let mut p = MasterPacket::new(MSG_WINDOW_RELEASE, crate::smp::cpu_id());
    p.args[0] = gpa;
    p.args[1] = len;
    for _ in 0..1_000_000 {
        let r = TX.lock().as_mut().map(|t| t.send(&p));
        match r {
            Some(Ok(sleeping)) => {
                if sleeping {
                    cpu::outl(IKC_DOORBELL_PORT, IKC_MASTER_CHANNEL_ID);
                }
                return;
            }
            Some(Err(ihk_abi::ring::RingError::Full)) => {
                cpu::outl(IKC_DOORBELL_PORT, IKC_MASTER_CHANNEL_ID);
                core::hint::spin_loop();
            }
            Some(Err(e)) => {
                crate::printk!("IKC: releasing share window {:#x}: {:?}", gpa, e);
                return;
            }
            None => return,
        }
    }
    crate::printk!("IKC: master channel full; share window {:#x} stays mapped on the host", gpa);
}

pub fn send_booted(cpus_online: u32) {
    let mut p = MasterPacket::new(MSG_BOOTED, crate::smp::cpu_id());
    p.args[0] = cpus_online as u64;
    send(&p);
}

/// Handle every pending packet from the host (BSP, interrupts off).
pub fn poll() {
    loop {
        let p = match RX.lock().as_mut().map(|r| r.recv()) {
            Some(Ok(Some(p))) => p,
            Some(Ok(None)) | None => return,
            Some(Err(e)) => panic!("master channel ring corrupt: {:?}", e),
        };
        match p.msg {
            MSG_SHUTDOWN => crate::smp::shutdown_all(),
            MSG_FREEZE => super::freeze::request(),
            MSG_THAW => super::freeze::release(),
            other => crate::printk!("IKC: unknown master packet {}", other),
        }
    }
}

/// The master interrupt: serve the channel at once, even when it
/// interrupted a thread (freeze and shutdown must not wait for the thread
/// to yield). Only the BSP serves it; interrupts are off in handlers.
pub fn poll_from_interrupt() {
    if crate::smp::cpu_id() == 0 {
        poll();
    }
}

/// Declare the BSP about to halt; false when packets arrived meanwhile.
pub fn prepare_sleep() -> bool {
    RX.lock().as_mut().is_none_or(|r| r.prepare_sleep())
}

pub fn awake() {
    if let Some(r) = RX.lock().as_mut() {
        r.awake();
    }
}
