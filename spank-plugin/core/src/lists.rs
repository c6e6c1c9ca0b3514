//! The three list syntaxes users type after `--mckernel*`, as IHK defines
//! them (ihk-specification.md §1.3.1.1 CPU lists, §1.3.1.4 memory lists,
//! mcreboot `-r` IKC maps).
//!
//! The plugin validates them itself, before anything runs, so that a bad
//! value fails `srun` at submission with a message naming the bad token;
//! `mcreboot` validates again when it runs. Both use the one parser of the
//! `ihk-list` crate (re-exported by `ihk` as `ihk::list`), a leaf crate
//! with no other IHK code, so the plugin loaded into Slurm's programs stays
//! small. What is the plugin's own is built on it: a CPU *set* for the
//! allocation arithmetic, a memory request that must give explicit sizes,
//! and sizes printed for messages.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ihk_list::{format_cpus, CpuList, MemSize};
pub use ihk_list::{IkcMap, ListError};

const MEM_EXPECTED: &str =
    "<size>[M|G|T][@<NUMA node>],... with sizes multiples of 4 MiB, e.g. 7G@4 or 2G@0,2G@1";

/// A set of Linux logical CPU ids: order does not matter, and set
/// operations give the allocation arithmetic (allocated minus Linux CPUs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// A CPU list (`1,3-5`), as IHK's parser accepts it.
    pub fn parse(input: &str) -> Result<Self, ListError> {
        CpuList::parse(input).map(|list| CpuSet::from_ids(list.ids().iter().copied()))
    }

    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> Self {
        CpuSet(ids.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.difference(&other.0).copied().collect())
    }

    /// Every LWK CPU an IKC map names.
    pub fn lwk_cpus_of(map: &IkcMap) -> CpuSet {
        CpuSet::from_ids(map.0.iter().map(|&(lwk, _)| lwk))
    }

    /// Every Linux CPU an IKC map sends messages to.
    pub fn linux_cpus_of(map: &IkcMap) -> CpuSet {
        CpuSet::from_ids(map.0.iter().map(|&(_, linux)| linux))
    }
}

impl fmt::Display for CpuSet {
    /// Compressed ranges, `0-3,8`: the format of `ihkconfig 0 query cpu`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_cpus(&self.0.iter().copied().collect::<Vec<_>>()))
    }
}

impl From<CpuSet> for String {
    fn from(set: CpuSet) -> String {
        set.to_string()
    }
}

impl TryFrom<String> for CpuSet {
    type Error = ListError;
    fn try_from(s: String) -> Result<Self, ListError> {
        if s.trim().is_empty() {
            return Ok(CpuSet::default());
        }
        CpuSet::parse(&s)
    }
}

/// A memory request `--mckernel=<size>[@<node>],...`: an IHK memory list
/// in which every element has an explicit size. Unlike `ihkconfig reserve
/// mem`, `ALL` is refused: a job asks for an explicit amount, which the
/// site limit can be checked against. The node defaults to 0 and is always
/// stored, so that two spellings of one request compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MemList(Vec<(u64, u32)>);

impl MemList {
    pub fn parse(input: &str) -> Result<Self, ListError> {
        let list = ihk_list::MemList::parse(input).map_err(|e| ListError {
            expected: MEM_EXPECTED,
            ..e
        })?;
        // The parser accepted every comma-separated token, one chunk each.
        let tokens = input.split(',').map(str::trim);
        let mut chunks = Vec::new();
        for (chunk, token) in list.chunks().iter().zip(tokens) {
            match chunk.size {
                MemSize::Bytes(bytes) => chunks.push((bytes, chunk.node())),
                MemSize::All => {
                    return Err(ListError {
                        what: "memory list",
                        input: input.to_string(),
                        problem: format!(
                            "'{token}': ALL is not accepted for a job; give an explicit size"
                        ),
                        expected: MEM_EXPECTED,
                    })
                }
            }
        }
        Ok(MemList(chunks))
    }

    /// Requested bytes per NUMA node (several chunks on one node add up).
    /// Sums saturate: sizes that add up past 2^64 bytes stay above every
    /// limit instead of wrapping to a small number.
    pub fn per_node(&self) -> BTreeMap<u32, u64> {
        let mut map = BTreeMap::new();
        for &(bytes, node) in &self.0 {
            let sum = map.entry(node).or_insert(0u64);
            *sum = sum.saturating_add(bytes);
        }
        map
    }

    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, &(bytes, _)| sum.saturating_add(bytes))
    }
}

impl fmt::Display for MemList {
    /// `512M@0,2G@1`: the largest exact unit, always with the node, which
    /// `mcreboot -m` accepts and users recognise from their option.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(bytes, node)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}@{node}", format_size_short(bytes))?;
        }
        Ok(())
    }
}

impl From<MemList> for String {
    fn from(list: MemList) -> String {
        list.to_string()
    }
}

impl TryFrom<String> for MemList {
    type Error = ListError;
    fn try_from(s: String) -> Result<Self, ListError> {
        MemList::parse(&s)
    }
}

/// `512M`, `2G`, `1T`: the form `mcreboot -m` accepts.
fn format_size_short(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{}", bytes >> shift, unit);
        }
    }
    bytes.to_string()
}

/// `512 MiB`, or `6.7 GiB` for an amount that is not a whole MiB (such as
/// a node's MemTotal): for messages.
pub fn format_size(bytes: u64) -> String {
    if bytes % (1 << 20) == 0 {
        return ihk_list::format_size(bytes);
    }
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB")] {
        if bytes >= 1 << shift {
            return format!("{:.1} {unit}", bytes as f64 / (1u64 << shift) as f64);
        }
    }
    ihk_list::format_size(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let s = CpuSet::parse("0,2-4, 7").unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 2, 3, 4, 7]);
        assert_eq!(s.to_string(), "0,2-4,7");
        assert_eq!(CpuSet::parse("3").unwrap().to_string(), "3");
        // Written order does not matter to a set.
        assert_eq!(CpuSet::parse("7,0-1").unwrap().to_string(), "0-1,7");
        let e = CpuSet::parse("4-2").unwrap_err();
        assert!(e.to_string().contains("'4-2' is not ascending"), "{e}");
        assert!(CpuSet::parse("1,,2").is_err());
        assert!(CpuSet::parse("a")
            .unwrap_err()
            .to_string()
            .contains("'a' is not a CPU id"));
        let e = CpuSet::parse("1-3,2").unwrap_err();
        assert!(e.to_string().contains("CPU 2 is listed twice"), "{e}");
        assert!(CpuSet::parse("").is_err());
        assert_eq!(CpuSet::try_from(String::new()).unwrap(), CpuSet::default());
    }

    #[test]
    fn memory_lists() {
        let m = MemList::parse("7G@4").unwrap();
        assert_eq!(m.per_node(), BTreeMap::from([(4, 7 << 30)]));
        let m = MemList::parse("2G@0, 2048M@1,512m").unwrap();
        assert_eq!(m.to_string(), "2G@0,2G@1,512M@0");
        assert_eq!(m.per_node()[&0], (2 << 30) + (512 << 20));
        assert_eq!(m.total(), (4u64 << 30) + (512 << 20));
        assert_eq!(
            MemList::parse("512M").unwrap(),
            MemList::parse("512M@0").unwrap()
        );
        let e = MemList::parse("5M").unwrap_err().to_string();
        assert!(e.contains("5M is not a multiple of 4 MiB"), "{e}");
        assert!(e.contains("'5M'"), "{e}");
        // The job's grammar, without ALL, is what the user is told.
        assert!(e.contains("(expected <size>[M|G|T][@<NUMA node>]"), "{e}");
        assert!(!e.contains("ALL"), "{e}");
        let e = MemList::parse("1G@0, ALL@1").unwrap_err().to_string();
        assert!(e.contains("'ALL@1': ALL is not accepted for a job"), "{e}");
        assert!(MemList::parse("all").is_err());
        assert!(MemList::parse("1G@x")
            .unwrap_err()
            .to_string()
            .contains("'x' is not a NUMA"));
        assert!(MemList::parse("0M")
            .unwrap_err()
            .to_string()
            .contains("zero"));
        assert!(MemList::parse("1Q").is_err());
        assert!(MemList::parse("99999999999T")
            .unwrap_err()
            .to_string()
            .contains("too large"));
        // Plain bytes work when they are a multiple of 4 MiB.
        assert_eq!(MemList::parse("4194304").unwrap().to_string(), "4M@0");
    }

    #[test]
    fn memory_lists_serialize_as_text() {
        let m = MemList::parse("2048M@1").unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"2G@1\"");
        assert_eq!(serde_json::from_str::<MemList>(&json).unwrap(), m);
        assert!(serde_json::from_str::<MemList>("\"ALL\"").is_err());
    }

    #[test]
    fn ikc_maps() {
        let m = IkcMap::parse("1-3:0+5-7:4").unwrap();
        assert_eq!(m.to_string(), "1-3:0+5-7:4");
        assert_eq!(CpuSet::lwk_cpus_of(&m).to_string(), "1-3,5-7");
        assert_eq!(CpuSet::linux_cpus_of(&m).to_string(), "0,4");
        assert!(IkcMap::parse("1-3")
            .unwrap_err()
            .to_string()
            .contains("no ':<Linux CPU>'"));
        assert!(IkcMap::parse("1:x").is_err());
    }

    #[test]
    fn sizes_print() {
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(3 << 30), "3 GiB");
        assert_eq!(format_size(7039180 << 10), "6.7 GiB");
        assert_eq!(format_size(4 << 10), "4 KiB");
        assert_eq!(format_size_short(1 << 40), "1T");
        assert_eq!(format_size_short(512 << 20), "512M");
    }
}
