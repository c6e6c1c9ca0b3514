//! CPU lists: `<id>[,<id>|<first>-<last>...]` (specification §1.3.1.1).
//!
//! Order is kept as written, because the LWK numbers its CPUs in the order
//! they were assigned (§1.2.2.1); ranges must be ascending and no CPU may be
//! listed twice.

use std::collections::HashSet;
use std::fmt;

use crate::ListError;

/// The largest CPU id a list may name: Linux's largest `NR_CPUS` on x86-64
/// is 8192. The bound also keeps a range such as `0-4294967295` from
/// expanding to billions of ids.
pub const MAX_CPU_ID: u32 = 8191;

const EXPECTED: &str = "<id>,<id>,... or <first>-<last> in ascending order, e.g. 1,3-5";

/// A parsed CPU list, in the order it was written, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuList(Vec<u32>);

impl CpuList {
    /// A list from CPU ids; rejects duplicates.
    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> Result<Self, u32> {
        let mut out = Vec::new();
        for id in ids {
            if out.contains(&id) {
                return Err(id);
            }
            out.push(id);
        }
        Ok(CpuList(out))
    }

    /// Parse `1,3-5`. Surrounding blanks around tokens are ignored.
    pub fn parse(input: &str) -> Result<Self, ListError> {
        let err = |problem: String| ListError {
            what: "CPU list",
            input: input.to_string(),
            problem,
            expected: EXPECTED,
        };
        if input.trim().is_empty() {
            return Err(err("the list is empty".into()));
        }
        let mut ids: Vec<u32> = Vec::new();
        let mut seen: HashSet<u32> = HashSet::new();
        for raw in input.split(',') {
            let token = raw.trim();
            if token.is_empty() {
                return Err(err("empty element between commas".into()));
            }
            let (first, last) = match token.split_once('-') {
                Some((a, b)) => {
                    let a = parse_id(a.trim()).map_err(|p| err(format!("'{token}': {p}")))?;
                    let b = parse_id(b.trim()).map_err(|p| err(format!("'{token}': {p}")))?;
                    if a > b {
                        return Err(err(format!("range '{token}' is not ascending")));
                    }
                    (a, b)
                }
                None => {
                    // parse_id's message names the token already.
                    let a = parse_id(token).map_err(err)?;
                    (a, a)
                }
            };
            for id in first..=last {
                if !seen.insert(id) {
                    return Err(err(format!("CPU {id} is listed twice ('{token}')")));
                }
                ids.push(id);
            }
        }
        Ok(CpuList(ids))
    }

    /// The ids in list order.
    pub fn ids(&self) -> &[u32] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.0.contains(&id)
    }

    /// The ids in ascending order.
    pub fn sorted(&self) -> Vec<u32> {
        let mut v = self.0.clone();
        v.sort_unstable();
        v
    }
}

fn parse_id(s: &str) -> Result<u32, String> {
    if s.is_empty() {
        return Err("missing CPU id".into());
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a CPU id"));
    }
    match s.parse::<u32>() {
        Ok(id) if id <= MAX_CPU_ID => Ok(id),
        _ => Err(format!(
            "CPU id '{s}' is larger than the largest CPU id, {MAX_CPU_ID}"
        )),
    }
}

/// Print ids in the given order, folding ascending consecutive runs of two or
/// more into `a-b` (`1,3-5`).
pub fn format_cpus(ids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            out.push_str(&format!("{}-{}", start, ids[j]));
        } else {
            out.push_str(&start.to_string());
        }
        i = j + 1;
    }
    out
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_cpus(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_spec_examples() {
        assert_eq!(
            CpuList::parse("24-31").unwrap().ids(),
            (24..=31).collect::<Vec<_>>()
        );
        assert_eq!(CpuList::parse("1,3-5").unwrap().ids(), &[1, 3, 4, 5]);
        assert_eq!(CpuList::parse("2-8").unwrap().len(), 7);
        assert_eq!(CpuList::parse("0").unwrap().ids(), &[0]);
    }

    #[test]
    fn keeps_the_written_order() {
        assert_eq!(CpuList::parse("5,1-2").unwrap().ids(), &[5, 1, 2]);
        assert_eq!(CpuList::parse("5,1-2").unwrap().to_string(), "5,1-2");
    }

    #[test]
    fn errors_name_the_bad_token() {
        let e = CpuList::parse("1,a,3").unwrap_err();
        assert_eq!(e.problem, "'a' is not a CPU id");
        let e = CpuList::parse("1,2-b").unwrap_err();
        assert_eq!(e.problem, "'2-b': 'b' is not a CPU id");
        assert!(e.to_string().contains("expected"), "{e}");
        let e = CpuList::parse("5-3").unwrap_err();
        assert!(
            e.problem.contains("'5-3'") && e.problem.contains("ascending"),
            "{e}"
        );
        let e = CpuList::parse("1-").unwrap_err();
        assert!(e.problem.contains("'1-'"), "{e}");
        let e = CpuList::parse("1,,2").unwrap_err();
        assert!(e.problem.contains("empty"), "{e}");
        let e = CpuList::parse("1-3,2").unwrap_err();
        assert!(e.problem.contains("CPU 2 is listed twice"), "{e}");
        assert!(CpuList::parse("").is_err());
        assert!(CpuList::parse("-1").is_err());
        assert!(CpuList::parse("99999999999").is_err());
    }

    #[test]
    fn formats_runs() {
        assert_eq!(format_cpus(&[1, 3, 4, 5]), "1,3-5");
        assert_eq!(format_cpus(&[0, 1]), "0-1");
        assert_eq!(format_cpus(&[]), "");
        assert_eq!(format_cpus(&[7]), "7");
    }

    proptest! {
        #[test]
        fn round_trips(set in proptest::collection::btree_set(0u32..512, 1..40), rev in any::<bool>()) {
            let mut ids: Vec<u32> = set.into_iter().collect();
            if rev { ids.reverse(); }
            let list = CpuList::from_ids(ids.clone()).unwrap();
            let text = list.to_string();
            let back = CpuList::parse(&text).unwrap();
            prop_assert_eq!(back.ids(), &ids[..]);
        }
    }
}
