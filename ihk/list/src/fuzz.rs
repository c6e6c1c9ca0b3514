//! Fuzz harness of the three list parsers (issue 20, item 5): random and
//! near-valid strings must give a value or a [`crate::ListError`], never a
//! panic or a parse that does not end, and whatever parses must print back
//! to text that parses to the same value. Arguments come from users
//! (`ihkconfig`, `mcreboot -c/-m/-r`) and from `srun --mckernel*`, where the
//! parser runs inside Slurm's own processes.

use proptest::prelude::*;

use crate::{format_cpus, CpuList, IkcMap, MemList};

/// A number of any length, small ones most often.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u32..64).prop_map(|n| n.to_string()),
        2 => "[0-9]{1,12}",
        1 => Just("4294967295".to_string()),
        1 => Just("18446744073709551616".to_string()),
    ]
}

/// Strings in the shape of the three grammars (numbers, ranges, sizes with
/// units, nodes, map parts) joined by their separators, with some stray
/// characters, so that every combination of valid and invalid parts occurs.
fn near_valid() -> impl Strategy<Value = String> {
    let element = prop_oneof![
        number(),
        (number(), number()).prop_map(|(a, b)| format!("{a}-{b}")),
        (number(), "[KMGTkmgt]?", number()).prop_map(|(a, u, n)| format!("{a}{u}@{n}")),
        (number(), "[KMGT]").prop_map(|(a, u)| format!("{a}{u}")),
        "(ALL|all|All)(@[0-9])?",
        "[a-z\t -]",
    ];
    let sep = prop_oneof![Just(","), Just("+"), Just(":"), Just("@"), Just(" , "), Just("")];
    prop::collection::vec((element, sep), 0..8)
        .prop_map(|parts| parts.into_iter().map(|(e, s)| format!("{e}{s}")).collect())
}

/// Anything, including non-ASCII text.
fn any_text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn check_cpu(s: &str) {
    if let Ok(l) = CpuList::parse(s) {
        let back = CpuList::parse(&l.to_string()).expect("a printed CPU list parses");
        assert_eq!(back, l, "'{s}' printed as '{l}'");
        assert_eq!(format_cpus(l.ids()), l.to_string());
    }
}

fn check_mem(s: &str) {
    if let Ok(l) = MemList::parse(s) {
        let back = MemList::parse(&l.to_string()).expect("a printed memory list parses");
        assert_eq!(back, l, "'{s}' printed as '{l}'");
    }
}

fn check_ikc(s: &str) {
    if let Ok(m) = IkcMap::parse(s) {
        let mut back = IkcMap::parse(&m.to_string()).expect("a printed IKC map parses").0;
        let mut want = m.0.clone();
        back.sort_unstable();
        want.sort_unstable();
        assert_eq!(back, want, "'{s}' printed as '{m}'");
    }
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(3000))]

    #[test]
    fn cpu_lists(s in prop_oneof![near_valid(), any_text()]) {
        check_cpu(&s);
    }

    #[test]
    fn memory_lists(s in prop_oneof![near_valid(), any_text()]) {
        check_mem(&s);
    }

    #[test]
    fn ikc_maps(s in prop_oneof![near_valid(), any_text()]) {
        check_ikc(&s);
    }
}

/// Inputs the harness found, kept as regression tests.
mod found {
    use super::*;

    /// A range up to the largest u32 made the parser build a list of four
    /// billion ids, checking each against all before (hours, then out of
    /// memory), in `ihkconfig` and inside srun/slurmd for `--mckernel-cpus`.
    #[test]
    fn huge_ranges_are_refused_at_once() {
        for s in ["0-4294967295", "1-99999999", "0-8192", "1,3-70000"] {
            let e = CpuList::parse(s).unwrap_err();
            assert!(e.problem.contains("largest"), "{s}: {e}");
            assert!(IkcMap::parse(&format!("{s}:0")).is_err());
        }
        assert_eq!(CpuList::parse("0-8191").unwrap().len(), 8192);
    }
}
