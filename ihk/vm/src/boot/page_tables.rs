//! Initial 4-level page tables (specification Fig. 2.2): the kernel window
//! `KERNEL_VIRT_BASE + x -> kernel_phys + x` and an identity map of every
//! guest memory region, 2 MiB pages (1 GiB where the CPU supports them and
//! the range allows), except the first 2 MiB, mapped with 4 KiB pages with
//! page 0 left unmapped to catch NULL dereferences. Everything is supervisor,
//! writable, executable: the LWK installs its own tables later.

use crate::error::VmError;
use ihk_abi::layout::{HUGE_PAGE_SIZE, KERNEL_VIRT_BASE, LARGE_PAGE_SIZE, PAGE_SIZE};

pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_WRITABLE: u64 = 1 << 1;
pub const PTE_HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const ENTRIES: usize = 512;

/// Tables under construction in a host buffer that will be copied to
/// `base_gpa` in guest memory.
pub struct PageTables {
    base_gpa: u64,
    tables: Vec<[u64; ENTRIES]>,
    max_tables: usize,
}

impl PageTables {
    /// Empty tables (just the PML4) for an area of `area_size` bytes.
    pub fn new(base_gpa: u64, area_size: u64) -> PageTables {
        PageTables {
            base_gpa,
            tables: vec![[0; ENTRIES]],
            max_tables: (area_size / PAGE_SIZE) as usize,
        }
    }

    /// Value for CR3.
    pub fn cr3(&self) -> u64 {
        self.base_gpa
    }

    /// The tables as bytes, to copy to `base_gpa`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.tables
            .iter()
            .flat_map(|t| t.iter().flat_map(|e| e.to_le_bytes()))
            .collect()
    }

    fn index_of(&self, table_gpa: u64) -> usize {
        ((table_gpa - self.base_gpa) / PAGE_SIZE) as usize
    }

    /// The next-level table behind entry `idx` of table `t`, created if absent.
    fn next_table(&mut self, t: usize, idx: usize) -> Result<usize, VmError> {
        let e = self.tables[t][idx];
        if e & PTE_PRESENT != 0 {
            if e & PTE_HUGE != 0 {
                return Err(VmError::invalid(
                    "page tables",
                    "mapping overlaps a large page",
                ));
            }
            return Ok(self.index_of(e & ADDR_MASK));
        }
        if self.tables.len() >= self.max_tables {
            return Err(VmError::invalid(
                "memory layout",
                format!(
                    "initial page tables need more than {} pages",
                    self.max_tables
                ),
            ));
        }
        self.tables.push([0; ENTRIES]);
        let n = self.tables.len() - 1;
        self.tables[t][idx] = (self.base_gpa + n as u64 * PAGE_SIZE) | PTE_PRESENT | PTE_WRITABLE;
        Ok(n)
    }

    /// Map one page of `size` (4 KiB, 2 MiB or 1 GiB) at `va` to `pa`.
    pub fn map(&mut self, va: u64, pa: u64, size: u64) -> Result<(), VmError> {
        debug_assert!(va % size == 0 && pa % size == 0);
        let idx = |level: u32| ((va >> (12 + 9 * level)) & 0x1ff) as usize;
        let pdpt = self.next_table(0, idx(3))?;
        let (table, index, flags) = if size == HUGE_PAGE_SIZE {
            (pdpt, idx(2), PTE_HUGE)
        } else {
            let pd = self.next_table(pdpt, idx(2))?;
            if size == LARGE_PAGE_SIZE {
                (pd, idx(1), PTE_HUGE)
            } else {
                let pt = self.next_table(pd, idx(1))?;
                (pt, idx(0), 0)
            }
        };
        if self.tables[table][index] & PTE_PRESENT != 0 {
            return Err(VmError::invalid(
                "page tables",
                format!("{va:#x} mapped twice"),
            ));
        }
        self.tables[table][index] = pa | PTE_PRESENT | PTE_WRITABLE | flags;
        Ok(())
    }

    /// Identity-map `[start, end)` (both 2 MiB aligned).
    pub fn identity_map(&mut self, start: u64, end: u64, gb_pages: bool) -> Result<(), VmError> {
        let mut a = start;
        while a < end {
            if a == 0 {
                for p in (PAGE_SIZE..LARGE_PAGE_SIZE).step_by(PAGE_SIZE as usize) {
                    self.map(p, p, PAGE_SIZE)?;
                }
                a = LARGE_PAGE_SIZE;
            } else if gb_pages && a % HUGE_PAGE_SIZE == 0 && a + HUGE_PAGE_SIZE <= end {
                self.map(a, a, HUGE_PAGE_SIZE)?;
                a += HUGE_PAGE_SIZE;
            } else {
                self.map(a, a, LARGE_PAGE_SIZE)?;
                a += LARGE_PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// Map the kernel window: `KERNEL_VIRT_BASE + x -> phys + x`, `x < span`.
    pub fn map_kernel(&mut self, phys: u64, span: u64) -> Result<(), VmError> {
        for off in (0..span).step_by(LARGE_PAGE_SIZE as usize) {
            self.map(KERNEL_VIRT_BASE + off, phys + off, LARGE_PAGE_SIZE)?;
        }
        Ok(())
    }

    /// Software walk (tests): physical address of `va`.
    #[cfg(test)]
    pub fn translate(&self, va: u64) -> Option<u64> {
        let mut t = 0usize;
        for level in (0..4u32).rev() {
            let e = self.tables[t][((va >> (12 + 9 * level)) & 0x1ff) as usize];
            if e & PTE_PRESENT == 0 {
                return None;
            }
            let page = 1u64 << (12 + 9 * level);
            if level == 0 || (e & PTE_HUGE != 0 && level <= 2) {
                return Some((e & ADDR_MASK & !(page - 1)) | (va & (page - 1)));
            }
            t = self.index_of(e & ADDR_MASK);
        }
        None
    }

    #[cfg(test)]
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ihk_abi::layout::{KERNEL_PHYS_BASE, PAGE_TABLES_GPA, PAGE_TABLES_SIZE};

    fn tables(regions: &[(u64, u64)], gb: bool) -> PageTables {
        let mut pt = PageTables::new(PAGE_TABLES_GPA, PAGE_TABLES_SIZE);
        for &(s, e) in regions {
            pt.identity_map(s, e, gb).unwrap();
        }
        pt.map_kernel(KERNEL_PHYS_BASE, 4 << 20).unwrap();
        pt
    }

    #[test]
    fn identity_and_kernel_window() {
        let pt = tables(
            &[(0, 512 << 20), (1 << 30, 3 << 30), (4 << 30, 6 << 30)],
            true,
        );
        assert_eq!(pt.translate(0), None, "page 0 must stay unmapped");
        assert_eq!(pt.translate(0xfff), None);
        assert_eq!(pt.translate(0x1000), Some(0x1000));
        assert_eq!(pt.translate(0x1f_fff8), Some(0x1f_fff8));
        assert_eq!(pt.translate(0x20_0000), Some(0x20_0000));
        assert_eq!(pt.translate((512 << 20) - 1), Some((512 << 20) - 1));
        assert_eq!(pt.translate(512 << 20), None, "hole between regions");
        assert_eq!(pt.translate((2 << 30) + 0x1234), Some((2 << 30) + 0x1234));
        assert_eq!(pt.translate(0xc000_0000), None, "MMIO hole");
        assert_eq!(pt.translate((5 << 30) + 8), Some((5 << 30) + 8));
        assert_eq!(pt.translate(KERNEL_VIRT_BASE), Some(KERNEL_PHYS_BASE));
        assert_eq!(
            pt.translate(KERNEL_VIRT_BASE + 0x3f_ffff),
            Some(KERNEL_PHYS_BASE + 0x3f_ffff)
        );
        assert_eq!(pt.translate(KERNEL_VIRT_BASE + 0x40_0000), None);
        assert_eq!(pt.cr3(), PAGE_TABLES_GPA);
    }

    #[test]
    fn gb_pages_save_tables() {
        let with = tables(&[(0, 1 << 30), (1 << 30, 3 << 30)], true).table_count();
        let without = tables(&[(0, 1 << 30), (1 << 30, 3 << 30)], false).table_count();
        assert!(with < without, "{with} vs {without}");
        let pt = tables(&[(1 << 30, 3 << 30)], false);
        assert_eq!(
            pt.translate((1 << 30) + 0x20_1234),
            Some((1 << 30) + 0x20_1234)
        );
    }

    #[test]
    fn bytes_encode_entries_and_overflow_is_an_error() {
        let pt = tables(&[(0, 64 << 20)], false);
        let b = pt.to_bytes();
        assert_eq!(b.len(), pt.table_count() * 4096);
        let pml4_0 = u64::from_le_bytes(b[0..8].try_into().unwrap());
        assert_eq!(pml4_0 & PTE_PRESENT, PTE_PRESENT);
        assert_eq!(pml4_0 & ADDR_MASK, PAGE_TABLES_GPA + 0x1000);
        let mut small = PageTables::new(PAGE_TABLES_GPA, 3 * 4096);
        let e = small.identity_map(0, 4 << 20, false).unwrap_err();
        assert!(e.to_string().contains("more than 3 pages"), "{e}");
        let mut twice = PageTables::new(PAGE_TABLES_GPA, PAGE_TABLES_SIZE);
        twice.identity_map(2 << 20, 4 << 20, false).unwrap();
        assert!(twice.identity_map(2 << 20, 4 << 20, false).is_err());
    }
}
