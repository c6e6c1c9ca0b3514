//! Doorbells between host and LWK, and the LWK's interrupt vectors.
//!
//! LWK to host: a 32-bit `out` to an I/O port. [`IKC_DOORBELL_PORT`] is
//! registered by the host as an ioeventfd with a datamatch per channel (the
//! vCPU does not exit to user space); the other ports exit to the vCPU thread.
//! Host to LWK: an irqfd routed as an MSI to the receiving CPU's APIC id with
//! the channel's vector.

/// IKC doorbell port; the value written names the channel (see below).
pub const IKC_DOORBELL_PORT: u16 = 0x600;
/// Datamatch value on [`IKC_DOORBELL_PORT`] for the master channel.
pub const IKC_MASTER_CHANNEL_ID: u32 = 0;
/// First datamatch value of the per-CPU channels (channel of LWK CPU n is
/// `IKC_PERCPU_CHANNEL_BASE + n`).
pub const IKC_PERCPU_CHANNEL_BASE: u32 = 0x100;

/// A CPU writes its LWK id here as its very last act at shutdown; the host's
/// vCPU thread then leaves its run loop.
pub const CPU_OFF_PORT: u16 = 0x604;

/// Byte-wide early debug console (bochs/QEMU convention); the host logs the
/// bytes of each line at debug level. Used before the kmsg buffer works.
pub const DEBUGCON_PORT: u16 = 0xe9;

/// Vector of the master channel's host-to-LWK interrupt (delivered to the BSP).
pub const IKC_MASTER_VECTOR: u8 = 0xf0;
/// Vector of the per-CPU channels' host-to-LWK interrupts.
pub const IKC_PERCPU_VECTOR: u8 = 0xf1;
/// LWK-internal: wake-up / reschedule IPI.
pub const WAKEUP_VECTOR: u8 = 0xf2;
/// LWK-internal: stop this CPU (shutdown).
pub const STOP_VECTOR: u8 = 0xf3;
/// LWK-internal: freeze this CPU (`ihk_os_freeze`, sent by the BSP on
/// [`crate::master::MSG_FREEZE`]).
pub const FREEZE_VECTOR: u8 = 0xf4;
/// LWK-internal: TLB shootdown (lwk arch::x86_64::tlb).
pub const TLB_VECTOR: u8 = 0xf5;
/// LWK-internal: local APIC timer (TSC-deadline).
pub const TIMER_VECTOR: u8 = 0xef;
/// LWK-internal: spurious interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;
