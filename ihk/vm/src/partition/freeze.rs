//! `ihk_os_freeze` / `ihk_os_thaw` (§1.2.2.32-33) on the host side: a
//! master-channel packet (MSG_FREEZE / MSG_THAW, always with the interrupt,
//! so a BSP running a thread serves it at once), and the status derived from
//! the CPUs' monitor slots: FREEZING until every CPU shows `Frozen`, then
//! FROZEN. The LWK side is `lwk/src/ikc/freeze.rs`.

use super::Partition;
use crate::error::VmError;
use ihk_abi::master::{MasterPacket, MSG_FREEZE, MSG_THAW};
use ihk_abi::{CpuState, OsStatus};
use std::sync::atomic::Ordering;

impl Partition {
    /// Ask every LWK CPU to stop; returns at once (watch [`Partition::status`]
    /// go FREEZING -> FROZEN). The caller checks the status beforehand.
    pub fn freeze(&self) -> Result<(), VmError> {
        self.inner.freeze_requested.store(true, Ordering::SeqCst);
        let r = self.master.send(&MasterPacket::new(MSG_FREEZE, 0), true);
        if r.is_err() {
            self.inner.freeze_requested.store(false, Ordering::SeqCst);
        }
        r
    }

    /// Let every CPU go on (also cancels a freeze still in progress); the
    /// status is RUNNING again at once.
    pub fn thaw(&self) -> Result<(), VmError> {
        let r = self.master.send(&MasterPacket::new(MSG_THAW, 0), true);
        if r.is_ok() {
            self.inner.freeze_requested.store(false, Ordering::SeqCst);
        }
        r
    }

    /// FREEZING or FROZEN while a freeze is requested (None otherwise).
    pub(super) fn freeze_status(&self) -> Option<OsStatus> {
        if !self.inner.freeze_requested.load(Ordering::SeqCst) {
            return None;
        }
        let cpus = self.monitor();
        let all = !cpus.is_empty() && cpus.iter().all(|c| c.state == CpuState::Frozen);
        Some(if all {
            OsStatus::Frozen
        } else {
            OsStatus::Freezing
        })
    }
}
