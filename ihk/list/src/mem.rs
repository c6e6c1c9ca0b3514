//! Memory lists: `(<size>[K|M|G|T] | ALL)[@<NUMA-id>][,...]`, or `all` alone
//! (specification §1.3.1.4, §1.3.1.6, §1.3.2.6).
//!
//! Sizes must be positive multiples of 4 MiB (§1.2.1.8). The NUMA node
//! defaults to 0; a bare `all` (no `@`) means "every node" to release and
//! assign, and "best effort on node 0" to reserve, so the node is kept as an
//! `Option` and the caller decides. Printed as IHK prints query results:
//! `<bytes>@<node>` joined by commas.

use std::fmt;

use crate::ListError;

/// Reservation granularity: every size is a multiple of 4 MiB.
pub const MEM_GRANULE: u64 = 4 << 20;

const EXPECTED: &str =
    "<size>[M|G|T][@<NUMA node>],... or ALL[@<NUMA node>], sizes multiples of 4M, e.g. 512M@0,1G@1";

/// The size part of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MemSize {
    /// Exactly this many bytes (a positive multiple of [`MEM_GRANULE`]).
    Bytes(u64),
    /// `ALL`/`all`: as much as possible (reserve) or everything (release, assign).
    All,
}

/// One element of a memory list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MemChunk {
    pub size: MemSize,
    /// `None` when the element had no `@<node>`.
    pub numa: Option<u32>,
}

impl MemChunk {
    pub fn bytes(size: u64, numa: u32) -> Self {
        MemChunk {
            size: MemSize::Bytes(size),
            numa: Some(numa),
        }
    }

    /// The node, with the specification's default of 0.
    pub fn node(&self) -> u32 {
        self.numa.unwrap_or(0)
    }
}

/// A parsed memory list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MemList(pub Vec<MemChunk>);

impl MemList {
    pub fn parse(input: &str) -> Result<Self, ListError> {
        let err = |problem: String| ListError {
            what: "memory list",
            input: input.to_string(),
            problem,
            expected: EXPECTED,
        };
        if input.trim().is_empty() {
            return Err(err("the list is empty".into()));
        }
        let mut chunks = Vec::new();
        for raw in input.split(',') {
            let token = raw.trim();
            if token.is_empty() {
                return Err(err("empty element between commas".into()));
            }
            let (size_s, numa_s) = match token.split_once('@') {
                Some((s, n)) => (s.trim(), Some(n.trim())),
                None => (token, None),
            };
            // The token is named unless it is the whole list, which the
            // message shows already.
            let in_token = |p: String| {
                if token == input.trim() {
                    p
                } else {
                    format!("'{token}': {p}")
                }
            };
            let size = parse_size(size_s).map_err(|p| err(in_token(p)))?;
            let numa = match numa_s {
                None => None,
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => Some(
                    n.parse::<u32>()
                        .map_err(|_| err(in_token(format!("NUMA node '{n}' is too large"))))?,
                ),
                Some(n) => {
                    return Err(err(in_token(format!("'{n}' is not a NUMA node number"))));
                }
            };
            chunks.push(MemChunk { size, numa });
        }
        Ok(MemList(chunks))
    }

    /// True for the single element `all` without a node: "everything".
    pub fn is_everything(&self) -> bool {
        self.0.len() == 1 && self.0[0].size == MemSize::All && self.0[0].numa.is_none()
    }

    pub fn chunks(&self) -> &[MemChunk] {
        &self.0
    }
}

fn parse_size(s: &str) -> Result<MemSize, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(MemSize::All);
    }
    if s.is_empty() {
        return Err("missing size".into());
    }
    let (digits, shift) = match s.as_bytes()[s.len() - 1].to_ascii_uppercase() {
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
    Ok(MemSize::Bytes(bytes))
}

/// A byte count the way a person reads it: the largest exact unit
/// (`512 MiB`, `2 GiB`, `4194304 B` stays exact).
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{} {}", bytes >> shift, unit);
        }
    }
    format!("{bytes} B")
}

impl fmt::Display for MemList {
    /// `<bytes>@<node>` per chunk, as IHK's query commands print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match c.size {
                MemSize::Bytes(b) => write!(f, "{b}")?,
                MemSize::All => f.write_str("all")?,
            }
            if let Some(n) = c.numa {
                write!(f, "@{n}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    #[test]
    fn parses_the_spec_examples() {
        let l = MemList::parse("512M@0,1G@1").unwrap();
        assert_eq!(
            l.0,
            vec![MemChunk::bytes(512 * M, 0), MemChunk::bytes(G, 1)]
        );
        let l = MemList::parse("2G@1").unwrap();
        assert_eq!(l.0[0].node(), 1);
        let l = MemList::parse("512M").unwrap();
        assert_eq!(
            l.0[0],
            MemChunk {
                size: MemSize::Bytes(512 * M),
                numa: None
            }
        );
        assert_eq!(l.0[0].node(), 0);
        assert_eq!(MemList::parse("ALL").unwrap().0[0].size, MemSize::All);
        assert!(MemList::parse("all").unwrap().is_everything());
        assert!(!MemList::parse("ALL@1").unwrap().is_everything());
        assert_eq!(
            MemList::parse("1T").unwrap().0[0].size,
            MemSize::Bytes(1 << 40)
        );
        assert_eq!(
            MemList::parse("536870912@0").unwrap().0[0],
            MemChunk::bytes(512 * M, 0)
        );
        assert_eq!(
            MemList::parse("4096k").unwrap().0[0].size,
            MemSize::Bytes(4 * M)
        );
    }

    #[test]
    fn errors_name_the_bad_token() {
        let e = MemList::parse("5M").unwrap_err();
        assert_eq!(e.problem, "5M is not a multiple of 4 MiB");
        let e = MemList::parse("1G@0,5M@1").unwrap_err();
        assert_eq!(e.problem, "'5M@1': 5M is not a multiple of 4 MiB");
        let e = MemList::parse("512M@x").unwrap_err();
        assert!(e.problem.contains("'x' is not a NUMA node"), "{e}");
        let e = MemList::parse("12Q@0").unwrap_err();
        assert!(e.problem.contains("'12Q' is not a size"), "{e}");
        let e = MemList::parse("0M").unwrap_err();
        assert!(e.problem.contains("zero"), "{e}");
        let e = MemList::parse("99999999999999T").unwrap_err();
        assert!(e.problem.contains("too large"), "{e}");
        assert!(MemList::parse("512M,").is_err());
        assert!(MemList::parse("@0").is_err());
        assert!(MemList::parse("512M@").is_err());
        assert!(MemList::parse("").is_err());
    }

    #[test]
    fn prints_like_ihk() {
        let l = MemList(vec![MemChunk::bytes(512 * M, 0), MemChunk::bytes(G, 1)]);
        assert_eq!(l.to_string(), "536870912@0,1073741824@1");
        assert_eq!(format_size(512 * M), "512 MiB");
        assert_eq!(format_size(2 * G), "2 GiB");
        assert_eq!(format_size(G + 4 * M), "1028 MiB");
    }

    proptest! {
        #[test]
        fn round_trips(chunks in proptest::collection::vec((1u64..100_000, 0u32..64), 1..10)) {
            let l = MemList(chunks.iter().map(|&(g, n)| MemChunk::bytes(g * MEM_GRANULE, n)).collect());
            prop_assert_eq!(MemList::parse(&l.to_string()).unwrap(), l);
        }
    }
}
