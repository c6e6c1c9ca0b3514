//! `mcexec`: the proxy process of an LWK program (ARCHITECTURE.md §5).
//!
//! Owns: the mcexec command line, attaching to an OS instance through
//! ihkd's `os_attach` request, the unified address space on the host side
//! (reserving the LWK user range and mirroring the LWK's mappings), the
//! proxy threads that execute offloaded system calls with their raw
//! arguments, forwarding signals to the LWK process, and ending with its
//! status.
//!
//! Must not: touch the VM or KVM (ihkd owns them), decide which calls are
//! offloaded (the LWK's syscall table does), or let an offloaded call change
//! mcexec's own memory map, signal handling, threads or descriptors.

pub mod affinity;
pub mod attach;
pub mod avx;
pub mod cli;
pub mod exec;
pub mod filekeep;
pub mod guest;
pub mod lwkfs;
pub mod mirror;
pub mod program;
pub mod proxy;
pub mod rank;
pub mod session;
pub mod share;
pub mod sigfd;
pub mod uti;
