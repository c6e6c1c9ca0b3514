//! Host side of the kmsg buffer: read the text and clear it (§1.2.2.21-23).

use ihk_abi::kmsg::{KmsgHeader, KMSG_HEADER_SIZE, KMSG_MAGIC};
use std::sync::atomic::Ordering;

/// Read-only view of the kmsg region (host pointer + size).
pub(crate) struct Kmsg {
    base: *mut u8,
    size: u64,
}

// SAFETY: shared guest memory, only accessed through atomics and volatile
// byte copies; the mapping outlives the Partition that owns this.
unsafe impl Send for Kmsg {}
unsafe impl Sync for Kmsg {}

impl Kmsg {
    /// Initialise the header (before the LWK runs).
    ///
    /// # Safety
    /// `[base, base + size)` is guest memory that stays mapped while the
    /// returned value lives; the LWK is not yet running.
    pub unsafe fn init(base: *mut u8, size: u64) -> Kmsg {
        // SAFETY: contract above; the header fits (size > KMSG_HEADER_SIZE).
        unsafe {
            std::ptr::write_bytes(base, 0, KMSG_HEADER_SIZE);
            let h = base as *mut KmsgHeader;
            (*h).capacity = size - KMSG_HEADER_SIZE as u64;
            (*h).magic = KMSG_MAGIC;
        }
        Kmsg { base, size }
    }

    fn header(&self) -> &KmsgHeader {
        // SAFETY: base points at an initialised header for our lifetime;
        // fields the LWK writes are atomics.
        unsafe { &*(self.base as *const KmsgHeader) }
    }

    fn capacity(&self) -> u64 {
        self.size - KMSG_HEADER_SIZE as u64
    }

    /// The current text (invalid UTF-8 replaced).
    pub fn read(&self) -> String {
        let h = self.header();
        let cap = self.capacity();
        let (start, end) = h.visible_range(cap);
        let mut out = vec![0u8; (end - start) as usize];
        for (i, pos) in (start..end).enumerate() {
            // SAFETY: pos % cap < cap, inside the text area.
            out[i] = unsafe {
                std::ptr::read_volatile(self.base.add(KMSG_HEADER_SIZE + (pos % cap) as usize))
            };
        }
        // Bytes the LWK overwrote while we copied are dropped.
        let head_now = h.head.load(Ordering::Acquire);
        let lost = head_now
            .saturating_sub(cap)
            .saturating_sub(start)
            .min(out.len() as u64);
        String::from_utf8_lossy(&out[lost as usize..]).into_owned()
    }

    /// Text written at positions `[from, head)` (positions count every
    /// byte since boot; `clear` does not affect this view): the bytes still
    /// in the ring, the position after them, and how many bytes from `from`
    /// on were already overwritten.
    pub fn read_since(&self, from: u64) -> (Vec<u8>, u64, u64) {
        let h = self.header();
        let cap = self.capacity();
        let head = h.head.load(Ordering::Acquire);
        let from = from.min(head);
        let start = from.max(head.saturating_sub(cap));
        let mut out = vec![0u8; (head - start) as usize];
        for (i, pos) in (start..head).enumerate() {
            // SAFETY: pos % cap < cap, inside the text area.
            out[i] = unsafe {
                std::ptr::read_volatile(self.base.add(KMSG_HEADER_SIZE + (pos % cap) as usize))
            };
        }
        // Bytes the LWK overwrote while we copied are dropped.
        let head_now = h.head.load(Ordering::Acquire);
        let overwritten = head_now
            .saturating_sub(cap)
            .saturating_sub(start)
            .min(out.len() as u64);
        out.drain(..overwritten as usize);
        (out, head, start + overwritten - from)
    }

    pub fn clear(&self) {
        let h = self.header();
        h.clear_pos
            .store(h.head.load(Ordering::Acquire), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_clear() {
        let mut buf = vec![0u64; (KMSG_HEADER_SIZE + 16) / 8];
        let base = buf.as_mut_ptr() as *mut u8;
        let k = unsafe { Kmsg::init(base, (KMSG_HEADER_SIZE + 16) as u64) };
        let text = b"0123456789abcdefXYZ";
        for (i, &b) in text.iter().enumerate() {
            unsafe { *base.add(KMSG_HEADER_SIZE + i % 16) = b };
        }
        k.header().head.store(text.len() as u64, Ordering::Release);
        assert_eq!(k.read(), "3456789abcdefXYZ");
        let (text, next, lost) = k.read_since(0);
        assert_eq!((text.as_slice(), next, lost), (&b"3456789abcdefXYZ"[..], 19, 3));
        let (text, next, lost) = k.read_since(17);
        assert_eq!((text.as_slice(), next, lost), (&b"YZ"[..], 19, 0));
        k.clear();
        assert_eq!(k.read(), "");
        assert_eq!(k.read_since(18).0, b"Z", "clear does not hide text from read_since");
        drop(buf);
    }
}
