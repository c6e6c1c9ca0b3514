//! `ihk_os_makedumpfile` (§1.2.2.34): an ELF core of the partition that
//! `gdb <mckernel.img> <core>` opens.
//!
//! Contents: one NT_PRSTATUS note per LWK CPU with its registers (read by
//! the vCPU's own thread, the guest keeps running), and PT_LOAD segments
//! with guest-physical addresses in `p_paddr` and the LWK's virtual
//! addresses in `p_vaddr`: every dumped range in the direct map
//! ([`DIRECT_MAP_BASE`] + physical), the kernel image at its link address,
//! and the identity map (virtual = physical, used by the boot stacks) for
//! the boot area, and for all memory at level 0.
//!
//! Level 0 dumps all memory assigned to the partition. Level 24 dumps what
//! the kernel uses: the boot area (image, page tables, boot stacks, shared
//! pages) and every page the LWK's frame allocator has handed out, read
//! from its bitmaps (published in the memory-info page); free pages are
//! left out. The allocator does not tell kernel pages from user pages, so
//! user memory of running processes is included. All-zero pages become
//! holes of a sparse file.

use super::Partition;
use crate::coredump::{self, Block, CpuRegs, Load};
use crate::error::VmError;
use crate::memory::GuestRegion;
use ihk_abi::layout::{
    DIRECT_MAP_BASE, KERNEL_PHYS_BASE, KERNEL_VIRT_BASE, MEMINFO_GPA, PAGE_SIZE,
};
use ihk_abi::meminfo::{FrameRegion, MemInfoPage, MAX_FRAME_REGIONS};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The specification's dump levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpLevel {
    /// 0: all memory IHK assigned to the OS instance.
    All,
    /// 24: memory the kernel uses.
    Kernel,
}

impl DumpLevel {
    pub fn from_level(level: i32) -> Option<DumpLevel> {
        match level {
            0 => Some(DumpLevel::All),
            24 => Some(DumpLevel::Kernel),
            _ => None,
        }
    }
}

/// What a dump contained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpSummary {
    pub file_size: u64,
    /// Guest memory described by the PT_LOAD segments (each byte once).
    pub memory_bytes: u64,
    pub segments: usize,
    /// CPUs whose registers are in the notes.
    pub cpus_with_registers: usize,
}

/// How long one vCPU may take to hand over its registers.
const REGS_TIMEOUT: Duration = Duration::from_millis(500);
/// Copy unit.
const COPY_CHUNK: u64 = 1 << 20;

impl Partition {
    /// Write the core to `file` (from offset 0; the file is truncated or
    /// extended to the core's size). `with_data: false` writes the headers
    /// and notes only (the interactive mode: memory stays in the partition).
    pub fn write_core(
        &self,
        file: &File,
        level: DumpLevel,
        with_data: bool,
    ) -> Result<DumpSummary, VmError> {
        let regions = self.inner.mem.regions().to_vec();
        let runs = match level {
            DumpLevel::All => regions.iter().map(|r| (r.gpa, r.end())).collect(),
            DumpLevel::Kernel => self.kernel_runs(&regions)?,
        };
        // Leave room for the identity and kernel-window headers.
        let runs = coredump::merge_runs(runs, coredump::MAX_PHDRS / 2 - regions.len() - 8);
        let blocks = split_by_regions(&runs, &regions);
        let mut loads: Vec<Load> = blocks
            .iter()
            .map(|b| Load {
                vaddr: DIRECT_MAP_BASE + b.gpa,
                gpa: b.gpa,
                size: b.size,
            })
            .collect();
        let identity_end = match level {
            DumpLevel::All => u64::MAX,
            DumpLevel::Kernel => self.inner.boot_area_end,
        };
        for b in &blocks {
            let end = (b.gpa + b.size).min(identity_end);
            if end > b.gpa {
                loads.push(Load {
                    vaddr: b.gpa,
                    gpa: b.gpa,
                    size: end - b.gpa,
                });
            }
        }
        loads.push(Load {
            vaddr: KERNEL_VIRT_BASE,
            gpa: KERNEL_PHYS_BASE,
            size: self.inner.kernel_span,
        });
        let cpus = self.cpu_registers();
        let layout = coredump::layout(&blocks, &loads, &cpus, with_data)
            .map_err(|e| VmError::State(format!("laying out the dump: {e}")))?;
        file.set_len(0)
            .map_err(VmError::io("truncating the dump file"))?;
        file.write_all_at(&layout.head, 0)
            .map_err(VmError::io("writing the dump headers"))?;
        if with_data {
            for (b, &off) in blocks.iter().zip(&layout.block_offsets) {
                self.copy_block(file, b, off)?;
            }
        }
        file.set_len(layout.file_size)
            .map_err(VmError::io("sizing the dump file"))?;
        Ok(DumpSummary {
            file_size: layout.file_size,
            memory_bytes: blocks.iter().map(|b| b.size).sum(),
            segments: loads.len(),
            cpus_with_registers: cpus.len(),
        })
    }

    /// Registers of every CPU whose vCPU thread still runs.
    fn cpu_registers(&self) -> Vec<CpuRegs> {
        let vcpus = self.vcpus.lock().unwrap();
        vcpus
            .iter()
            .filter_map(|v| {
                v.registers(REGS_TIMEOUT).map(|r| CpuRegs {
                    lwk_cpu: v.lwk_id,
                    regs: r.regs,
                    sregs: r.sregs,
                })
            })
            .collect()
    }

    /// Level 24: boot area, allocator bitmaps and allocated pages; guest
    /// regions the allocator does not describe are taken whole.
    fn kernel_runs(&self, regions: &[GuestRegion]) -> Result<Vec<(u64, u64)>, VmError> {
        let mut runs = vec![(0, self.inner.boot_area_end)];
        let listed = self.frame_regions();
        for fr in &listed {
            runs.push((fr.bitmap_pa, fr.base_pa));
            self.allocated_runs(fr, &mut runs)?;
        }
        for r in regions {
            let described = listed
                .iter()
                .any(|f| f.base_pa >= r.gpa && f.base_pa < r.end());
            if !described {
                runs.push((r.gpa.max(self.inner.boot_area_end.min(r.end())), r.end()));
            }
        }
        runs.retain(|&(s, e)| e > s);
        Ok(runs)
    }

    fn frame_regions(&self) -> Vec<FrameRegion> {
        // SAFETY: the memory-info page lies in chunk 0 and stays mapped;
        // the fields read are atomics or written by the LWK before the
        // count (Release), which is read first (Acquire).
        let Ok(mi) = (unsafe { self.inner.mem.shared::<MemInfoPage>(MEMINFO_GPA) }) else {
            return Vec::new();
        };
        let n = (mi.nr_frame_regions.load(Ordering::Acquire) as usize).min(MAX_FRAME_REGIONS);
        (0..n)
            // SAFETY: i < MAX_FRAME_REGIONS: inside the page; plain data.
            .map(|i| unsafe { std::ptr::read_volatile(mi.frame_regions.as_ptr().add(i)) })
            .filter(|f| f.pages > 0)
            .collect()
    }

    /// Runs of allocated pages of one allocator region, from its bitmap.
    fn allocated_runs(&self, fr: &FrameRegion, runs: &mut Vec<(u64, u64)>) -> Result<(), VmError> {
        let words = fr.pages.div_ceil(64);
        let bitmap = self.inner.mem.host_ptr(fr.bitmap_pa, words * 8)? as *const u64;
        let mut start: Option<u64> = None;
        for w in 0..words {
            // SAFETY: inside the bitmap (host_ptr checked the whole range);
            // the LWK may change it meanwhile, so read volatile.
            let word = unsafe { std::ptr::read_volatile(bitmap.add(w as usize)) };
            for bit in 0..64 {
                let page = w * 64 + bit;
                if page >= fr.pages {
                    break;
                }
                let used = word & (1 << bit) != 0;
                let pa = fr.base_pa + page * PAGE_SIZE;
                match (used, start) {
                    (true, None) => start = Some(pa),
                    (false, Some(s)) => {
                        runs.push((s, pa));
                        start = None;
                    }
                    _ => {}
                }
            }
        }
        if let Some(s) = start {
            runs.push((s, fr.base_pa + fr.pages * PAGE_SIZE));
        }
        Ok(())
    }

    /// Copy one block of guest memory to `off`, skipping all-zero pages
    /// (they stay holes in the file).
    fn copy_block(&self, file: &File, b: &Block, off: u64) -> Result<(), VmError> {
        let mut buf = vec![0u64; (COPY_CHUNK / 8) as usize];
        let mut done = 0;
        while done < b.size {
            let len = (b.size - done).min(COPY_CHUNK);
            let src = self.inner.mem.host_ptr(b.gpa + done, len)? as *const u64;
            let words = (len / 8) as usize;
            for (i, w) in buf[..words].iter_mut().enumerate() {
                // SAFETY: inside the range host_ptr checked; the guest may
                // write concurrently, so read volatile (a dump of a running
                // kernel is a moment's picture, as kdump's is).
                *w = unsafe { std::ptr::read_volatile(src.add(i)) };
            }
            let page_words = (PAGE_SIZE / 8) as usize;
            let mut p = 0;
            while p < words {
                let zero = |q: usize| buf[q..(q + page_words).min(words)].iter().all(|&w| w == 0);
                if zero(p) {
                    p += page_words;
                    continue;
                }
                let mut q = p;
                while q < words && !zero(q) {
                    q += page_words;
                }
                let q = q.min(words);
                // SAFETY: u64 slice viewed as bytes, same memory.
                let bytes = unsafe {
                    std::slice::from_raw_parts(buf[p..q].as_ptr() as *const u8, (q - p) * 8)
                };
                file.write_all_at(bytes, off + done + p as u64 * 8)
                    .map_err(VmError::io("writing the dump"))?;
                p = q;
            }
            done += len;
        }
        Ok(())
    }
}

/// Cut runs at guest region boundaries (a block is read through one
/// region's mapping); parts outside guest memory are dropped.
fn split_by_regions(runs: &[(u64, u64)], regions: &[GuestRegion]) -> Vec<Block> {
    let mut out = Vec::new();
    for &(s, e) in runs {
        for r in regions {
            let (a, z) = (s.max(r.gpa), e.min(r.end()));
            if z > a {
                out.push(Block {
                    gpa: a,
                    size: z - a,
                });
            }
        }
    }
    out.sort_by_key(|b| b.gpa);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(gpa: u64, size: u64) -> GuestRegion {
        GuestRegion {
            gpa,
            size,
            numa_id: 0,
            chunk: 0,
            memfd: -1,
            memfd_offset: 0,
            host_addr: std::ptr::null_mut(),
        }
    }

    #[test]
    fn runs_are_cut_at_region_edges() {
        let regions = [region(0, 0x100_0000), region(0x4000_0000, 0x100_0000)];
        let blocks = split_by_regions(&[(0x80_0000, 0x4000_1000)], &regions);
        assert_eq!(
            blocks,
            vec![
                Block {
                    gpa: 0x80_0000,
                    size: 0x80_0000
                },
                Block {
                    gpa: 0x4000_0000,
                    size: 0x1000
                }
            ]
        );
    }

    #[test]
    fn levels() {
        assert_eq!(DumpLevel::from_level(0), Some(DumpLevel::All));
        assert_eq!(DumpLevel::from_level(24), Some(DumpLevel::Kernel));
        assert_eq!(DumpLevel::from_level(31), None);
    }
}
