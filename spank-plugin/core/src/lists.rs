//! The three list syntaxes users type after `--mckernel*`, as IHK defines
//! them (ihk-specification.md §1.3.1.1 CPU lists, §1.3.1.4 memory lists,
//! mcreboot `-r` IKC maps).
//!
//! The plugin validates them itself, before anything runs, so that a bad
//! value fails `srun` at submission with a message naming the bad token;
//! `mcreboot` validates again when it runs. The plugin does not link the
//! `ihk` crate's parsers on purpose: it is loaded into Slurm's programs and
//! must stay small and independent of the host-side daemon code.

use std::collections::BTreeSet;
use std::fmt;

/// IHK reserves memory in 4 MiB units (ihk-specification.md §1.2.1.8).
pub const MEM_GRANULE: u64 = 4 << 20;

/// A value that does not parse: names the input, the problem and the syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{input}': {problem} (expected {expected})")]
pub struct ListError {
    pub what: &'static str,
    pub input: String,
    pub problem: String,
    pub expected: &'static str,
}

const CPU_EXPECTED: &str = "CPU ids and ascending ranges, e.g. 1,3-5";
const MEM_EXPECTED: &str =
    "<size>[M|G|T][@<NUMA node>],... with sizes multiples of 4 MiB, e.g. 7G@4 or 2G@0,2G@1";
const IKC_EXPECTED: &str = "<LWK CPU list>:<Linux CPU>+..., e.g. 1-3:0+5-7:4";

/// A set of Linux logical CPU ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    pub fn parse(input: &str) -> Result<Self, ListError> {
        Self::parse_as("CPU list", input)
    }

    fn parse_as(what: &'static str, input: &str) -> Result<Self, ListError> {
        let err = |problem: String| ListError {
            what,
            input: input.to_string(),
            problem,
            expected: CPU_EXPECTED,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err("the list is empty".into()));
        }
        let mut set = BTreeSet::new();
        for token in trimmed.split(',') {
            let token = token.trim();
            if token.is_empty() {
                return Err(err("empty element between commas".into()));
            }
            let (lo, hi) = match token.split_once('-') {
                Some((a, b)) => (parse_id(a).map_err(&err)?, parse_id(b).map_err(&err)?),
                None => {
                    let id = parse_id(token).map_err(&err)?;
                    (id, id)
                }
            };
            if lo > hi {
                return Err(err(format!("range '{token}' is not ascending")));
            }
            set.extend(lo..=hi);
        }
        Ok(CpuSet(set))
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
}

fn parse_id(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a CPU id"));
    }
    s.parse().map_err(|_| format!("CPU id '{s}' is too large"))
}

impl fmt::Display for CpuSet {
    /// Compressed ranges, `0-3,8`: the format of `ihkconfig 0 query cpu`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut iter = self.0.iter().copied().peekable();
        while let Some(lo) = iter.next() {
            let mut hi = lo;
            while iter.peek() == Some(&(hi + 1)) {
                hi = iter.next().unwrap_or(hi);
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
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

/// One `<size>@<node>` element of a memory request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MemChunk {
    pub bytes: u64,
    pub numa: u32,
}

/// A memory request `--mckernel=<size>[@<node>],...`. Unlike `ihkconfig
/// reserve mem`, `ALL` is refused: a job asks for an explicit amount, which
/// the site limit can be checked against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MemList(pub Vec<MemChunk>);

impl MemList {
    pub fn parse(input: &str) -> Result<Self, ListError> {
        let err = |problem: String| ListError {
            what: "memory list",
            input: input.to_string(),
            problem,
            expected: MEM_EXPECTED,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err("the list is empty".into()));
        }
        let mut chunks = Vec::new();
        for token in trimmed.split(',') {
            let token = token.trim();
            if token.is_empty() {
                return Err(err("empty element between commas".into()));
            }
            let (size_s, numa_s) = match token.split_once('@') {
                Some((s, n)) => (s.trim(), Some(n.trim())),
                None => (token, None),
            };
            let in_token = |p: String| {
                if token == trimmed {
                    p
                } else {
                    format!("'{token}': {p}")
                }
            };
            let bytes = parse_size(size_s).map_err(|p| err(in_token(p)))?;
            let numa = match numa_s {
                None => 0,
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
                    .parse::<u32>()
                    .map_err(|_| err(in_token(format!("NUMA node '{n}' is too large"))))?,
                Some(n) => return Err(err(in_token(format!("'{n}' is not a NUMA node number")))),
            };
            chunks.push(MemChunk { bytes, numa });
        }
        Ok(MemList(chunks))
    }

    pub fn chunks(&self) -> &[MemChunk] {
        &self.0
    }

    /// Requested bytes per NUMA node (several chunks on one node add up).
    pub fn per_node(&self) -> std::collections::BTreeMap<u32, u64> {
        let mut map = std::collections::BTreeMap::new();
        for c in &self.0 {
            *map.entry(c.numa).or_insert(0u64) += c.bytes;
        }
        map
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.bytes).sum()
    }
}

impl fmt::Display for MemList {
    /// `512M@0,2G@1`: the largest exact unit, always with the node, so
    /// that two spellings of one request compare equal and the result is
    /// accepted by `mcreboot -m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}@{}", format_size_short(c.bytes), c.numa)?;
        }
        Ok(())
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    if s.eq_ignore_ascii_case("all") {
        return Err("ALL is not accepted for a job; give an explicit size".into());
    }
    if s.is_empty() {
        return Err("missing size".into());
    }
    let last = s.as_bytes()[s.len() - 1].to_ascii_uppercase();
    let (digits, shift) = match last {
        b'K' => (&s[..s.len() - 1], 10),
        b'M' => (&s[..s.len() - 1], 20),
        b'G' => (&s[..s.len() - 1], 30),
        b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a size"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size '{s}' is too large"))?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size '{s}' is too large"))?;
    if bytes == 0 {
        return Err(format!("size '{s}' is zero"));
    }
    if bytes % MEM_GRANULE != 0 {
        return Err(format!("{s} is not a multiple of 4 MiB"));
    }
    Ok(bytes)
}

/// `512M`, `2G`, `1T`: the form `mcreboot -m` accepts.
pub fn format_size_short(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{}", bytes >> shift, unit);
        }
    }
    bytes.to_string()
}

/// `512 MiB`: for messages.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{} {}", bytes >> shift, unit);
        }
    }
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB")] {
        if bytes >= 1 << shift {
            return format!("{:.1} {unit}", bytes as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{bytes} B")
}

/// An IKC map: which Linux CPU serves the IKC messages of which LWK CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IkcMap(pub Vec<(CpuSet, u32)>);

impl IkcMap {
    pub fn parse(input: &str) -> Result<Self, ListError> {
        let err = |problem: String| ListError {
            what: "IKC map",
            input: input.to_string(),
            problem,
            expected: IKC_EXPECTED,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err("the map is empty".into()));
        }
        let mut entries = Vec::new();
        for part in trimmed.split('+') {
            let part = part.trim();
            let Some((lwk, linux)) = part.split_once(':') else {
                return Err(err(format!("'{part}' has no ':<Linux CPU>'")));
            };
            let lwk = CpuSet::parse(lwk).map_err(|e| err(format!("'{part}': {}", e.problem)))?;
            let linux = parse_id(linux).map_err(|p| err(format!("'{part}': {p}")))?;
            entries.push((lwk, linux));
        }
        Ok(IkcMap(entries))
    }

    /// Every LWK CPU the map names.
    pub fn lwk_cpus(&self) -> CpuSet {
        CpuSet::from_ids(
            self.0
                .iter()
                .flat_map(|(s, _)| s.iter().collect::<Vec<_>>()),
        )
    }

    /// Every Linux CPU the map names.
    pub fn linux_cpus(&self) -> CpuSet {
        CpuSet::from_ids(self.0.iter().map(|(_, c)| *c))
    }
}

impl fmt::Display for IkcMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (set, cpu)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{set}:{cpu}")?;
        }
        Ok(())
    }
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
        let e = CpuSet::parse("4-2").unwrap_err();
        assert!(e.to_string().contains("'4-2' is not ascending"), "{e}");
        assert!(CpuSet::parse("1,,2").is_err());
        assert!(CpuSet::parse("a")
            .unwrap_err()
            .to_string()
            .contains("'a' is not a CPU id"));
        assert!(CpuSet::parse("").is_err());
        assert_eq!(CpuSet::try_from(String::new()).unwrap(), CpuSet::default());
    }

    #[test]
    fn memory_lists() {
        let m = MemList::parse("7G@4").unwrap();
        assert_eq!(
            m.chunks(),
            &[MemChunk {
                bytes: 7 << 30,
                numa: 4
            }]
        );
        let m = MemList::parse("2G@0, 2048M@1,512m").unwrap();
        assert_eq!(m.to_string(), "2G@0,2G@1,512M@0");
        assert_eq!(m.per_node()[&0], (2 << 30) + (512 << 20));
        assert_eq!(m.total(), (4u64 << 30) + (512 << 20));
        let e = MemList::parse("5M").unwrap_err().to_string();
        assert!(e.contains("5M is not a multiple of 4 MiB"), "{e}");
        assert!(e.contains("'5M'"), "{e}");
        assert!(MemList::parse("ALL")
            .unwrap_err()
            .to_string()
            .contains("ALL is not accepted"));
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
    fn ikc_maps() {
        let m = IkcMap::parse("1-3:0+5-7:4").unwrap();
        assert_eq!(m.to_string(), "1-3:0+5-7:4");
        assert_eq!(m.lwk_cpus().to_string(), "1-3,5-7");
        assert_eq!(m.linux_cpus().to_string(), "0,4");
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
        assert_eq!(format_size_short(1 << 40), "1T");
    }
}
