//! OS and CPU status words.
//!
//! [`OsStatus`] numbers are those of the specification's
//! `enum ihklib_os_status` (§1.2.2.20), so `ihk_os_get_status` returns them
//! unchanged. The LWK writes BOOTING / RUNNING / PANIC / SHUTDOWN into the
//! monitor page; INACTIVE, HUNGUP, FREEZING and FROZEN are host-side views.

/// Status of an OS instance, numbered as `enum ihklib_os_status`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OsStatus {
    Inactive = 0,
    Booting = 1,
    Running = 2,
    Shutdown = 3,
    Panic = 4,
    Hungup = 5,
    Freezing = 6,
    Frozen = 7,
}

impl OsStatus {
    /// Decode a status word; `None` for a value outside the enum.
    pub const fn from_u32(v: u32) -> Option<OsStatus> {
        Some(match v {
            0 => OsStatus::Inactive,
            1 => OsStatus::Booting,
            2 => OsStatus::Running,
            3 => OsStatus::Shutdown,
            4 => OsStatus::Panic,
            5 => OsStatus::Hungup,
            6 => OsStatus::Freezing,
            7 => OsStatus::Frozen,
            _ => return None,
        })
    }

    /// The string `ihkosctl <n> get status` prints (§1.3.2.16).
    pub const fn as_str(self) -> &'static str {
        match self {
            OsStatus::Inactive => "INACTIVE",
            OsStatus::Booting => "BOOTING",
            OsStatus::Running => "RUNNING",
            OsStatus::Shutdown => "SHUTDOWN",
            OsStatus::Panic => "PANIC",
            OsStatus::Hungup => "HUNGUP",
            OsStatus::Freezing => "FREEZING",
            OsStatus::Frozen => "FROZEN",
        }
    }
}

/// What one LWK CPU is doing, as published in its monitor slot.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuState {
    /// Not yet entered by the host, or before its first update.
    Offline = 0,
    /// Idle loop (halted waiting for an interrupt).
    Idle = 1,
    /// Executing kernel code.
    RunningKernel = 2,
    /// Executing user code.
    RunningUser = 3,
    /// Stopped for good (shutdown or panic).
    Halted = 4,
    /// Stopped by `ihk_os_freeze` until thawed (master MSG_FREEZE/MSG_THAW).
    Frozen = 5,
}

impl CpuState {
    /// Decode a state word; unknown values read as `Offline`.
    pub const fn from_u32(v: u32) -> CpuState {
        match v {
            1 => CpuState::Idle,
            2 => CpuState::RunningKernel,
            3 => CpuState::RunningUser,
            4 => CpuState::Halted,
            5 => CpuState::Frozen,
            _ => CpuState::Offline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_numbers_match_ihklib() {
        for v in 0..8 {
            assert_eq!(OsStatus::from_u32(v).unwrap() as u32, v);
        }
        assert_eq!(OsStatus::from_u32(8), None);
        assert_eq!(OsStatus::Panic as u32, 4);
        assert_eq!(OsStatus::Running.as_str(), "RUNNING");
        assert_eq!(
            CpuState::from_u32(CpuState::Halted as u32),
            CpuState::Halted
        );
        assert_eq!(CpuState::from_u32(99), CpuState::Offline);
        assert_eq!(
            CpuState::from_u32(CpuState::Frozen as u32),
            CpuState::Frozen
        );
    }
}
