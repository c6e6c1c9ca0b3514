//! Master IKC channel (§1.2.4.1-2): the channel that exists from boot, one
//! ring in each direction at `BootParams::ikc_master_to_host` /
//! `ikc_master_to_lwk`, packets of [`MasterPacket`]. The host initialises
//! both rings before entering the LWK. Doorbells: LWK to host writes
//! [`crate::doorbell::IKC_MASTER_CHANNEL_ID`] to
//! [`crate::doorbell::IKC_DOORBELL_PORT`]; host to LWK is an MSI with
//! [`crate::doorbell::IKC_MASTER_VECTOR`] to the BSP.

use crate::ring::Packet;

/// One master-channel packet (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MasterPacket {
    /// A `MSG_*` value.
    pub msg: u32,
    /// LWK CPU that sent it (LWK to host), or target CPU (host to LWK).
    pub cpu: u32,
    pub args: [u64; 7],
}

// SAFETY: repr(C), integers only, valid for every bit pattern.
unsafe impl Packet for MasterPacket {}

/// LWK to host: the LWK has booted; args[0] = CPUs online.
/// The host then reports RUNNING ("Master channel init acked").
pub const MSG_BOOTED: u32 = 1;
/// Host to LWK: stop all CPUs; each CPU writes its id to
/// [`crate::doorbell::CPU_OFF_PORT`] as its last act.
pub const MSG_SHUTDOWN: u32 = 2;
/// LWK to host: the status word in the monitor page changed (panic);
/// sent best-effort, the monitor page is authoritative.
pub const MSG_STATUS_CHANGED: u32 = 3;
/// Host to LWK (`ihk_os_freeze`, §1.2.2.32): every CPU stops scheduling
/// and marks itself [`crate::CpuState::Frozen`] in the monitor page until
/// [`MSG_THAW`]; the host reports FREEZING, then FROZEN once all are.
pub const MSG_FREEZE: u32 = 4;
/// Host to LWK (`ihk_os_thaw`, §1.2.2.33): every CPU resumes where it was.
pub const MSG_THAW: u32 = 5;
/// LWK to host: no LWK process maps the share window at guest-physical
/// args[0] (args[1] bytes) any more: the host removes its memslot and its
/// mapping of the file ([`crate::layout::SHARE_WINDOW_GPA`]). Sent for a
/// window the host may never have created (the request failed), which the
/// host ignores.
pub const MSG_WINDOW_RELEASE: u32 = 6;

impl MasterPacket {
    pub const fn new(msg: u32, cpu: u32) -> MasterPacket {
        MasterPacket {
            msg,
            cpu,
            args: [0; 7],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::IKC_MASTER_RING_SIZE;
    use crate::ring::capacity_for;

    #[test]
    fn layout() {
        assert_eq!(core::mem::size_of::<MasterPacket>(), 64);
        assert_eq!(core::mem::offset_of!(MasterPacket, args), 8);
        assert_eq!(capacity_for(IKC_MASTER_RING_SIZE as usize, 64), 512);
    }
}
