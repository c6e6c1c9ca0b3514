//! Kernel panic: a Rust panic or a fatal CPU exception writes
//! "Kernel panic - not syncing: <message>" to kmsg, records the message and
//! sets PANIC in the monitor page, stops the other CPUs with an NMI, rings
//! the master doorbell so the host notices at once, and halts.

use crate::arch::x86_64::{self as cpu, x2apic};
use crate::monitor;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};
use ihk_abi::doorbell::{IKC_DOORBELL_PORT, IKC_MASTER_CHANNEL_ID};
use ihk_abi::monitor::PANIC_MSG_MAX;
use ihk_abi::CpuState;

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Fixed buffer for the monitor page's copy of the message.
struct MsgBuf {
    buf: [u8; PANIC_MSG_MAX],
    len: usize,
}

impl Write for MsgBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cpu::interrupts_off();
    if PANICKING.swap(true, Ordering::SeqCst) {
        // Another CPU (or a nested panic) is already reporting.
        monitor::set_cpu_state(CpuState::Halted);
        cpu::halt_forever();
    }
    let me = crate::smp::cpu_id_or_minus_one();
    let mut msg = MsgBuf {
        buf: [0; PANIC_MSG_MAX],
        len: 0,
    };
    let _ = write!(msg, "{}", info.message());
    crate::kmsg::panic_line(format_args!("{}", info.message()));
    if let Some(loc) = info.location() {
        crate::printk!("panic at {}:{}", loc.file(), loc.line());
    }
    monitor::record_panic(me.max(0) as u32, &msg.buf[..msg.len]);
    if me >= 0 {
        monitor::set_cpu_state(CpuState::Halted);
    }
    if x2apic::is_enabled() {
        x2apic::nmi_all_others();
    }
    cpu::outl(IKC_DOORBELL_PORT, IKC_MASTER_CHANNEL_ID);
    cpu::halt_forever()
}

/// NMI handler: after a panic elsewhere, stop here; otherwise ignore.
pub fn nmi() {
    if PANICKING.load(Ordering::SeqCst) {
        monitor::set_cpu_state(CpuState::Halted);
        cpu::halt_forever();
    }
}
