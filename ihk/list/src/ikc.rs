//! IKC maps: `<CPU list>:<Linux CPU>[+<CPU list>:<Linux CPU>...]`
//! (specification §1.3.2.4): the LWK CPUs of each list (named by their Linux
//! CPU ids) send IKC messages to the given Linux CPU.

use std::fmt;

use crate::{format_cpus, CpuList, ListError};

const EXPECTED: &str =
    "<LWK CPU list>:<Linux CPU>[+<LWK CPU list>:<Linux CPU>...], e.g. 1-3:0+5-7:4";

/// Pairs (LWK CPU, IKC destination Linux CPU), in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IkcMap(pub Vec<(u32, u32)>);

impl IkcMap {
    pub fn parse(input: &str) -> Result<Self, ListError> {
        let err = |problem: String| ListError {
            what: "IKC map",
            input: input.to_string(),
            problem,
            expected: EXPECTED,
        };
        if input.trim().is_empty() {
            return Err(err("the map is empty".into()));
        }
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for raw in input.split('+') {
            let part = raw.trim();
            let (list, dst) = part
                .split_once(':')
                .ok_or_else(|| err(format!("'{part}' has no ':<Linux CPU>'")))?;
            let srcs = CpuList::parse(list).map_err(|e| err(format!("'{part}': {}", e.problem)))?;
            let dst = dst.trim();
            if dst.is_empty() || !dst.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("'{part}': '{dst}' is not a Linux CPU id")));
            }
            let dst: u32 = dst
                .parse()
                .map_err(|_| err(format!("'{part}': CPU id '{dst}' is too large")))?;
            for &s in srcs.ids() {
                if !seen.insert(s) {
                    return Err(err(format!("LWK CPU {s} is mapped twice ('{part}')")));
                }
                pairs.push((s, dst));
            }
        }
        Ok(IkcMap(pairs))
    }

    /// The destination of one LWK CPU.
    pub fn dest_of(&self, lwk_cpu: u32) -> Option<u32> {
        self.0.iter().find(|&&(s, _)| s == lwk_cpu).map(|&(_, d)| d)
    }
}

impl fmt::Display for IkcMap {
    /// Grouped by destination in ascending order, sources in map order, as
    /// IHK prints `get ikc_map`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut dsts: Vec<u32> = self.0.iter().map(|&(_, d)| d).collect();
        dsts.sort_unstable();
        dsts.dedup();
        for (i, d) in dsts.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            let srcs: Vec<u32> = self
                .0
                .iter()
                .filter(|&&(_, x)| x == *d)
                .map(|&(s, _)| s)
                .collect();
            write!(f, "{}:{}", format_cpus(&srcs), d)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_spec_example() {
        let m = IkcMap::parse("1-3:0+5-7:4+9-11:8+13-15:12").unwrap();
        assert_eq!(m.0.len(), 12);
        assert_eq!(m.dest_of(2), Some(0));
        assert_eq!(m.dest_of(14), Some(12));
        assert_eq!(m.dest_of(4), None);
        assert_eq!(m.to_string(), "1-3:0+5-7:4+9-11:8+13-15:12");
    }

    #[test]
    fn errors_name_the_bad_token() {
        let e = IkcMap::parse("1-3").unwrap_err();
        assert!(e.problem.contains("'1-3' has no"), "{e}");
        let e = IkcMap::parse("1-3:x").unwrap_err();
        assert!(e.problem.contains("'x' is not a Linux CPU"), "{e}");
        let e = IkcMap::parse("1-3:0+3:4").unwrap_err();
        assert!(e.problem.contains("LWK CPU 3 is mapped twice"), "{e}");
        let e = IkcMap::parse("3-1:0").unwrap_err();
        assert!(e.problem.contains("ascending"), "{e}");
        assert!(IkcMap::parse("").is_err());
        assert!(IkcMap::parse("1:0+").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(srcs in proptest::collection::btree_set(0u32..256, 1..30), ndst in 1u32..5) {
            let pairs: Vec<(u32, u32)> = srcs.iter().map(|&s| (s, 1000 + s % ndst)).collect();
            let text = IkcMap(pairs.clone()).to_string();
            let mut back = IkcMap::parse(&text).unwrap().0;
            let mut want = pairs;
            back.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(back, want);
        }
    }
}
