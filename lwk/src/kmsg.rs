//! printk: Linux-like lines (`[  3]: text`, CPU id in brackets) appended to
//! the kmsg ring the host reads with `ihkosctl N kmsg`.
//!
//! Writers on all CPUs serialise on the lock word in the shared header, with
//! interrupts off so a handler on the same CPU cannot deadlock. A panicking
//! CPU takes the lock by force after a bounded wait.

use crate::arch::x86_64 as cpu;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use ihk_abi::kmsg::{KmsgHeader, KMSG_HEADER_SIZE, KMSG_MAGIC};
use ihk_abi::BootParams;

static KMSG: AtomicU64 = AtomicU64::new(0);

pub fn init(bp: &BootParams) {
    // Through the direct map (mm/phys.rs): valid under any page table.
    let base = crate::arch::x86_64::direct_map::to_virt(bp.kmsg.phys) as u64;
    // SAFETY: the host initialised the header at this identity-mapped
    // address before entering us (boot protocol).
    let h = unsafe { &*(base as *const KmsgHeader) };
    if h.magic == KMSG_MAGIC
        && h.capacity + KMSG_HEADER_SIZE as u64 <= bp.kmsg.size
        && h.capacity > 0
    {
        KMSG.store(base, Ordering::Release);
    }
}

struct Ring {
    h: &'static KmsgHeader,
    data: *mut u8,
    pos: u64,
}

impl Write for Ring {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let cap = self.h.capacity;
        for &b in s.as_bytes() {
            // SAFETY: index < capacity, inside the kmsg region (checked in init).
            unsafe { core::ptr::write_volatile(self.data.add((self.pos % cap) as usize), b) };
            self.pos += 1;
        }
        Ok(())
    }
}

fn with_ring(force: bool, f: impl FnOnce(&mut Ring)) {
    let base = KMSG.load(Ordering::Acquire);
    if base == 0 {
        return;
    }
    // SAFETY: validated in init; the header outlives the kernel.
    let h = unsafe { &*(base as *const KmsgHeader) };
    let irq = x86_64::instructions::interrupts::are_enabled();
    cpu::interrupts_off();
    let mut spins = 0u64;
    while h
        .lock
        .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
        spins += 1;
        if force && spins > 10_000_000 {
            break;
        }
    }
    let mut r = Ring {
        h,
        data: (base + KMSG_HEADER_SIZE as u64) as *mut u8,
        pos: h.head.load(Ordering::Relaxed),
    };
    f(&mut r);
    h.head.store(r.pos, Ordering::Release);
    h.lock.store(0, Ordering::Release);
    if irq {
        x86_64::instructions::interrupts::enable();
    }
}

/// One line with the CPU prefix.
pub fn line(args: fmt::Arguments) {
    let cpu = crate::smp::cpu_id_or_minus_one();
    with_ring(false, |r| {
        let _ = writeln!(r, "[{:>3}]: {}", cpu, args);
    });
}

/// One line without prefix (McKernel's "started"/"booted" banners).
pub fn raw_line(s: &str) {
    with_ring(false, |r| {
        let _ = r.write_str(s);
        let _ = r.write_str("\n");
    });
}

/// The panic line; never blocks for long.
pub fn panic_line(args: fmt::Arguments) {
    let cpu = crate::smp::cpu_id_or_minus_one();
    with_ring(true, |r| {
        let _ = writeln!(r, "[{:>3}]: Kernel panic - not syncing: {}", cpu, args);
    });
}

#[macro_export]
macro_rules! printk {
    ($($arg:tt)*) => { $crate::kmsg::line(format_args!($($arg)*)) };
}
