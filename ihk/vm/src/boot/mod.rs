//! Loading and entering the LWK (specification chapter 2, ARCHITECTURE §4):
//! the ELF image (`elf`), the initial page tables (`page_tables`), the GDT
//! (`gdt`), the boot parameters (`params`) and the long-mode register state
//! every vCPU starts with (`regs`). Each part is a pure function over byte
//! buffers or plain structs, unit-tested without KVM.

pub mod elf;
pub mod gdt;
pub mod page_tables;
pub mod params;
pub mod regs;
