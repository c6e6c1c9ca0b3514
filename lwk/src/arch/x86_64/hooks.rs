//! The arch layer's only way up: the handlers that the layers above it
//! register once at boot (`main.rs`, before the IDT is filled), called by
//! interrupt dispatch (`idt`) and the SYSCALL entry (`entry`). Nothing in
//! `arch/` names a module above it.

use super::idt::TrapFrame;

/// What the kernel above `arch/` does for each event the CPU delivers.
pub struct Hooks {
    /// An exception raised by user code (vector < 32, not NMI or #MC).
    pub user_exception: fn(&mut TrapFrame),
    /// First kernel step after an entry from user mode (interrupt,
    /// exception or system call), before its handler.
    pub entered_from_user: fn(),
    /// Last kernel step before a user-mode frame returns to user mode.
    pub return_to_user: fn(&mut TrapFrame),
    /// A system call: number in `vector` (the saved rax), result to `rax`.
    pub syscall: fn(&mut TrapFrame),
    /// NMI (another CPU panicked: stop here).
    pub nmi: fn(),
    /// The local timer fired (after EOI); `from_user`: it interrupted user mode.
    pub timer: fn(from_user: bool),
    /// STOP vector: this CPU's last act.
    pub stop: fn() -> !,
    /// FREEZE vector (after EOI).
    pub freeze: fn(),
    /// IKC master-channel vector (after EOI).
    pub ikc_master: fn(),
    /// The offload doorbell (after EOI).
    pub offload_doorbell: fn(),
    /// The wake-up IPI (after EOI): another CPU put work on this CPU's queues.
    pub resched: fn(),
}

static HOOKS: spin::Once<&'static Hooks> = spin::Once::new();

/// Register the handlers (BSP, once, before any interrupt can arrive).
pub fn register(h: &'static Hooks) {
    HOOKS.call_once(|| h);
}

pub(super) fn get() -> &'static Hooks {
    HOOKS.get().expect("arch hooks used before registration")
}

/// Run a system call through the registered handler (a SYSCALL that
/// arrived as a user-mode page fault, `process/trap.rs`).
pub fn syscall(f: &mut TrapFrame) {
    (get().syscall)(f)
}
