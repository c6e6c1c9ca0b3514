//! The C API end to end: `tests/c/uti_test.c` is compiled against the
//! installed `uti.h` and `libuti.so`, run for every hint with the caller
//! pinned to different CPUs, and its threads' CPUs, affinity masks, computed
//! sets and scheduling policies are compared with what the hints imply —
//! on two synthetic topologies (2 NUMA x 2 L3 x 4 cores x SMT2, and a flat
//! 16-core machine), an XML topology with a fabric adapter, and this
//! machine (expectations from sysfs).
//!
//! On a synthetic or XML topology the threads cannot run on CPUs that do not
//! exist, so the library reports the computed set (`uti_self_cpuset`) and
//! leaves the affinity alone; on this machine the computed set must be the
//! thread's real affinity and its `sched_getcpu()` must lie inside it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

use uti::CpuSet;

fn set(s: &str) -> CpuSet {
    CpuSet::parse(s).unwrap()
}

/// The compiled test program.
fn program() -> &'static PathBuf {
    static BIN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BIN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("uti_test");
        let src = common::crate_dir().join("tests/c/uti_test.c");
        common::compile("cc", &[&src], &bin, &["-std=c11"]);
        (dir, bin)
    })
    .1
}

const TWO_SOCKET: &str = "pack:2 numa:1 l3:2 l2:4 l1:1 core:1 pu:2";
const FLAT16: &str = "core:16 pu:1";

fn fabric_xml() -> String {
    common::crate_dir()
        .join("tests/fixtures/fabric-2socket.xml")
        .display()
        .to_string()
}

/// Where the library takes the topology from, and what we know of it.
#[derive(Clone)]
struct Topo {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    model: Model,
}

/// Independent description of a topology: written out by hand for the
/// synthetic ones, read from sysfs for this machine.
#[derive(Clone, Debug)]
struct Model {
    real: bool,
    allowed: CpuSet,
    numa: Vec<(usize, CpuSet)>,
    l1: Vec<CpuSet>,
    l2: Vec<CpuSet>,
    l3: Vec<CpuSet>,
    cores: Vec<CpuSet>,
    fabric: Option<CpuSet>,
}

fn blocks(total: usize, size: usize) -> Vec<CpuSet> {
    (0..total / size)
        .map(|i| (i * size..(i + 1) * size).collect())
        .collect()
}

fn two_socket_model() -> Model {
    Model {
        real: false,
        allowed: set("0-31"),
        numa: vec![(0, set("0-15")), (1, set("16-31"))],
        l1: blocks(32, 2),
        l2: blocks(32, 2),
        l3: blocks(32, 8),
        cores: blocks(32, 2),
        fabric: None,
    }
}

fn topologies() -> Vec<Topo> {
    vec![
        Topo {
            name: "two-socket synthetic",
            env: vec![("UTI_TOPOLOGY_SYNTHETIC", TWO_SOCKET.into())],
            model: two_socket_model(),
        },
        Topo {
            name: "flat 16-core synthetic",
            env: vec![("UTI_TOPOLOGY_SYNTHETIC", FLAT16.into())],
            model: Model {
                real: false,
                allowed: set("0-15"),
                numa: vec![(0, set("0-15"))],
                l1: vec![],
                l2: vec![],
                l3: vec![],
                cores: blocks(16, 1),
                fabric: None,
            },
        },
        Topo {
            name: "two-socket XML with a fabric adapter (via HWLOC_XMLFILE)",
            env: vec![("HWLOC_XMLFILE", fabric_xml())],
            model: Model {
                fabric: Some(set("16-31")),
                ..two_socket_model()
            },
        },
        Topo {
            name: "this machine",
            env: vec![],
            model: this_machine(),
        },
    ]
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// This machine, from sysfs (not from hwloc).
fn this_machine() -> Model {
    let online = set(&read("/sys/devices/system/cpu/online").unwrap());
    // CPUs the cgroup allows (hwloc's "allowed" set), if cpusets are in use.
    let allowed = read("/proc/self/cgroup")
        .and_then(|c| {
            let path = c.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
            read(&format!("/sys/fs/cgroup{path}/cpuset.cpus.effective"))
        })
        .filter(|s| !s.is_empty())
        .map(|s| &set(&s) & &online)
        .unwrap_or_else(|| online.clone());
    let mut numa = Vec::new();
    for entry in std::fs::read_dir("/sys/devices/system/node")
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<usize>().ok())
        {
            numa.push((
                n,
                set(&read(&format!("{}/cpulist", entry.path().display())).unwrap()),
            ));
        }
    }
    numa.sort_by_key(|(n, _)| *n);
    let mut levels: [Vec<CpuSet>; 3] = Default::default();
    let mut cores = Vec::new();
    for cpu in online.iter() {
        let base = format!("/sys/devices/system/cpu/cpu{cpu}");
        let core = set(&read(&format!("{base}/topology/thread_siblings_list")).unwrap());
        if !cores.contains(&core) {
            cores.push(core);
        }
        for idx in 0.. {
            let dir = format!("{base}/cache/index{idx}");
            let Some(level) = read(&format!("{dir}/level")) else {
                break;
            };
            let ty = read(&format!("{dir}/type")).unwrap_or_default();
            if ty == "Instruction" {
                continue;
            }
            let level: usize = level.parse().unwrap();
            if (1..=3).contains(&level) {
                let shared = set(&read(&format!("{dir}/shared_cpu_list")).unwrap());
                if !levels[level - 1].contains(&shared) {
                    levels[level - 1].push(shared);
                }
            }
        }
    }
    let [l1, l2, l3] = levels;
    Model {
        real: true,
        allowed,
        numa,
        l1,
        l2,
        l3,
        cores,
        fabric: None,
    }
}

impl Model {
    fn domain(sets: &[CpuSet], c: usize) -> Option<&CpuSet> {
        sets.iter().find(|s| s.contains(c))
    }

    fn numa_of(&self, c: usize) -> CpuSet {
        self.numa
            .iter()
            .filter(|(_, s)| s.contains(c))
            .fold(CpuSet::new(), |a, (_, s)| &a | s)
    }

    /// Highest NUMA node, used for NUMA_SET.
    fn last_node(&self) -> (usize, CpuSet) {
        self.numa.last().cloned().unwrap()
    }

    /// CPUs one hint allows for a caller on `c` (empty: EINVAL expected).
    fn eligible(&self, hint: &str, c: usize) -> CpuSet {
        let a = &self.allowed;
        let cache = |sets: &[CpuSet], same: bool| match Model::domain(sets, c) {
            Some(d) if same => a & d,
            Some(d) => a - d,
            None => a.clone(), // level not described: hint skipped
        };
        match hint {
            "NUMA_SET" => a & &self.last_node().1,
            "SAME_NUMA_DOMAIN" => a & &self.numa_of(c),
            "DIFFERENT_NUMA_DOMAIN" => a - &self.numa_of(c),
            "SAME_L1" => cache(&self.l1, true),
            "SAME_L2" => cache(&self.l2, true),
            "SAME_L3" => cache(&self.l3, true),
            "DIFFERENT_L1" => cache(&self.l1, false),
            "DIFFERENT_L2" => cache(&self.l2, false),
            "DIFFERENT_L3" => cache(&self.l3, false),
            "FABRIC_INTR_AFFINITY" => self.fabric.as_ref().map_or_else(|| a.clone(), |f| a & f),
            _ => a.clone(),
        }
    }

    /// The CPUs successive least-used picks give: fewest threads first,
    /// then away from the caller's CPU, then away from its core, then the
    /// lowest number.
    fn least_used_sequence(&self, eligible: &CpuSet, c: usize, n: usize) -> Vec<usize> {
        let core = Model::domain(&self.cores, c).cloned().unwrap_or_default();
        let mut count = std::collections::BTreeMap::<usize, usize>::new();
        let mut picks = Vec::new();
        for _ in 0..n {
            let rank = |x: usize| {
                if x == c {
                    2
                } else {
                    u8::from(core.contains(x))
                }
            };
            let p = eligible
                .iter()
                .min_by_key(|&x| (count.get(&x).copied().unwrap_or(0), rank(x), x))
                .unwrap();
            *count.entry(p).or_default() += 1;
            picks.push(p);
        }
        picks
    }

    /// Callers to try: the first and the last allowed CPU that exists on
    /// this machine too (the caller really runs there).
    fn callers(&self) -> Vec<usize> {
        let real = set(&read("/sys/devices/system/cpu/online").unwrap());
        let both = &self.allowed & &real;
        let mut v = vec![both.first().unwrap()];
        if both.last() != both.first() {
            v.push(both.last().unwrap());
        }
        v
    }
}

#[derive(Debug)]
struct ThreadReport {
    cpu: usize,
    affinity: CpuSet,
    computed: Option<CpuSet>,
    policy: String,
}

#[derive(Debug)]
struct Report {
    caller_affinity: CpuSet,
    rc: i32,
    threads: Vec<ThreadReport>,
    attr_line: Option<String>,
    stderr: String,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn list(s: &str) -> CpuSet {
    if s == "none" {
        CpuSet::new()
    } else {
        set(s)
    }
}

fn parse_report(stdout: &str, stderr: String) -> Report {
    let mut r = Report {
        caller_affinity: CpuSet::new(),
        rc: -1,
        threads: vec![],
        attr_line: None,
        stderr,
    };
    for line in stdout.lines() {
        if line.starts_with("caller ") {
            r.caller_affinity = list(field(line, "affinity"));
        } else if line.starts_with("create ") {
            r.rc = field(line, "rc").parse().unwrap();
        } else if line.starts_with("thread ") {
            let computed = field(line, "computed");
            r.threads.push(ThreadReport {
                cpu: field(line, "cpu").parse().unwrap(),
                affinity: list(field(line, "affinity")),
                computed: (computed != "none").then(|| set(computed)),
                policy: field(line, "policy").to_string(),
            });
        } else if line.starts_with("attr ") {
            r.attr_line = Some(line.to_string());
        }
    }
    r
}

/// Runs the test program; each run gets its own usage table unless
/// `counter` names a shared one.
fn run(
    topo: &Topo,
    args: &[&str],
    env: &[(&str, &str)],
    counter: Option<&std::path::Path>,
) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("counter");
    let mut cmd = common::clean_command(program());
    cmd.args(args)
        .env("UTI_COUNTER_FILE", counter.unwrap_or(&own));
    for (k, v) in &topo.env {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = common::texts(&out);
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stdout}\n{stderr}",
        topo.name
    );
    parse_report(&stdout, stderr)
}

/// (program arguments, environment, expected thread sets or error text).
type Case<T> = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    T,
);

const HINTS: &[&str] = &[
    "NONE",
    "NUMA_SET",
    "SAME_NUMA_DOMAIN",
    "DIFFERENT_NUMA_DOMAIN",
    "SAME_L1",
    "SAME_L2",
    "SAME_L3",
    "DIFFERENT_L1",
    "DIFFERENT_L2",
    "DIFFERENT_L3",
    "EXCLUSIVE_CPU",
    "CPU_INTENSIVE",
    "HIGH_PRIORITY",
    "NON_COOPERATIVE",
    "PREFER_LWK",
    "PREFER_FWK",
    "FABRIC_INTR_AFFINITY",
];

/// Checks where the threads of one run landed against the expected sets.
fn check_threads(topo: &Topo, what: &str, r: &Report, expected: &[CpuSet]) {
    assert_eq!(
        r.rc, 0,
        "{}: {what}: uti_pthread_create failed: {}",
        topo.name, r.stderr
    );
    assert_eq!(r.threads.len(), expected.len(), "{}: {what}", topo.name);
    for (i, (t, want)) in r.threads.iter().zip(expected).enumerate() {
        let ctx = format!("{}: {what}: thread {i} {t:?}", topo.name);
        assert_eq!(t.computed.as_ref(), Some(want), "{ctx}: computed CPU set");
        if topo.model.real {
            assert_eq!(
                &t.affinity, want,
                "{ctx}: the computed set must be the thread's affinity"
            );
            assert!(
                want.contains(t.cpu),
                "{ctx}: sched_getcpu() outside its set"
            );
        } else {
            // Not this machine's topology: nothing may be applied.
            assert_eq!(
                t.affinity, r.caller_affinity,
                "{ctx}: affinity must be inherited"
            );
        }
    }
}

fn every_hint(topo: &Topo) {
    let m = &topo.model;
    let fifo = common::fifo_permitted();
    let node = m.last_node().0.to_string();
    for caller in m.callers() {
        let c = caller.to_string();
        for &hint in HINTS {
            let least = matches!(hint, "EXCLUSIVE_CPU" | "CPU_INTENSIVE");
            let n = if least { 3 } else { 1 };
            let n_s = n.to_string();
            let mut args = vec!["-c", &c, "-n", &n_s];
            if hint == "NUMA_SET" {
                args.extend(["-m", &node]);
            }
            args.push(hint);
            let r = run(topo, &args, &[], None);
            let eligible = m.eligible(hint, caller);
            let what = format!("{hint} with the caller on CPU {caller}");
            if eligible.is_empty() {
                assert_eq!(
                    r.rc,
                    libc::EINVAL,
                    "{}: {what}: expected EINVAL (no CPU left): {r:?}",
                    topo.name
                );
                assert!(
                    r.stderr.contains("no CPU satisfies"),
                    "{}: {what}: {}",
                    topo.name,
                    r.stderr
                );
                continue;
            }
            let expected: Vec<CpuSet> = if least {
                m.least_used_sequence(&eligible, caller, n)
                    .into_iter()
                    .map(|p| [p].into_iter().collect())
                    .collect()
            } else {
                vec![eligible.clone()]
            };
            check_threads(topo, &what, &r, &expected);
            let policy = if hint == "HIGH_PRIORITY" && fifo {
                "FIFO"
            } else {
                "OTHER"
            };
            for t in &r.threads {
                assert_eq!(t.policy, policy, "{}: {what}: scheduling policy", topo.name);
            }
            if hint == "EXCLUSIVE_CPU" && n > eligible.len() {
                assert!(
                    r.stderr.contains("EXCLUSIVE_CPU"),
                    "{}: {what}: no warning about sharing",
                    topo.name
                );
            }
        }
    }
}

#[test]
fn api_surface_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    let out = common::clean_command(program())
        .arg("--api")
        .env("UTI_COUNTER_FILE", &counter)
        .output()
        .unwrap();
    let (stdout, stderr) = common::texts(&out);
    assert!(
        out.status.success() && stdout.contains("api ok"),
        "{stdout}\n{stderr}"
    );
    // Built as a non-PIE executable the log-level variable is copied into
    // the executable (copy relocation); the library must use that copy.
    let bin = dir.path().join("uti_test_nopie");
    let src = common::crate_dir().join("tests/c/uti_test.c");
    common::compile("cc", &[&src], &bin, &["-std=c11", "-fno-pie", "-no-pie"]);
    let out = common::clean_command(&bin)
        .args(["-v", "NONE"])
        .env("UTI_COUNTER_FILE", &counter)
        .output()
        .unwrap();
    let (_, stderr) = common::texts(&out);
    assert!(out.status.success());
    assert!(
        stderr.contains("uti: debug:"),
        "uti_set_loglevel did not reach the library: {stderr}"
    );
    // The header is valid C++ too.
    let cpp = dir.path().join("t.cc");
    std::fs::write(&cpp, "#include <uti.h>\nint main() { uti_attr_t a; uti_attr_init(&a); return UTI_ATTR_SAME_L3(&a); }\n").unwrap();
    common::compile("g++", &[&cpp], &dir.path().join("t"), &[]);
}

#[test]
fn every_hint_on_two_socket_smt_synthetic() {
    every_hint(&topologies()[0]);
}

#[test]
fn every_hint_on_flat_16_core_synthetic() {
    every_hint(&topologies()[1]);
}

#[test]
fn every_hint_on_xml_topology_with_fabric() {
    every_hint(&topologies()[2]);
}

#[test]
fn every_hint_on_this_machine() {
    every_hint(&topologies()[3]);
}

#[test]
fn literal_placements_on_the_two_socket_topology() {
    let t = &topologies()[0];
    let cases: &[Case<&[&str]>] = &[
        (&["-c", "0", "DIFFERENT_L3"], &[], &["8-31"]),
        (&["-c", "1", "SAME_L3,DIFFERENT_L2"], &[], &["2-7"]),
        (
            &["-c", "0", "SAME_NUMA_DOMAIN"],
            &[("UTI_CPU_SET", "4-20")],
            &["4-15"],
        ),
        (
            &["-c", "0", "-n", "2", "DIFFERENT_NUMA_DOMAIN,EXCLUSIVE_CPU"],
            &[],
            &["16", "17"],
        ),
        (
            &["-c", "0", "-m", "0,1", "NUMA_SET,DIFFERENT_L1"],
            &[],
            &["2-31"],
        ),
        (
            &["-c", "0", "NONE"],
            &[("UTI_FWK_CPU_SET", "0-3"), ("UTI_LWK_CPU_SET", "4-31")],
            &["0-3"],
        ),
        (
            &["-c", "0", "PREFER_FWK"],
            &[("UTI_FWK_CPU_SET", "0-3"), ("UTI_LWK_CPU_SET", "4-31")],
            &["0-3"],
        ),
        (
            &["-c", "0", "PREFER_LWK"],
            &[("UTI_FWK_CPU_SET", "0-3"), ("UTI_LWK_CPU_SET", "4-31")],
            &["4-31"],
        ),
        // The preferred kind has no eligible CPU: the other kind is used.
        (
            &["-c", "0", "PREFER_FWK,DIFFERENT_L3"],
            &[("UTI_FWK_CPU_SET", "0-3"), ("UTI_LWK_CPU_SET", "4-31")],
            &["8-31"],
        ),
    ];
    for (args, env, want) in cases {
        let r = run(t, args, env, None);
        let want: Vec<CpuSet> = want.iter().map(|w| set(w)).collect();
        check_threads(t, &format!("{args:?} {env:?}"), &r, &want);
    }
}

#[test]
fn impossible_requests_are_einval() {
    let t = &topologies()[0];
    let cases: &[Case<&str>] = &[
        (
            &["SAME_NUMA_DOMAIN,DIFFERENT_NUMA_DOMAIN"],
            &[],
            "exclude each other",
        ),
        (&["SAME_L2,DIFFERENT_L2"], &[], "exclude each other"),
        (&["PREFER_LWK,PREFER_FWK"], &[], "exclude each other"),
        (&["SAME_L1,DIFFERENT_L2"], &[], "no CPU satisfies"),
        (&["-m", "5", "NUMA_SET"], &[], "no CPU satisfies"),
        (&["NONE"], &[("UTI_CPU_SET", "40-50")], "no CPU satisfies"),
        (&["NONE"], &[("UTI_CPU_SET", "0-x")], "\"0-x\""),
        (&["NONE"], &[("DISABLE_UTI", "sometimes")], "sometimes"),
        (
            &["NONE"],
            &[("UTI_FWK_CPU_SET", "0-3"), ("UTI_LWK_CPU_SET", "3-5")],
            "UTI_LWK_CPU_SET",
        ),
        (
            &["NONE"],
            &[("UTI_TOPOLOGY_SYNTHETIC", "pack:2 bogus:3")],
            "bogus:3",
        ),
        (
            &["NONE"],
            &[("UTI_TOPOLOGY_XML", "/nonexistent.xml")],
            "/nonexistent.xml",
        ),
    ];
    for (args, env, msg) in cases {
        let mut a = vec!["-c", "0"];
        a.extend_from_slice(args);
        let r = run(t, &a, env, None);
        assert_eq!(r.rc, libc::EINVAL, "{args:?} {env:?}: {r:?}");
        assert!(r.threads.is_empty());
        assert!(
            r.stderr.contains(msg),
            "{args:?} {env:?}: error should mention {msg:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn disable_uti_is_a_plain_pthread_create() {
    for t in [&topologies()[0], &topologies()[3]] {
        let r = run(
            t,
            &["-c", "1", "SAME_L1,EXCLUSIVE_CPU,HIGH_PRIORITY"],
            &[("DISABLE_UTI", "1")],
            None,
        );
        assert_eq!(r.rc, 0, "{r:?}");
        let th = &r.threads[0];
        assert_eq!(th.computed, None, "no placement under DISABLE_UTI");
        assert_eq!(
            th.affinity, r.caller_affinity,
            "the creator's affinity is inherited"
        );
        assert_eq!(th.policy, "OTHER");
    }
}

#[test]
fn caller_pthread_attr_is_honoured_and_restored() {
    let t = &topologies()[3];
    let last = t.model.allowed.last().unwrap().to_string();
    let r = run(t, &["-c", "0", "-A", &last, "HIGH_PRIORITY"], &[], None);
    check_threads(t, "attr affinity", &r, &[set(&last)]);
    let line = r.attr_line.expect("attr line");
    assert!(
        line.contains(&format!("affinity={last} ")),
        "attr affinity changed: {line}"
    );
    assert!(
        line.contains("inherit=INHERIT"),
        "attr scheduling changed: {line}"
    );
    // Hints that exclude the attr's CPUs: nothing left.
    if t.model.allowed.len() > 1 && t.model.l2.iter().all(|d| d.len() == 1) {
        let r = run(t, &["-c", "0", "-A", "0", "DIFFERENT_L2"], &[], None);
        assert_eq!(r.rc, libc::EINVAL, "{r:?}");
    }
}

#[test]
fn high_priority_falls_back_without_privilege() {
    if common::euid() != 0 {
        mck_tests::cannot_run("high_priority_falls_back_without_privilege", "needs root to drop CAP_SYS_NICE with setpriv");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = common::clean_command(std::path::Path::new("setpriv"))
        .args(["--inh-caps=-sys_nice", "--bounding-set=-sys_nice", "--"])
        .arg(program())
        .args(["-c", "0", "HIGH_PRIORITY"])
        .env("UTI_COUNTER_FILE", dir.path().join("c"))
        .output()
        .unwrap();
    let (stdout, stderr) = common::texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let r = parse_report(&stdout, stderr);
    assert_eq!(r.rc, 0, "{r:?}");
    assert_eq!(r.threads[0].policy, "OTHER");
    assert!(
        r.stderr.contains("SCHED_FIFO is not permitted"),
        "{}",
        r.stderr
    );
}

#[test]
fn log_level_from_environment() {
    let t = &topologies()[1];
    // SAME_L1 on a topology without caches logs a warning...
    let r = run(t, &["-c", "0", "SAME_L1"], &[], None);
    assert!(
        r.stderr.contains("uti: warning:") && !r.stderr.contains("uti: debug:"),
        "{}",
        r.stderr
    );
    // ...which level 0 silences, and level 2 adds the placement trail.
    let r = run(t, &["-c", "0", "SAME_L1"], &[("UTI_LOGLEVEL", "0")], None);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let r = run(t, &["-c", "0", "SAME_L1"], &[("UTI_LOGLEVEL", "2")], None);
    assert!(
        r.stderr.contains("uti: debug: placement for SAME_L1"),
        "{}",
        r.stderr
    );
    let r = run(t, &["-c", "0", "NONE"], &[("UTI_LOGLEVEL", "loud")], None);
    assert!(r.stderr.contains("UTI_LOGLEVEL=\"loud\""), "{}", r.stderr);
}

/// Starts the program holding its threads (`-w`), returns the child and
/// the report read up to "ready".
fn start_holding(
    topo: &Topo,
    args: &[&str],
    counter: &std::path::Path,
) -> (std::process::Child, Report) {
    let mut cmd = common::clean_command(program());
    cmd.arg("-w").args(args).env("UTI_COUNTER_FILE", counter);
    for (k, v) in &topo.env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "program ended early: {out}"
        );
        if line.trim() == "ready" {
            break;
        }
        out.push_str(&line);
    }
    (child, parse_report(&out, String::new()))
}

fn cpus_of(r: &Report) -> Vec<usize> {
    r.threads
        .iter()
        .map(|t| t.computed.as_ref().unwrap().first().unwrap())
        .collect()
}

#[test]
fn exclusive_cpus_are_counted_across_processes() {
    let t = &topologies()[0];
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    // A holds two exclusive threads on the caller's NUMA node.
    let (mut a, ra) = start_holding(
        t,
        &["-c", "0", "-n", "2", "SAME_NUMA_DOMAIN,EXCLUSIVE_CPU"],
        &counter,
    );
    assert_eq!(cpus_of(&ra), vec![2, 3]);
    // B, another process, sees them and goes elsewhere.
    let (mut b, rb) = start_holding(
        t,
        &["-c", "0", "-n", "2", "SAME_NUMA_DOMAIN,CPU_INTENSIVE"],
        &counter,
    );
    assert_eq!(cpus_of(&rb), vec![4, 5]);
    // A crashes without cleaning up: its entries stop counting.
    a.kill().unwrap();
    a.wait().unwrap();
    let r = run(
        t,
        &["-c", "0", "-n", "2", "SAME_NUMA_DOMAIN,EXCLUSIVE_CPU"],
        &[],
        Some(&counter),
    );
    assert_eq!(cpus_of(&r), vec![2, 3]);
    // B ends normally: its threads release their CPUs when they exit.
    b.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(b.wait().unwrap().success());
    let r = run(
        t,
        &["-c", "0", "-n", "4", "SAME_NUMA_DOMAIN,EXCLUSIVE_CPU"],
        &[],
        Some(&counter),
    );
    assert_eq!(cpus_of(&r), vec![2, 3, 4, 5]);
}

#[test]
fn exclusive_cpus_across_processes_on_this_machine() {
    let t = &topologies()[3];
    let allowed = &t.model.allowed;
    if allowed.len() < 2 {
        mck_tests::cannot_run("exclusive_cpus_across_processes_on_this_machine", "needs two allowed CPUs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    let c = allowed.first().unwrap().to_string();
    let (mut a, ra) = start_holding(t, &["-c", &c, "EXCLUSIVE_CPU"], &counter);
    let (mut b, rb) = start_holding(t, &["-c", &c, "EXCLUSIVE_CPU"], &counter);
    let (ca, cb) = (cpus_of(&ra)[0], cpus_of(&rb)[0]);
    assert_ne!(ca, cb, "two processes' exclusive threads share CPU {ca}");
    assert_ne!(
        ca.to_string(),
        c,
        "the first exclusive thread should avoid the caller's CPU"
    );
    for (r, cpu) in [(&ra, ca), (&rb, cb)] {
        assert_eq!(r.threads[0].affinity, [cpu].into_iter().collect());
        assert_eq!(r.threads[0].cpu, cpu, "thread is not running on its CPU");
    }
    for child in [&mut a, &mut b] {
        child.stdin.take().unwrap().write_all(b"\n").unwrap();
        assert!(child.wait().unwrap().success());
    }
}
