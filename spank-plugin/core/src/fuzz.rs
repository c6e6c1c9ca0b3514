//! Fuzz harness of what a user or a site administrator types (issue 20,
//! item 5): the `--mckernel*` option values, which the plugin parses inside
//! srun and slurmstepd, and the site configuration file, which srun,
//! slurmstepd and the epilogue read. Any input must give a value or a
//! message, never a panic (a panic in a SPANK plugin takes slurmstepd with
//! it), and what parses must print back to the same value.

use std::path::Path;

use proptest::prelude::*;

use crate::config::{config_path_from_args, SiteConfig};
use crate::lists::MemList;
use crate::options::{CpuRequest, JobOptions, OptionId};

/// Option values in the shape of the grammars (sizes with units and
/// nodes, CPU ranges, map parts) joined by their separators, some stray
/// characters among them; and any text.
fn option_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        4 => (0u32..64).prop_map(|n| n.to_string()),
        2 => "[0-9]{1,12}",
        1 => Just("16777215".to_string()),
        1 => Just("4294967295".to_string()),
    ];
    let element = prop_oneof![
        number.clone(),
        (number.clone(), number.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
        (number.clone(), "[KMGTkmgt]?", 0u32..4).prop_map(|(a, u, n)| format!("{a}{u}@{n}")),
        (number, "[KMGT]").prop_map(|(a, u)| format!("{a}{u}")),
        // Sizes near the largest a u64 holds (2^64 - 2^40 is 16777215T).
        ((1u64 << 23)..(1 << 24), 0u32..2).prop_map(|(t, n)| format!("{t}T@{n}")),
        "(ALL|all)(@[0-9])?",
        "[a-z=_\t\n -]",
    ];
    let sep = prop_oneof![Just(","), Just("+"), Just(":"), Just("@"), Just(" "), Just("")];
    prop_oneof![
        4 => prop::collection::vec((element, sep), 1..6)
            .prop_map(|p| p.into_iter().map(|(e, s)| format!("{e}{s}")).collect::<String>()),
        1 => any::<String>(),
    ]
}

/// Valid memory lists: sizes of every magnitude (up to the largest a u64
/// holds, 2^64 - 2^40 = 16777215T) on a few nodes.
fn memory_list() -> impl Strategy<Value = String> {
    let size = prop_oneof![
        (1u64..4096).prop_map(|m| format!("{}M", m * 4)),
        (1u64..4096).prop_map(|g| format!("{g}G")),
        ((1u64 << 23)..(1 << 24)).prop_map(|t| format!("{t}T")),
    ];
    prop::collection::vec((size, 0u32..3), 1..4).prop_map(|c| {
        c.iter().map(|(s, n)| format!("{s}@{n}")).collect::<Vec<_>>().join(",")
    })
}

/// The keys of the site file, with values of every TOML type.
fn site_file() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "prefix", "mcreboot", "mcstop_release", "ihkconfig", "ihkosctl", "mcexec", "runtime_dir",
        "state_dir", "isolation", "linux_cpus", "max_memory_fraction", "require_exclusive",
        "release", "kargs", "boot_timeout_secs", "shutdown_timeout_secs", "kill_grace_secs",
        "lock_timeout_secs", "daemon_cgroup", "shared_host", "sys_root", "no_such_key",
    ]);
    let value = prop_oneof![
        "\"[ -~]{0,16}\"",
        "\"/[a-z%/]{0,12}\"",
        Just("\"0-4294967295\"".to_string()),
        "\"(evict|pin|job|step|0|1,1|0-3)\"",
        "-?[0-9]{1,20}",
        "-?[0-9]{1,3}\\.[0-9]{1,3}(e[0-9]{1,3})?",
        "(true|false|nan|inf|-inf)",
        "\\[[0-9, ]{0,8}\\]",
        "\\{[a-z =0-9]{0,8}\\}",
        "[ -~]{0,8}",
    ];
    let line = prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        "\\[[a-z.]{0,8}\\]",
        "[ -~]{0,30}",
    ];
    prop::collection::vec(line, 0..8).prop_map(|l| l.join("\n"))
}

fn check_option(id: OptionId, value: &str) {
    let mut o = JobOptions::default();
    if o.set(id, value).is_err() {
        return;
    }
    let _ = o.check_consistent();
    if let Some(m) = &o.mem {
        let _ = (m.per_node(), m.total());
        assert_eq!(&MemList::parse(&m.to_string()).unwrap(), m, "--mckernel={value}");
    }
    if let Some(CpuRequest::List(set)) = &o.cpus {
        assert!(!set.is_empty());
    }
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(3000))]

    #[test]
    fn option_values(id in prop::sample::select(vec![
        OptionId::Mem, OptionId::Cpus, OptionId::IkcMap, OptionId::Kargs,
    ]), value in prop_oneof![option_text(), memory_list()]) {
        check_option(id, &value);
    }

    #[test]
    fn plugstack_arguments(args in prop::collection::vec(option_text(), 0..4)) {
        let _ = config_path_from_args(args.iter().map(String::as_str));
    }
}

proptest! {
    #![proptest_config(mck_tests::fuzz::config(1500))]

    #[test]
    fn site_files(text in prop_oneof![site_file(), any::<String>()], node in option_text()) {
        if let Ok(c) = SiteConfig::parse(&text, Path::new("fuzz.toml")) {
            assert!(c.max_memory_fraction > 0.0 && c.max_memory_fraction <= 1.0);
            assert!(c.runtime_dir.is_absolute() && c.state_dir.is_absolute());
            let _ = c.tools();
            let _ = c.sys_path(&node);
            if let Ok(n) = c.for_node(Some(&node)) {
                assert!(!n.runtime_dir.to_string_lossy().contains("%n") || node.contains("%n"));
            }
        }
    }
}

/// Inputs the harness found, kept as regression tests.
mod found {
    use super::*;

    /// Two sizes on one node that add up past 2^64 overflowed the per-node
    /// sum (a panic in a debug build, a small wrapped total that passes the
    /// site's memory limit in a release build).
    #[test]
    fn memory_totals_do_not_wrap() {
        let m = MemList::parse("16777215T@0,16777215T@0").unwrap();
        assert_eq!(m.total(), u64::MAX);
        assert_eq!(m.per_node()[&0], u64::MAX);
        check_option(OptionId::Mem, "16777215T@0,16777215T@0,4M@1");
    }

    /// A CPU range as large as a u32 allows (see ihk-list's fuzz harness).
    #[test]
    fn huge_cpu_ranges_are_refused() {
        assert!(CpuRequest::parse("0-4294967295").is_err());
        assert!(JobOptions::default().set(OptionId::IkcMap, "1-4294967295:0").is_err());
    }
}
