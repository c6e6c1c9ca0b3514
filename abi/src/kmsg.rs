//! Kernel message buffer (`ihk_get_kmsg_buf`, `ihkosctl N kmsg`).
//!
//! A byte ring after a one-cache-line header. The LWK appends text (CPUs
//! serialise on `lock`); `head` counts every byte ever written, so the text
//! lives at positions `[max(head - capacity, clear_pos), head)` modulo
//! `capacity`. The host reads it, and implements "clear" by setting
//! `clear_pos = head`; it never writes anything else.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub const KMSG_MAGIC: u64 = u64::from_le_bytes(*b"IHKKMSG\0");

#[repr(C)]
pub struct KmsgHeader {
    pub magic: u64,
    /// Bytes of text storage after the header.
    pub capacity: u64,
    /// Total bytes written since boot (LWK writes, Release).
    pub head: AtomicU64,
    /// Oldest position to show (host writes on clear).
    pub clear_pos: AtomicU64,
    /// LWK-internal writer lock (0 free, 1 held).
    pub lock: AtomicU32,
    pub _pad: u32,
    pub _reserved: [u64; 3],
}

/// Size of the header; text starts at this offset in the kmsg region.
pub const KMSG_HEADER_SIZE: usize = core::mem::size_of::<KmsgHeader>();

/// Bytes of text storage for a kmsg region of `region_size` bytes.
pub const fn kmsg_capacity(region_size: u64) -> u64 {
    region_size - KMSG_HEADER_SIZE as u64
}

impl KmsgHeader {
    /// Positions `[start, end)` of the text currently shown, for a reader
    /// whose own idea of the text storage is `capacity` bytes: the host
    /// passes the size it gave the region, never the header's field, which
    /// the LWK can overwrite (at most `capacity` bytes are ever shown).
    pub fn visible_range(&self, capacity: u64) -> (u64, u64) {
        let head = self.head.load(Ordering::Acquire);
        let clear = self.clear_pos.load(Ordering::Relaxed).min(head);
        let oldest = head.saturating_sub(capacity);
        (oldest.max(clear), head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout() {
        assert_eq!(KMSG_HEADER_SIZE, 64);
        assert_eq!(offset_of!(KmsgHeader, head), 16);
        assert_eq!(offset_of!(KmsgHeader, clear_pos), 24);
        assert_eq!(offset_of!(KmsgHeader, lock), 32);
    }

    #[test]
    fn visible_range_respects_wrap_and_clear() {
        let h = KmsgHeader {
            magic: KMSG_MAGIC,
            capacity: 100,
            head: AtomicU64::new(250),
            clear_pos: AtomicU64::new(0),
            lock: AtomicU32::new(0),
            _pad: 0,
            _reserved: [0; 3],
        };
        assert_eq!(h.visible_range(h.capacity), (150, 250));
        h.clear_pos.store(200, Ordering::Relaxed);
        assert_eq!(h.visible_range(h.capacity), (200, 250));
        h.clear_pos.store(300, Ordering::Relaxed);
        assert_eq!(h.visible_range(h.capacity), (250, 250));
    }
}
