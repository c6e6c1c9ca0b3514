//! CPU sets of processes and threads (LWK CPU ids, as in the boot
//! parameters' core list): the share of the partition a process may use
//! (`mcexec -n`, or the whole partition), and each thread's affinity inside
//! it (`sched_setaffinity`). Pure logic, no hardware access.

use ihk_abi::boot_params::MAX_CPUS;

const WORDS: usize = MAX_CPUS / 64;

/// A set of LWK CPUs, as a bitmap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CpuSet([u64; WORDS]);

impl CpuSet {
    pub const fn empty() -> CpuSet {
        CpuSet([0; WORDS])
    }

    /// CPUs `first .. first + count` (clipped to `MAX_CPUS`).
    pub fn range(first: u32, count: u32) -> CpuSet {
        let mut s = CpuSet::empty();
        for c in first..first.saturating_add(count).min(MAX_CPUS as u32) {
            s.insert(c);
        }
        s
    }

    pub fn insert(&mut self, cpu: u32) {
        if (cpu as usize) < MAX_CPUS {
            self.0[cpu as usize / 64] |= 1 << (cpu % 64);
        }
    }

    pub fn contains(&self, cpu: u32) -> bool {
        (cpu as usize) < MAX_CPUS && self.0[cpu as usize / 64] & (1 << (cpu % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    #[allow(dead_code)] // the host tests count
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub fn intersect(&self, other: &CpuSet) -> CpuSet {
        let mut r = *self;
        for (a, b) in r.0.iter_mut().zip(other.0.iter()) {
            *a &= *b;
        }
        r
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..MAX_CPUS as u32).filter(move |&c| self.contains(c))
    }

    /// A user `cpu_set_t` of `bytes.len()` bytes (bits past `MAX_CPUS`
    /// ignored).
    pub fn from_bytes(bytes: &[u8]) -> CpuSet {
        let mut s = CpuSet::empty();
        for (i, &b) in bytes.iter().enumerate().take(MAX_CPUS / 8) {
            for bit in 0..8 {
                if b & (1 << bit) != 0 {
                    s.insert((i * 8 + bit) as u32);
                }
            }
        }
        s
    }

    /// The first `len` bytes of the bitmap (as `sched_getaffinity` writes).
    pub fn to_bytes(&self, len: usize) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec![0u8; len];
        for c in self.iter() {
            if (c as usize / 8) < len {
                v[c as usize / 8] |= 1 << (c % 8);
            }
        }
        v
    }

    /// Linux's list syntax: "0-3,8,10-11".
    pub fn to_list(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut out = alloc::string::String::new();
        let mut it = self.iter().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end = it.next().unwrap();
            }
            if !out.is_empty() {
                out.push(',');
            }
            if start == end {
                let _ = write!(out, "{start}");
            } else {
                let _ = write!(out, "{start}-{end}");
            }
        }
        out
    }

    /// Linux's mask syntax of `/proc/<pid>/status` for `ncpus` CPUs:
    /// 32-bit hex words, most significant first, comma separated.
    pub fn to_mask(&self, ncpus: u32) -> alloc::string::String {
        use core::fmt::Write;
        let words = ncpus.div_ceil(32).max(1);
        let mut out = alloc::string::String::new();
        for w in (0..words).rev() {
            let mut v = 0u32;
            for b in 0..32 {
                if self.contains(w * 32 + b) {
                    v |= 1 << b;
                }
            }
            if !out.is_empty() {
                out.push(',');
            }
            let _ = write!(out, "{v:08x}");
        }
        out
    }
}
