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

/// FPU service, for LWKs whose kernel code the host emulates and which
/// therefore cannot execute XSAVE (KVM PVM): a 32-bit `in` from this port
/// with a command in rdi and a guest-physical address in rsi; the vCPU
/// thread answers in eax. Images are KVM's `struct kvm_xsave` layout (the
/// standard XSAVE format), [`FPU_QUERY_SIZE`] bytes, in memory the LWK owns.
pub const FPU_PORT: u16 = 0x608;
/// Answers the image size in bytes.
pub const FPU_QUERY_SIZE: u64 = 0;
/// Answers the XCR0 bits an image can hold (the user mode's XCR0).
pub const FPU_QUERY_FEATURES: u64 = 1;
/// The vCPU's user FPU state into the image at rsi; answers 0 or an errno.
pub const FPU_SAVE: u64 = 2;
/// The image at rsi into the vCPU's FPU state; answers 0 or an errno.
pub const FPU_RESTORE: u64 = 3;
/// What a host without the service answers (its `in` reads all ones).
pub const FPU_UNANSWERED: u32 = u32::MAX;

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
