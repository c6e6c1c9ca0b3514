//! Fuzz harness of what the host reads from the LWK or from a file it is
//! handed (issue 20, item 5): the LWK image's ELF checks
//! ([`crate::boot::elf::KernelImage::parse`], random files and edited valid
//! ones) and the kmsg ring ([`crate::kmsg::Kmsg`]) whose header a broken or
//! hostile LWK may overwrite with anything. ihkd serves every instance from
//! one process, so neither may panic, read outside its region, or allocate
//! more than the region holds.

use std::sync::atomic::Ordering;

use ihk_abi::kmsg::{KmsgHeader, KMSG_HEADER_SIZE};
use ihk_abi::layout::KERNEL_VIRT_BASE;
use proptest::prelude::*;

use crate::boot::elf::KernelImage;
use crate::kmsg::Kmsg;

/// A valid LWK image: ELF64 EXEC header, one PT_LOAD of 64 bytes at the
/// kernel base, entry at its start.
fn valid_image() -> Vec<u8> {
    let mut f = vec![0u8; 64 + 56 + 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&KERNEL_VIRT_BASE.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = &mut f[64..120];
    ph[0..4].copy_from_slice(&1u32.to_le_bytes());
    ph[4..8].copy_from_slice(&7u32.to_le_bytes());
    ph[8..16].copy_from_slice(&120u64.to_le_bytes());
    ph[16..24].copy_from_slice(&KERNEL_VIRT_BASE.to_le_bytes());
    ph[24..32].copy_from_slice(&KERNEL_VIRT_BASE.to_le_bytes());
    ph[32..40].copy_from_slice(&64u64.to_le_bytes());
    ph[40..48].copy_from_slice(&64u64.to_le_bytes());
    f
}

/// The valid image with up to 8 bytes overwritten (extremes often), or cut.
fn edited_image() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(0u8), Just(0xff), Just(0x80), Just(0x7f), any::<u8>()];
    (prop::collection::vec((0usize..184, byte), 0..8), 0usize..200).prop_map(|(edits, cut)| {
        let mut f = valid_image();
        for (i, b) in edits {
            f[i] = b;
        }
        f.truncate(cut.max(1));
        f
    })
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(3000))]

    #[test]
    fn lwk_images(bytes in prop_oneof![edited_image(), prop::collection::vec(any::<u8>(), 0..512)]) {
        if let Ok(img) = KernelImage::parse(&bytes) {
            prop_assert!(!img.segments.is_empty());
            for s in &img.segments {
                prop_assert!(s.file_range.end <= bytes.len());
                prop_assert!(s.file_range.len() as u64 <= s.mem_size);
            }
            prop_assert!(img.entry >= KERNEL_VIRT_BASE);
        }
    }

    /// The LWK writes any header: the host reads at most its own capacity.
    #[test]
    fn kmsg_headers(
        text_len in 1usize..512,
        capacity in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 0u64..1024],
        head in prop_oneof![any::<u64>(), 0u64..4096, Just(u64::MAX)],
        clear in prop_oneof![any::<u64>(), 0u64..4096],
        magic in any::<u64>(),
        from in prop_oneof![any::<u64>(), 0u64..4096],
    ) {
        let words = (KMSG_HEADER_SIZE + text_len).div_ceil(8);
        let mut buf = vec![0x41u64; words];
        let base = buf.as_mut_ptr() as *mut u8;
        let size = (KMSG_HEADER_SIZE + text_len) as u64;
        // SAFETY: `buf` holds `size` bytes and outlives `k`; nothing else
        // uses it meanwhile.
        let k = unsafe { Kmsg::init(base, size) };
        {
            // SAFETY: the header lies at the start of `buf`.
            let h = unsafe { &mut *(base as *mut KmsgHeader) };
            h.magic = magic;
            h.capacity = capacity;
            h.head.store(head, Ordering::Release);
            h.clear_pos.store(clear, Ordering::Release);
        }
        prop_assert!(k.read().len() <= text_len * 3, "lossy UTF-8 at most triples");
        let (bytes, next, _lost) = k.read_since(from);
        prop_assert!(bytes.len() <= text_len);
        prop_assert_eq!(next, head);
        k.clear();
        drop(k);
        drop(buf);
    }
}

/// Inputs the harness found, kept as regression tests.
mod found {
    use super::*;

    /// An LWK that wrote a huge `capacity` into its kmsg header made the
    /// host size its copy from it: `ihkosctl 0 kmsg` asked for exabytes
    /// and ihkd died (allocation failure aborts the process).
    #[test]
    fn kmsg_capacity_comes_from_the_host() {
        let mut buf = vec![0u64; (KMSG_HEADER_SIZE + 16) / 8];
        let base = buf.as_mut_ptr() as *mut u8;
        // SAFETY: as in the harness above.
        let k = unsafe { Kmsg::init(base, (KMSG_HEADER_SIZE + 16) as u64) };
        let h = unsafe { &mut *(base as *mut KmsgHeader) };
        h.capacity = u64::MAX;
        h.head.store(1 << 62, Ordering::Release);
        assert_eq!(k.read().len(), 16);
        drop(k);
        drop(buf);
    }
}
