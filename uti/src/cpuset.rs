//! A set of CPUs named by their Linux (OS) index, and the CPU list syntax
//! (`0,2-5`) used by `UTI_CPU_SET`, sysfs and `taskset -c`.
//!
//! Placement logic works on this plain type rather than on hwloc bitmaps, so
//! it can be tested without a topology and its results printed and compared
//! as text.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::{BitAnd, BitOr, Sub};

/// Largest CPU index accepted from a CPU list (Linux `NR_CPUS` maximum).
pub const MAX_CPU: usize = 8191;

/// A finite set of CPU OS indexes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet(BTreeSet<usize>);

/// A CPU list that does not follow the `N`, `N-M`, `N,M-K` syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad CPU list {text:?}: {reason} (expected a list like \"0,2-5\")")]
pub struct CpuListError {
    /// The whole text that was parsed.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CpuSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the CPU list syntax: comma-separated CPU numbers and inclusive
    /// ranges `a-b`, white space around items ignored. An empty string is the
    /// empty set.
    pub fn parse(text: &str) -> Result<Self, CpuListError> {
        let err = |reason: String| CpuListError {
            text: text.to_string(),
            reason,
        };
        let mut set = BTreeSet::new();
        if text.trim().is_empty() {
            return Ok(Self(set));
        }
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(err("empty item".into()));
            }
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (parse_cpu(a.trim(), &err)?, parse_cpu(b.trim(), &err)?),
                None => {
                    let c = parse_cpu(item, &err)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(err(format!("range {item:?} runs backwards")));
            }
            set.extend(lo..=hi);
        }
        Ok(Self(set))
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.0.contains(&cpu)
    }

    /// Adds `cpu`.
    pub fn insert(&mut self, cpu: usize) {
        self.0.insert(cpu);
    }

    /// Removes `cpu`.
    pub fn remove(&mut self, cpu: usize) {
        self.0.remove(&cpu);
    }

    /// Number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Lowest CPU index, if any.
    pub fn first(&self) -> Option<usize> {
        self.0.first().copied()
    }

    /// Highest CPU index, if any.
    pub fn last(&self) -> Option<usize> {
        self.0.last().copied()
    }

    /// CPUs in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().copied()
    }

    /// Whether every CPU of `self` is in `other`.
    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The set as a Linux affinity mask: 64-bit words, bit `i % 64` of word
    /// `i / 64` for CPU `i`, at least `min_words` words long.
    pub fn to_mask_words(&self, min_words: usize) -> Vec<u64> {
        let words = self.last().map_or(0, |l| l / 64 + 1).max(min_words);
        let mut mask = vec![0u64; words];
        for cpu in self.iter() {
            mask[cpu / 64] |= 1u64 << (cpu % 64);
        }
        mask
    }

    /// The set of CPUs whose bits are set in an affinity mask.
    pub fn from_mask_words(mask: &[u64]) -> Self {
        let mut set = BTreeSet::new();
        for (w, word) in mask.iter().enumerate() {
            for b in 0..64 {
                if word & (1u64 << b) != 0 {
                    set.insert(w * 64 + b);
                }
            }
        }
        Self(set)
    }
}

fn parse_cpu(s: &str, err: &dyn Fn(String) -> CpuListError) -> Result<usize, CpuListError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("{s:?} is not a CPU number")));
    }
    match s.parse::<usize>() {
        Ok(c) if c <= MAX_CPU => Ok(c),
        _ => Err(err(format!("CPU {s} is above the maximum {MAX_CPU}"))),
    }
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl BitAnd for &CpuSet {
    type Output = CpuSet;
    fn bitand(self, rhs: &CpuSet) -> CpuSet {
        CpuSet(self.0.intersection(&rhs.0).copied().collect())
    }
}

impl BitOr for &CpuSet {
    type Output = CpuSet;
    fn bitor(self, rhs: &CpuSet) -> CpuSet {
        CpuSet(self.0.union(&rhs.0).copied().collect())
    }
}

impl Sub for &CpuSet {
    type Output = CpuSet;
    fn sub(self, rhs: &CpuSet) -> CpuSet {
        CpuSet(self.0.difference(&rhs.0).copied().collect())
    }
}

/// Formats as a CPU list with ranges, e.g. `0-3,8,10-11`; the empty set
/// prints as an empty string.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut it = self.0.iter().copied().peekable();
        while let Some(lo) = it.next() {
            let mut hi = lo;
            while it.peek() == Some(&(hi + 1)) {
                hi = it.next().unwrap_or(hi);
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

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ranges() {
        let s = CpuSet::parse("0,2-5, 9").unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 2, 3, 4, 5, 9]);
        assert_eq!(s.to_string(), "0,2-5,9");
        assert!(CpuSet::parse("").unwrap().is_empty());
        assert_eq!(CpuSet::parse("7").unwrap().to_string(), "7");
        assert_eq!(CpuSet::parse("3-3").unwrap().to_string(), "3");
    }

    #[test]
    fn rejects_bad_lists_naming_the_value() {
        for bad in [
            "1,,2", "a", "1-", "-1", "5-2", "1-2-3", "99999", "0x3", "1 2",
        ] {
            let e = CpuSet::parse(bad).unwrap_err();
            assert_eq!(e.text, bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn set_operations_and_masks() {
        let a = CpuSet::parse("0-7").unwrap();
        let b = CpuSet::parse("4-11").unwrap();
        assert_eq!((&a & &b).to_string(), "4-7");
        assert_eq!((&a | &b).to_string(), "0-11");
        assert_eq!((&a - &b).to_string(), "0-3");
        let m = CpuSet::parse("0,63,64,130").unwrap();
        let words = m.to_mask_words(16);
        assert_eq!(words.len(), 16);
        assert_eq!(words[0], 1 | (1 << 63));
        assert_eq!(words[1], 1);
        assert_eq!(words[2], 1 << 2);
        assert_eq!(CpuSet::from_mask_words(&words), m);
    }
}
