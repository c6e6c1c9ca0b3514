//! The LWK's view of /proc and /sys for its processes (ARCHITECTURE.md §6;
//! McKernel does this with mcoverlayfs): the files that describe CPUs, NUMA
//! nodes, memory and the process itself show the partition and the LWK
//! process; every other path is Linux's.
//!
//! [`lookup`] maps an absolute path to what the LWK shows there: synthesized
//! contents (served by the proxy as a memfd), the partition's subset of
//! Linux's /proc/cpuinfo, a path redirected to the Linux object behind an
//! LWK CPU or node (or to the program's file, `/proc/self/exe`), a path
//! that does not exist in the partition, a directory whose listing the LWK
//! rewrites ([`dir_entry`]: its CPUs, nodes and threads instead of
//! Linux's), or Linux's own file. Owns no state; reads the boot
//! parameters, the frame allocator and the process.

pub mod dirents;
mod procfs;
mod sysfs;

use alloc::string::String;
use alloc::vec::Vec;

use crate::process::Thread;

/// What the LWK shows at a path.
pub enum View {
    /// Linux's file, unchanged (offload the call as it is).
    Linux,
    /// A file with these contents.
    Content(Vec<u8>),
    /// The partition's /proc/cpuinfo (Linux's entries of these Linux CPUs).
    Cpuinfo(Vec<u32>),
    /// This Linux path instead.
    Redirect(String),
    /// Not there in the partition (ENOENT).
    Missing,
    /// Linux's directory, listed the LWK's way.
    Dir(DirKind),
    /// The `comm` file of this thread of the process (its name; a write
    /// renames it).
    Comm(u32),
}

/// The directories of the view whose listings the LWK rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DirKind {
    /// /sys/devices/system/cpu: `cpuN` for the LWK's CPUs.
    Cpus = 1,
    /// /sys/devices/system/node: `nodeN` for the LWK's NUMA nodes.
    Nodes = 2,
    /// /proc/<pid>/task of an LWK process: its threads.
    Tasks = 3,
}

impl DirKind {
    pub fn from_u8(v: u8) -> Option<DirKind> {
        [DirKind::Cpus, DirKind::Nodes, DirKind::Tasks].into_iter().find(|k| *k as u8 == v)
    }
}

/// What the LWK lists for an entry `name` of Linux's directory `kind`:
/// the name it shows (an LWK CPU or node number for Linux's), or `None`
/// to leave the entry out.
pub fn dir_entry(t: &Thread, kind: DirKind, name: &[u8]) -> Option<Vec<u8>> {
    let renumber = |prefix: &str, lwk: Option<u32>| lwk.map(|n| alloc::format!("{prefix}{n}").into_bytes());
    match kind {
        DirKind::Cpus => match dirents::numbered(name, b"cpu") {
            Some(linux) => renumber("cpu", cpus().iter().find(|c| c.1 == linux).map(|c| c.0)),
            None => Some(name.to_vec()),
        },
        DirKind::Nodes => match dirents::numbered(name, b"node") {
            Some(linux) => {
                let nodes = crate::boot_params::get().numa_nodes();
                renumber("node", nodes.iter().position(|n| n.linux_id == linux).map(|i| i as u32))
            }
            None => Some(name.to_vec()),
        },
        DirKind::Tasks => match core::str::from_utf8(name).ok().and_then(|s| s.parse::<u32>().ok()) {
            Some(tid) => t.process.thread(tid).map(|_| name.to_vec()),
            None => Some(name.to_vec()),
        },
    }
}

/// Collapse repeated and trailing slashes; `None` if `path` is relative or
/// has `.`/`..` components (those are left to Linux).
fn normalize(path: &[u8]) -> Option<String> {
    let s = core::str::from_utf8(path).ok()?;
    if !s.starts_with('/') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    for c in s.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return None;
        }
        out.push('/');
        out.push_str(c);
    }
    Some(out)
}

/// Whether a path can be in the view at all (cheap test before reading it).
pub fn may_be_viewed(prefix: &[u8]) -> bool {
    prefix.starts_with(b"/proc") || prefix.starts_with(b"/sys") || prefix.starts_with(b"//")
}

/// What thread `t`'s process sees at `path`.
pub fn lookup(t: &Thread, path: &[u8]) -> View {
    let Some(p) = normalize(path) else { return View::Linux };
    if let Some(rest) = p.strip_prefix("/proc/") {
        return procfs::lookup(t, rest);
    }
    if let Some(rest) = p.strip_prefix("/sys/devices/system/") {
        return sysfs::lookup(rest);
    }
    View::Linux
}

/// "0-3", "0,2-3": a CPU or node list as Linux prints it.
pub fn list(ids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j == i {
            out.push_str(&alloc::format!("{}", ids[i]));
        } else {
            out.push_str(&alloc::format!("{}-{}", ids[i], ids[j]));
        }
        i = j + 1;
    }
    out
}

/// A bitmap as Linux prints cpumasks: 32-bit hex words, comma separated,
/// most significant first.
pub fn mask(ids: &[u32], bits: u32) -> String {
    let words = bits.div_ceil(32).max(1);
    let mut out = String::new();
    for w in (0..words).rev() {
        let mut v = 0u32;
        for &i in ids {
            if i / 32 == w {
                v |= 1 << (i % 32);
            }
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&alloc::format!("{v:08x}"));
    }
    out
}

/// LWK CPU ids (0..n) and their Linux CPUs and LWK NUMA nodes.
pub fn cpus() -> Vec<(u32, u32, u32)> {
    crate::boot_params::get().cores().iter().enumerate().map(|(i, c)| (i as u32, c.linux_cpu, c.numa_id)).collect()
}
