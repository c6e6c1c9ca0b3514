//! ELF core files (`ihk_os_makedumpfile`): the file layout and the bytes of
//! the ELF header, program headers and NT_PRSTATUS notes. Pure code; the
//! partition (`partition/dump.rs`) decides the segments and copies guest
//! memory into the places this layout gives.
//!
//! Layout: ELF header, program headers (PT_NOTE first, then PT_LOAD), the
//! notes, then each data block at a 4 KiB aligned offset. Several PT_LOAD
//! headers may describe the same block (the LWK reaches guest memory both
//! through its direct map and the identity map; the kernel image through
//! its own window): each points at the block's bytes in the file.

use kvm_bindings::{kvm_regs, kvm_sregs};

const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const NT_PRSTATUS: u32 = 1;
/// `sizeof(struct elf_prstatus)` on x86-64.
const PRSTATUS_SIZE: usize = 336;
/// Offset of `pr_reg` in `struct elf_prstatus`.
const PRSTATUS_REG_OFFSET: usize = 112;
/// Most program headers written (e_phnum is 16 bits; PN_XNUM is not used).
pub const MAX_PHDRS: usize = 0xff00;

/// Guest memory copied into the file once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub gpa: u64,
    pub size: u64,
}

/// One PT_LOAD: `size` bytes of guest memory at `gpa`, seen at `vaddr`.
/// Must lie inside one [`Block`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub vaddr: u64,
    pub gpa: u64,
    pub size: u64,
}

/// One CPU's registers for its NT_PRSTATUS note.
#[derive(Clone, Copy, Debug)]
pub struct CpuRegs {
    /// Written as the note's pid (LWK CPU id + 1: gdb treats 0 as "none").
    pub lwk_cpu: u32,
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
}

/// Where everything goes in the file.
#[derive(Debug)]
pub struct CoreLayout {
    /// ELF header, program headers and notes.
    pub head: Vec<u8>,
    /// File offset of each block (same order as given).
    pub block_offsets: Vec<u64>,
    /// Total file size.
    pub file_size: u64,
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// `struct elf_prstatus` with `pr_reg` filled in (x86-64 `user_regs_struct`).
fn prstatus(c: &CpuRegs) -> [u8; PRSTATUS_SIZE] {
    let mut d = [0u8; PRSTATUS_SIZE];
    d[32..36].copy_from_slice(&(c.lwk_cpu as i32 + 1).to_le_bytes());
    let (r, s) = (&c.regs, &c.sregs);
    let reg = [
        r.r15,
        r.r14,
        r.r13,
        r.r12,
        r.rbp,
        r.rbx,
        r.r11,
        r.r10,
        r.r9,
        r.r8,
        r.rax,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        u64::MAX, // orig_rax: not in a system call
        r.rip,
        s.cs.selector as u64,
        r.rflags,
        r.rsp,
        s.ss.selector as u64,
        s.fs.base,
        s.gs.base,
        s.ds.selector as u64,
        s.es.selector as u64,
        s.fs.selector as u64,
        s.gs.selector as u64,
    ];
    for (i, v) in reg.iter().enumerate() {
        let o = PRSTATUS_REG_OFFSET + 8 * i;
        d[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    d
}

fn notes(cpus: &[CpuRegs]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cpus {
        out.extend_from_slice(&5u32.to_le_bytes()); // namesz ("CORE\0")
        out.extend_from_slice(&(PRSTATUS_SIZE as u32).to_le_bytes());
        out.extend_from_slice(&NT_PRSTATUS.to_le_bytes());
        out.extend_from_slice(b"CORE\0\0\0\0"); // name, padded to 4
        out.extend_from_slice(&prstatus(c));
    }
    out
}

/// An Elf64_Phdr.
struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

impl Phdr {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.p_type.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        for v in [
            self.offset,
            self.vaddr,
            self.paddr,
            self.filesz,
            self.memsz,
            self.align,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Lay out a core file. `with_data: false` writes the headers only
/// (p_filesz 0: the memory stays in the live partition, the interactive
/// mode of the specification). Fails when a load is outside every block or
/// there are too many program headers.
pub fn layout(
    blocks: &[Block],
    loads: &[Load],
    cpus: &[CpuRegs],
    with_data: bool,
) -> Result<CoreLayout, String> {
    if loads.len() + 1 > MAX_PHDRS {
        return Err(format!(
            "{} segments; at most {} fit",
            loads.len(),
            MAX_PHDRS - 1
        ));
    }
    let notes = notes(cpus);
    let phnum = loads.len() as u64 + 1;
    let notes_off = EHDR_SIZE + phnum * PHDR_SIZE;
    let mut off = align_up(notes_off + notes.len() as u64, 4096);
    let mut block_offsets = Vec::with_capacity(blocks.len());
    for b in blocks {
        block_offsets.push(off);
        if with_data {
            off += align_up(b.size, 4096);
        }
    }
    let file_size = off;

    let mut head = Vec::with_capacity(notes_off as usize + notes.len());
    // Elf64_Ehdr.
    head.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]); // 64-bit, LE, v1, SYSV
    head.extend_from_slice(&[0; 8]);
    head.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    head.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    head.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    head.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    head.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    head.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    head.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    head.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    head.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    head.extend_from_slice(&(phnum as u16).to_le_bytes());
    head.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    head.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    head.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    debug_assert_eq!(head.len() as u64, EHDR_SIZE);

    Phdr {
        p_type: PT_NOTE,
        flags: 0,
        offset: notes_off,
        vaddr: 0,
        paddr: 0,
        filesz: notes.len() as u64,
        memsz: 0,
        align: 4,
    }
    .write(&mut head);
    for l in loads {
        let (i, b) = blocks
            .iter()
            .enumerate()
            .find(|(_, b)| l.gpa >= b.gpa && l.gpa + l.size <= b.gpa + b.size)
            .ok_or_else(|| {
                format!(
                    "segment at {:#x} (+{:#x}) is outside the dumped memory",
                    l.gpa, l.size
                )
            })?;
        let offset = block_offsets[i] + (l.gpa - b.gpa);
        let filesz = if with_data { l.size } else { 0 };
        Phdr {
            p_type: PT_LOAD,
            flags: PF_R | PF_W | PF_X,
            offset,
            vaddr: l.vaddr,
            paddr: l.gpa,
            filesz,
            memsz: l.size,
            align: 4096,
        }
        .write(&mut head);
    }
    head.extend_from_slice(&notes);
    Ok(CoreLayout {
        head,
        block_offsets,
        file_size,
    })
}

/// Sorted, disjoint page runs `[start, end)` merged until at most `max`
/// remain, by absorbing the smallest gaps first (memory dumps of fragmented
/// allocations keep the program header count bounded).
pub fn merge_runs(mut runs: Vec<(u64, u64)>, max: usize) -> Vec<(u64, u64)> {
    runs.sort_unstable();
    let mut gap = 0u64;
    loop {
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(runs.len());
        for &(s, e) in &runs {
            match out.last_mut() {
                Some(last) if s <= last.1 + gap => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        if out.len() <= max.max(1) {
            return out;
        }
        runs = out;
        gap = if gap == 0 { 4096 } else { gap * 2 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    fn cpu(id: u32, rip: u64) -> CpuRegs {
        let regs = kvm_regs {
            rip,
            rsp: 0x1234,
            ..Default::default()
        };
        let mut sregs = kvm_sregs::default();
        sregs.cs.selector = 8;
        CpuRegs {
            lwk_cpu: id,
            regs,
            sregs,
        }
    }

    #[test]
    fn headers_parse_and_point_into_blocks() {
        let blocks = [
            Block {
                gpa: 0,
                size: 0x40_0000,
            },
            Block {
                gpa: 0x80_0000,
                size: 0x20_0000,
            },
        ];
        let loads = [
            Load {
                vaddr: 0xffff_8000_0000_0000,
                gpa: 0,
                size: 0x40_0000,
            },
            Load {
                vaddr: 0,
                gpa: 0,
                size: 0x40_0000,
            },
            Load {
                vaddr: 0xffff_ffff_8000_0000,
                gpa: 0x20_0000,
                size: 0x10_0000,
            },
            Load {
                vaddr: 0xffff_8000_0080_0000,
                gpa: 0x80_0000,
                size: 0x20_0000,
            },
        ];
        let l = layout(
            &blocks,
            &loads,
            &[cpu(0, 0xffff_ffff_8000_1000), cpu(1, 7)],
            true,
        )
        .unwrap();
        let mut file = l.head.clone();
        file.resize(l.file_size as usize, 0);
        let elf = Elf::parse(&file).unwrap();
        assert_eq!(elf.header.e_type, goblin::elf::header::ET_CORE);
        assert_eq!(elf.program_headers.len(), 5);
        let ph = &elf.program_headers;
        assert_eq!(ph[0].p_type, PT_NOTE);
        assert_eq!(ph[1].p_offset, l.block_offsets[0]);
        assert_eq!(
            ph[2].p_offset, l.block_offsets[0],
            "identity view shares the bytes"
        );
        assert_eq!(ph[3].p_offset, l.block_offsets[0] + 0x20_0000);
        assert_eq!(ph[4].p_offset, l.block_offsets[1]);
        assert_eq!(ph[4].p_paddr, 0x80_0000);
        assert_eq!(l.block_offsets[1], l.block_offsets[0] + 0x40_0000);
        assert_eq!(l.file_size, l.block_offsets[1] + 0x20_0000);
        let notes: Vec<_> = elf
            .iter_note_headers(&file)
            .unwrap()
            .map(|n| n.unwrap())
            .collect();
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].n_type, NT_PRSTATUS);
        assert_eq!(notes[0].name, "CORE");
        let desc = notes[0].desc;
        let rip = u64::from_le_bytes(
            desc[PRSTATUS_REG_OFFSET + 16 * 8..][..8]
                .try_into()
                .unwrap(),
        );
        assert_eq!(rip, 0xffff_ffff_8000_1000);
        let pid = i32::from_le_bytes(notes[1].desc[32..36].try_into().unwrap());
        assert_eq!(pid, 2);
    }

    #[test]
    fn headers_only_has_no_file_data() {
        let blocks = [Block {
            gpa: 0,
            size: 0x40_0000,
        }];
        let loads = [Load {
            vaddr: 0,
            gpa: 0,
            size: 0x40_0000,
        }];
        let l = layout(&blocks, &loads, &[], false).unwrap();
        let mut file = l.head.clone();
        file.resize(l.file_size as usize, 0);
        let elf = Elf::parse(&file).unwrap();
        assert_eq!(elf.program_headers[1].p_filesz, 0);
        assert_eq!(elf.program_headers[1].p_memsz, 0x40_0000);
        assert!(l.file_size <= 4096);
    }

    #[test]
    fn loads_outside_blocks_are_refused() {
        let blocks = [Block {
            gpa: 0,
            size: 0x1000,
        }];
        let loads = [Load {
            vaddr: 0,
            gpa: 0x800,
            size: 0x1000,
        }];
        assert!(layout(&blocks, &loads, &[], true).is_err());
    }

    #[test]
    fn runs_merge_smallest_gaps_first() {
        let runs = vec![
            (0, 0x1000),
            (0x1000, 0x3000),
            (0x4000, 0x5000),
            (0x10_0000, 0x10_1000),
        ];
        assert_eq!(
            merge_runs(runs.clone(), 10),
            vec![(0, 0x3000), (0x4000, 0x5000), (0x10_0000, 0x10_1000)]
        );
        assert_eq!(
            merge_runs(runs.clone(), 2),
            vec![(0, 0x5000), (0x10_0000, 0x10_1000)]
        );
        assert_eq!(merge_runs(runs, 1), vec![(0, 0x10_1000)]);
    }
}
