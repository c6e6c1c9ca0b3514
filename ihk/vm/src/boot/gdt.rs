//! The GDT and TSS the vCPUs enter with (flat 64-bit code and data, one
//! busy 64-bit TSS as VM entry requires). The LWK loads its own GDT at once.

use ihk_abi::layout::GDT_GPA;
use kvm_bindings::kvm_segment;

pub const CODE_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;
pub const TSS_SELECTOR: u16 = 0x18;
/// The TSS lives in the GDT page, after the descriptors.
pub const TSS_GPA: u64 = GDT_GPA + 0x100;
const TSS_LIMIT: u32 = 0x67;

const CODE64_FLAGS: u16 = 0xa09b; // G, L, P, DPL0, S, execute/read, accessed
const DATA_FLAGS: u16 = 0xc093; // G, D/B, P, DPL0, S, read/write, accessed
const TSS_FLAGS: u16 = 0x008b; // P, 64-bit TSS (busy)

/// Encode a segment descriptor (the layout of the Intel SDM, vol. 3 §3.4.5).
pub fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (flags as u64, base as u64, limit as u64);
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// GDT contents: null, code64, data, TSS (two slots).
pub fn gdt_entries() -> [u64; 5] {
    [
        0,
        descriptor(CODE64_FLAGS, 0, 0xfffff),
        descriptor(DATA_FLAGS, 0, 0xfffff),
        descriptor(TSS_FLAGS, TSS_GPA as u32, TSS_LIMIT),
        TSS_GPA >> 32,
    ]
}

/// The GDT page as bytes (descriptors, then a zeroed TSS with no I/O bitmap).
pub fn gdt_page() -> Vec<u8> {
    let mut page = vec![0u8; 4096];
    for (i, e) in gdt_entries().iter().enumerate() {
        page[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
    }
    // I/O map base beyond the limit: no I/O permission bitmap.
    let iomap = (TSS_LIMIT as u16 + 1).to_le_bytes();
    let t = TSS_GPA as usize - GDT_GPA as usize;
    page[t + 0x66..t + 0x68].copy_from_slice(&iomap);
    page
}

pub fn gdt_limit() -> u16 {
    (gdt_entries().len() * 8 - 1) as u16
}

/// The KVM segment register for descriptor `d` loaded with `selector`.
pub fn segment(d: u64, selector: u16) -> kvm_segment {
    let g = ((d >> 55) & 1) as u8;
    let raw_limit = (((d >> 32) & 0x000f_0000) | (d & 0xffff)) as u32;
    kvm_segment {
        base: ((d >> 16) & 0x00ff_ffff) | ((d >> 32) & 0xff00_0000),
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector,
        type_: ((d >> 40) & 0xf) as u8,
        present: ((d >> 47) & 1) as u8,
        dpl: ((d >> 45) & 3) as u8,
        db: ((d >> 54) & 1) as u8,
        s: ((d >> 44) & 1) as u8,
        l: ((d >> 53) & 1) as u8,
        g,
        avl: ((d >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_match_known_encodings() {
        // Same values Linux and Firecracker use for flat 64-bit segments.
        assert_eq!(descriptor(CODE64_FLAGS, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(descriptor(DATA_FLAGS, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        let code = segment(gdt_entries()[1], CODE_SELECTOR);
        assert_eq!(
            (code.l, code.db, code.type_, code.present, code.s),
            (1, 0, 0xb, 1, 1)
        );
        assert_eq!(code.limit, 0xffff_ffff);
        let tss = segment(gdt_entries()[3], TSS_SELECTOR);
        assert_eq!(
            (tss.base, tss.limit, tss.type_, tss.s, tss.g),
            (TSS_GPA, TSS_LIMIT, 0xb, 0, 0)
        );
    }

    #[test]
    fn gdt_page_layout() {
        let p = gdt_page();
        assert_eq!(
            u64::from_le_bytes(p[8..16].try_into().unwrap()),
            gdt_entries()[1]
        );
        assert_eq!(gdt_limit(), 39);
        const { assert!(TSS_GPA + 0x68 <= GDT_GPA + 4096) };
    }
}
