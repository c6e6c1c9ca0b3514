//! `uti_attr_t`: the hint bitmap and NUMA node mask a caller hands to
//! `uti_pthread_create`, with the C layout and flag values of the original
//! libuti (so binaries built against either header work with either
//! library), and the check for hints that contradict each other.

use crate::error::Error;

/// Maximum number of NUMA domains a `uti_attr_t` can name
/// (`UTI_MAX_NUMA_DOMAINS`).
pub const MAX_NUMA_DOMAINS: usize = 1024;
/// Number of 64-bit words of the NUMA mask.
pub const NUMA_WORDS: usize = MAX_NUMA_DOMAINS.div_ceil(64);

/// Hint flags, bit for bit as `UTI_FLAG_*` in `uti.h`.
pub mod flags {
    /// A NUMA node mask was given (`UTI_ATTR_NUMA_SET`).
    pub const NUMA_SET: u64 = 1 << 1;
    /// Same NUMA domain as the caller.
    pub const SAME_NUMA_DOMAIN: u64 = 1 << 2;
    /// A NUMA domain other than the caller's.
    pub const DIFFERENT_NUMA_DOMAIN: u64 = 1 << 3;
    /// Share the caller's L1 cache.
    pub const SAME_L1: u64 = 1 << 4;
    /// Share the caller's L2 cache.
    pub const SAME_L2: u64 = 1 << 5;
    /// Share the caller's L3 cache.
    pub const SAME_L3: u64 = 1 << 6;
    /// Do not share the caller's L1 cache.
    pub const DIFFERENT_L1: u64 = 1 << 7;
    /// Do not share the caller's L2 cache.
    pub const DIFFERENT_L2: u64 = 1 << 8;
    /// Do not share the caller's L3 cache.
    pub const DIFFERENT_L3: u64 = 1 << 9;
    /// Wants a CPU of its own: the least-used eligible CPU.
    pub const EXCLUSIVE_CPU: u64 = 1 << 10;
    /// Busy thread: the least-used eligible CPU.
    pub const CPU_INTENSIVE: u64 = 1 << 11;
    /// Real-time priority (SCHED_FIFO) where permitted.
    pub const HIGH_PRIORITY: u64 = 1 << 12;
    /// Does not yield cooperatively (no placement effect on Linux).
    pub const NON_COOPERATIVE: u64 = 1 << 13;
    /// Prefer LWK CPUs.
    pub const PREFER_LWK: u64 = 1 << 14;
    /// Prefer FWK (Linux) CPUs.
    pub const PREFER_FWK: u64 = 1 << 15;
    /// Near the CPUs that take the fabric adapter's interrupts.
    pub const FABRIC_INTR_AFFINITY: u64 = 1 << 16;
    /// Every defined flag.
    pub const ALL: u64 = NUMA_SET
        | SAME_NUMA_DOMAIN
        | DIFFERENT_NUMA_DOMAIN
        | SAME_L1
        | SAME_L2
        | SAME_L3
        | DIFFERENT_L1
        | DIFFERENT_L2
        | DIFFERENT_L3
        | EXCLUSIVE_CPU
        | CPU_INTENSIVE
        | HIGH_PRIORITY
        | NON_COOPERATIVE
        | PREFER_LWK
        | PREFER_FWK
        | FABRIC_INTR_AFFINITY;

    /// Flag names, for messages.
    pub const NAMES: &[(u64, &str)] = &[
        (NUMA_SET, "NUMA_SET"),
        (SAME_NUMA_DOMAIN, "SAME_NUMA_DOMAIN"),
        (DIFFERENT_NUMA_DOMAIN, "DIFFERENT_NUMA_DOMAIN"),
        (SAME_L1, "SAME_L1"),
        (SAME_L2, "SAME_L2"),
        (SAME_L3, "SAME_L3"),
        (DIFFERENT_L1, "DIFFERENT_L1"),
        (DIFFERENT_L2, "DIFFERENT_L2"),
        (DIFFERENT_L3, "DIFFERENT_L3"),
        (EXCLUSIVE_CPU, "EXCLUSIVE_CPU"),
        (CPU_INTENSIVE, "CPU_INTENSIVE"),
        (HIGH_PRIORITY, "HIGH_PRIORITY"),
        (NON_COOPERATIVE, "NON_COOPERATIVE"),
        (PREFER_LWK, "PREFER_LWK"),
        (PREFER_FWK, "PREFER_FWK"),
        (FABRIC_INTR_AFFINITY, "FABRIC_INTR_AFFINITY"),
    ];
}

/// Pairs of hints that cannot both hold for any CPU.
const CONFLICTS: &[(u64, u64)] = &[
    (flags::SAME_NUMA_DOMAIN, flags::DIFFERENT_NUMA_DOMAIN),
    (flags::SAME_L1, flags::DIFFERENT_L1),
    (flags::SAME_L2, flags::DIFFERENT_L2),
    (flags::SAME_L3, flags::DIFFERENT_L3),
    (flags::PREFER_LWK, flags::PREFER_FWK),
];

/// `uti_attr_t`: 1024-bit NUMA node mask followed by the flag word
/// (136 bytes, 8-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// NUMA node mask, bit `n % 64` of word `n / 64` for node `n`.
    pub numa_set: [u64; NUMA_WORDS],
    /// `UTI_FLAG_*` bits.
    pub flags: u64,
}

impl Default for Attr {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Attr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<usize> = self.numa_nodes().collect();
        f.debug_struct("Attr")
            .field("hints", &describe_flags(self.flags))
            .field("numa_nodes", &nodes)
            .finish()
    }
}

/// `A|B|C` names of the flags set in `bits` (unknown bits in hex).
pub fn describe_flags(bits: u64) -> String {
    let mut parts: Vec<String> = flags::NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let unknown = bits & !flags::ALL;
    if unknown != 0 {
        parts.push(format!("{unknown:#x}"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("|")
    }
}

impl Attr {
    /// No hints (what `uti_attr_init` produces).
    pub const fn new() -> Self {
        Self {
            numa_set: [0; NUMA_WORDS],
            flags: 0,
        }
    }

    /// Sets a hint flag (one of [`flags`]); returns `self` for chaining.
    pub fn with(mut self, flag: u64) -> Self {
        self.flags |= flag;
        self
    }

    /// Restricts the thread to the given NUMA nodes (`UTI_ATTR_NUMA_SET`).
    pub fn numa_set(mut self, nodes: &[usize]) -> Result<Self, Error> {
        let mut mask = [0u64; NUMA_WORDS];
        for &n in nodes {
            if n >= MAX_NUMA_DOMAINS {
                return Err(Error::InvalidAttr(format!(
                    "NUMA node {n} is out of range (0-{})",
                    MAX_NUMA_DOMAINS - 1
                )));
            }
            mask[n / 64] |= 1 << (n % 64);
        }
        self.numa_set = mask;
        self.flags |= flags::NUMA_SET;
        Ok(self)
    }

    /// NUMA nodes of the mask, in increasing order.
    pub fn numa_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_NUMA_DOMAINS).filter(|n| self.numa_set[n / 64] & (1 << (n % 64)) != 0)
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u64) -> bool {
        self.flags & flag != 0
    }

    /// Rejects unknown flag bits and contradictory hints.
    pub fn validate(&self) -> Result<(), Error> {
        let unknown = self.flags & !flags::ALL;
        if unknown != 0 {
            return Err(Error::InvalidAttr(format!(
                "unknown hint bits {unknown:#x} in uti_attr_t flags {:#x} (was it initialized with uti_attr_init?)",
                self.flags
            )));
        }
        for &(a, b) in CONFLICTS {
            if self.has(a) && self.has(b) {
                return Err(Error::InvalidAttr(format!(
                    "hints {} and {} exclude each other",
                    describe_flags(a),
                    describe_flags(b)
                )));
            }
        }
        if self.has(flags::NUMA_SET) && self.numa_nodes().next().is_none() {
            return Err(Error::InvalidAttr("NUMA_SET names no NUMA node".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_c_struct() {
        assert_eq!(std::mem::size_of::<Attr>(), 136);
        assert_eq!(std::mem::align_of::<Attr>(), 8);
        assert_eq!(std::mem::offset_of!(Attr, flags), 128);
    }

    #[test]
    fn conflicting_hints_are_rejected() {
        for &(a, b) in CONFLICTS {
            let e = Attr::new().with(a).with(b).validate().unwrap_err();
            assert_eq!(e.errno(), libc::EINVAL);
            assert!(e.to_string().contains(&describe_flags(a)), "{e}");
        }
        assert!(Attr::new()
            .with(flags::SAME_L1)
            .with(flags::DIFFERENT_L2)
            .validate()
            .is_ok());
        assert!(Attr::new().with(1 << 40).validate().is_err());
        assert!(Attr::new().with(1).validate().is_err());
    }

    #[test]
    fn numa_set_builds_the_mask() {
        let a = Attr::new().numa_set(&[1, 65, 1023]).unwrap();
        assert_eq!(a.numa_set[0], 2);
        assert_eq!(a.numa_set[1], 2);
        assert_eq!(a.numa_set[15], 1 << 63);
        assert_eq!(a.numa_nodes().collect::<Vec<_>>(), vec![1, 65, 1023]);
        assert!(a.validate().is_ok());
        assert!(Attr::new().numa_set(&[1024]).is_err());
        assert!(Attr::new().numa_set(&[]).unwrap().validate().is_err());
    }
}
