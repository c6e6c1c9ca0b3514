//! The LWK ELF image: validation and loading into guest memory.

use crate::error::VmError;
use crate::memory::GuestMemory;
use goblin::elf::{header, program_header::PT_LOAD, Elf};
use ihk_abi::layout::{KERNEL_MAX_SIZE, KERNEL_PHYS_BASE, KERNEL_VIRT_BASE, LARGE_PAGE_SIZE};

/// One PT_LOAD segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset from KERNEL_VIRT_BASE.
    pub offset: u64,
    pub file_range: std::ops::Range<usize>,
    pub mem_size: u64,
}

/// A validated LWK image.
#[derive(Debug)]
pub struct KernelImage<'a> {
    pub bytes: &'a [u8],
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// Bytes from KERNEL_VIRT_BASE to the end of the last segment, rounded
    /// up to 2 MiB (the mapped kernel window).
    pub span: u64,
}

fn bad(detail: impl Into<String>) -> VmError {
    VmError::invalid("LWK image", detail)
}

impl<'a> KernelImage<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<KernelImage<'a>, VmError> {
        let elf = Elf::parse(bytes).map_err(|e| bad(format!("not an ELF file: {e}")))?;
        if !elf.is_64 || !elf.little_endian {
            return Err(bad("expected a 64-bit little-endian ELF"));
        }
        if elf.header.e_machine != header::EM_X86_64 {
            return Err(bad(format!(
                "machine is {}, expected x86-64",
                elf.header.e_machine
            )));
        }
        if elf.header.e_type != header::ET_EXEC {
            return Err(bad(format!(
                "ELF type is {}, expected EXEC (linked at {KERNEL_VIRT_BASE:#x})",
                header::et_to_str(elf.header.e_type)
            )));
        }
        let window = KERNEL_VIRT_BASE..KERNEL_VIRT_BASE + KERNEL_MAX_SIZE;
        let mut segments = Vec::new();
        let mut end = 0u64;
        for ph in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
            let vend = ph
                .p_vaddr
                .checked_add(ph.p_memsz)
                .ok_or_else(|| bad("segment size overflows"))?;
            if !window.contains(&ph.p_vaddr) || vend > window.end {
                return Err(bad(format!(
                    "segment at {:#x}+{:#x} lies outside the kernel window {:#x}..{:#x}",
                    ph.p_vaddr, ph.p_memsz, window.start, window.end
                )));
            }
            if ph.p_filesz > ph.p_memsz {
                return Err(bad(format!(
                    "segment at {:#x} has filesz > memsz",
                    ph.p_vaddr
                )));
            }
            let fstart = ph.p_offset as usize;
            let fend = fstart
                .checked_add(ph.p_filesz as usize)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| {
                    bad(format!(
                        "segment at {:#x} extends past the end of the file",
                        ph.p_vaddr
                    ))
                })?;
            segments.push(Segment {
                offset: ph.p_vaddr - KERNEL_VIRT_BASE,
                file_range: fstart..fend,
                mem_size: ph.p_memsz,
            });
            end = end.max(vend - KERNEL_VIRT_BASE);
        }
        if segments.is_empty() {
            return Err(bad("no loadable segment"));
        }
        let entry = elf.header.e_entry;
        if !(KERNEL_VIRT_BASE..KERNEL_VIRT_BASE + end).contains(&entry) {
            return Err(bad(format!(
                "entry point {entry:#x} is outside the loaded image"
            )));
        }
        let span = ihk_abi::layout::align_up(end, LARGE_PAGE_SIZE);
        Ok(KernelImage {
            bytes,
            entry,
            segments,
            span,
        })
    }

    /// Copy the segments to guest memory at KERNEL_PHYS_BASE and zero the
    /// rest of the kernel window (bss and gaps).
    pub fn load(&self, mem: &GuestMemory) -> Result<(), VmError> {
        mem.zero(KERNEL_PHYS_BASE, self.span)?;
        for s in &self.segments {
            mem.write(
                KERNEL_PHYS_BASE + s.offset,
                &self.bytes[s.file_range.clone()],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_lwk_image_is_valid() {
        let bytes = std::fs::read(crate::LWK_IMAGE_PATH).expect("mckernel.img built by build.rs");
        let img = KernelImage::parse(&bytes).unwrap();
        assert!(img.entry >= KERNEL_VIRT_BASE);
        assert_eq!(img.span % LARGE_PAGE_SIZE, 0);
        assert!(img.segments.iter().any(|s| s.offset == 0));
    }

    #[test]
    fn garbage_and_host_binaries_are_rejected() {
        let e = KernelImage::parse(b"hello").unwrap_err();
        assert!(e.to_string().contains("not an ELF"), "{e}");
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let e = KernelImage::parse(&exe).unwrap_err().to_string();
        assert!(
            e.contains("expected EXEC") || e.contains("outside the kernel window"),
            "{e}"
        );
    }
}
