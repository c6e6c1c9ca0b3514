//! Which CPUs a utility thread may run on: a pure function of the hints, the
//! machine snapshot, the caller's CPU and the environment. Choosing one CPU
//! for EXCLUSIVE_CPU / CPU_INTENSIVE needs the node-wide usage counts and is
//! done by [`crate::context`] with [`pick_least_used`].
//!
//! Order of narrowing, starting from the process's allowed CPUs:
//! NUMA_SET, SAME/DIFFERENT_NUMA_DOMAIN, SAME/DIFFERENT_L1/L2/L3 (relative to
//! the caller's CPU), `UTI_CPU_SET`, FABRIC_INTR_AFFINITY, then the kernel
//! preference: FWK CPUs (`UTI_FWK_CPU_SET`, all CPUs on plain Linux) unless
//! PREFER_LWK asks for the LWK CPUs (`UTI_LWK_CPU_SET`, none on plain
//! Linux). A preference falls back to the other kind with a log line when
//! the preferred kind has no eligible CPU. Hard hints never fall back: if
//! nothing is left the result is [`Error::NoCpu`] (EINVAL), naming each
//! step.
//!
//! A cache level the topology does not describe (no L3 on the machine, or a
//! synthetic topology without caches) cannot be honoured; such a hint is
//! skipped with a warning, as in the original libuti.
//! NON_COOPERATIVE and HIGH_PRIORITY do not change the CPU set.

use crate::attr::{describe_flags, flags, Attr};
use crate::cpuset::CpuSet;
use crate::env::Env;
use crate::error::Error;
use crate::log;
use crate::machine::{Machine, Sharing};

/// Which kind of CPU the thread was placed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// A CPU of the full-weight kernel (Linux).
    Fwk,
    /// A CPU of the lightweight kernel.
    Lwk,
}

/// The CPUs a thread may be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligible {
    /// Eligible CPUs (never empty).
    pub cpus: CpuSet,
    /// Which kind of CPU they are.
    pub kernel: Kernel,
}

/// Whether the hints ask for a single least-used CPU.
pub fn wants_least_used(attr: &Attr) -> bool {
    attr.has(flags::EXCLUSIVE_CPU | flags::CPU_INTENSIVE)
}

/// Records each narrowing step for the error message and debug log.
struct Trail {
    steps: Vec<String>,
}

impl Trail {
    fn push(&mut self, what: impl Into<String>, set: &CpuSet) {
        self.steps.push(format!("{} -> {{{}}}", what.into(), set));
    }
    fn text(&self) -> String {
        self.steps.join("; ")
    }
}

/// Computes the eligible CPUs. `caller_cpu` is the CPU the calling thread
/// runs on (needed only for the SAME/DIFFERENT hints).
pub fn eligible(
    machine: &Machine,
    attr: &Attr,
    caller_cpu: Option<usize>,
    env: &Env,
) -> Result<Eligible, Error> {
    attr.validate()?;
    let mut trail = Trail { steps: Vec::new() };
    let mut set = machine.allowed.clone();
    trail.push("allowed CPUs", &set);
    let no_cpu = |trail: &Trail| {
        Error::NoCpu(format!(
            "hints {} leave no CPU ({})",
            describe_flags(attr.flags),
            trail.text()
        ))
    };

    if attr.has(flags::NUMA_SET) {
        let nodes: Vec<usize> = attr.numa_nodes().collect();
        let mut near = CpuSet::new();
        for n in &nodes {
            if let Some(cpus) = machine.numa.get(n) {
                near = &near | cpus;
            }
        }
        set = &set & &near;
        trail.push(format!("NUMA_SET {nodes:?}"), &set);
    }

    let relative = flags::SAME_NUMA_DOMAIN
        | flags::DIFFERENT_NUMA_DOMAIN
        | flags::SAME_L1
        | flags::SAME_L2
        | flags::SAME_L3
        | flags::DIFFERENT_L1
        | flags::DIFFERENT_L2
        | flags::DIFFERENT_L3;
    if attr.has(relative) {
        let caller = match caller_cpu {
            Some(c) if machine.complete.contains(c) => c,
            Some(c) => {
                return Err(Error::InvalidAttr(format!(
                    "hints {} are relative to the caller's CPU, but CPU {c} is not in the topology ({}: CPUs {})",
                    describe_flags(attr.flags & relative),
                    machine.source,
                    machine.complete
                )))
            }
            None => {
                return Err(Error::InvalidAttr(format!(
                    "hints {} are relative to the caller's CPU, which is unknown",
                    describe_flags(attr.flags & relative)
                )))
            }
        };
        if attr.has(flags::SAME_NUMA_DOMAIN | flags::DIFFERENT_NUMA_DOMAIN) {
            let local = machine.numa_of(caller);
            if attr.has(flags::SAME_NUMA_DOMAIN) {
                set = &set & &local;
                trail.push(format!("SAME_NUMA_DOMAIN as CPU {caller}"), &set);
            } else {
                set = &set - &local;
                trail.push(format!("DIFFERENT_NUMA_DOMAIN from CPU {caller}"), &set);
            }
        }
        let caches = [
            (Sharing::L1, flags::SAME_L1, flags::DIFFERENT_L1, "L1"),
            (Sharing::L2, flags::SAME_L2, flags::DIFFERENT_L2, "L2"),
            (Sharing::L3, flags::SAME_L3, flags::DIFFERENT_L3, "L3"),
        ];
        for (level, same, different, name) in caches {
            if !attr.has(same | different) {
                continue;
            }
            match machine.domain_of(level, caller) {
                Some(dom) if attr.has(same) => {
                    set = &set & dom;
                    trail.push(format!("SAME_{name} as CPU {caller}"), &set);
                }
                Some(dom) => {
                    set = &set - dom;
                    trail.push(format!("DIFFERENT_{name} from CPU {caller}"), &set);
                }
                None => log::warning!(
                    "the topology ({}) has no {name} cache for CPU {caller}; ignoring {}",
                    machine.source,
                    describe_flags(attr.flags & (same | different))
                ),
            }
        }
    }

    if let Some(env_set) = &env.cpu_set {
        set = &set & env_set;
        trail.push(format!("UTI_CPU_SET={env_set}"), &set);
    }

    if attr.has(flags::FABRIC_INTR_AFFINITY) {
        if machine.fabrics.is_empty() {
            log::warning!(
                "FABRIC_INTR_AFFINITY: no fabric adapter in the topology ({}); hint ignored",
                machine.source
            );
        } else {
            let near = machine
                .fabrics
                .iter()
                .fold(CpuSet::new(), |acc, f| &acc | &f.cpus);
            set = &set & &near;
            let names: Vec<&str> = machine.fabrics.iter().map(|f| f.name.as_str()).collect();
            trail.push(
                format!("FABRIC_INTR_AFFINITY near {}", names.join(",")),
                &set,
            );
        }
    }

    if set.is_empty() {
        return Err(no_cpu(&trail));
    }

    // Kernel preference.
    let fwk = env
        .fwk_cpus
        .clone()
        .unwrap_or_else(|| machine.complete.clone());
    let lwk = env.lwk_cpus.clone().unwrap_or_default();
    let overlap = &fwk & &lwk;
    if !overlap.is_empty() {
        return Err(Error::BadEnv {
            var: crate::env::UTI_LWK_CPU_SET,
            value: lwk.to_string(),
            expected: format!("CPUs disjoint from UTI_FWK_CPU_SET={fwk} (both name {overlap})"),
        });
    }
    let prefer_lwk = attr.has(flags::PREFER_LWK);
    let (first, second) = if prefer_lwk {
        ((Kernel::Lwk, &lwk), (Kernel::Fwk, &fwk))
    } else {
        ((Kernel::Fwk, &fwk), (Kernel::Lwk, &lwk))
    };
    let preferred = &set & first.1;
    let result = if !preferred.is_empty() {
        trail.push(format!("{:?} CPUs", first.0), &preferred);
        Eligible {
            cpus: preferred,
            kernel: first.0,
        }
    } else {
        let other = &set & second.1;
        trail.push(format!("{:?} CPUs", first.0), &preferred);
        if other.is_empty() {
            return Err(no_cpu(&trail));
        }
        let msg = format!(
            "no eligible {:?} CPU; placing the thread on {:?} CPUs {{{other}}}",
            first.0, second.0
        );
        if first.1.is_empty() {
            // e.g. PREFER_LWK on plain Linux, where there are no LWK CPUs.
            log::debug!("{msg}");
        } else {
            log::warning!("{msg}");
        }
        trail.push(format!("{:?} CPUs (fallback)", second.0), &other);
        Eligible {
            cpus: other,
            kernel: second.0,
        }
    };
    log::debug!(
        "placement for {}: {}",
        describe_flags(attr.flags),
        trail.text()
    );
    Ok(result)
}

/// Tie-break for equally used CPUs: away from the caller's CPU first, then
/// away from its core, then the lowest index.
pub fn proximity_rank(machine: &Machine, caller_cpu: Option<usize>, cpu: usize) -> u8 {
    match caller_cpu {
        Some(c) if c == cpu => 2,
        Some(c)
            if machine
                .domain_of(Sharing::Core, c)
                .is_some_and(|d| d.contains(cpu)) =>
        {
            1
        }
        _ => 0,
    }
}

/// The eligible CPU with the fewest utility threads (`usage`), ties broken
/// by `rank` then index. `None` only for an empty set.
pub fn pick_least_used(
    eligible: &CpuSet,
    usage: impl Fn(usize) -> usize,
    rank: impl Fn(usize) -> u8,
) -> Option<usize> {
    eligible.iter().min_by_key(|&c| (usage(c), rank(c), c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    /// 2 NUMA nodes x 2 L3 x 4 cores x 2 hardware threads, CPUs numbered in
    /// topology order (as hwloc numbers a synthetic topology).
    fn two_socket() -> Machine {
        let all = set("0-31");
        let cores: Vec<CpuSet> = (0..16)
            .map(|c| set(&format!("{}-{}", 2 * c, 2 * c + 1)))
            .collect();
        Machine {
            this_system: false,
            source: "test".into(),
            complete: all.clone(),
            allowed: all,
            numa: BTreeMap::from([(0, set("0-15")), (1, set("16-31"))]),
            l1: cores.clone(),
            l2: cores.clone(),
            l3: (0..4)
                .map(|i| set(&format!("{}-{}", 8 * i, 8 * i + 7)))
                .collect(),
            cores,
            fabrics: vec![],
        }
    }

    fn place(m: &Machine, a: Attr, caller: usize, env: &Env) -> Result<CpuSet, Error> {
        eligible(m, &a, Some(caller), env).map(|e| e.cpus)
    }

    #[test]
    fn relative_hints_follow_the_caller() {
        let m = two_socket();
        let e = Env::default();
        let a = Attr::new;
        assert_eq!(place(&m, a(), 5, &e).unwrap(), set("0-31"));
        assert_eq!(
            place(&m, a().with(flags::SAME_NUMA_DOMAIN), 20, &e).unwrap(),
            set("16-31")
        );
        assert_eq!(
            place(&m, a().with(flags::DIFFERENT_NUMA_DOMAIN), 20, &e).unwrap(),
            set("0-15")
        );
        assert_eq!(
            place(&m, a().with(flags::SAME_L3), 9, &e).unwrap(),
            set("8-15")
        );
        assert_eq!(
            place(&m, a().with(flags::DIFFERENT_L3), 9, &e).unwrap(),
            set("0-7,16-31")
        );
        assert_eq!(
            place(&m, a().with(flags::SAME_L2), 9, &e).unwrap(),
            set("8-9")
        );
        assert_eq!(
            place(&m, a().with(flags::SAME_L1), 30, &e).unwrap(),
            set("30-31")
        );
        assert_eq!(
            place(&m, a().with(flags::DIFFERENT_L1), 30, &e).unwrap(),
            set("0-29")
        );
        assert_eq!(
            place(
                &m,
                a().with(flags::SAME_NUMA_DOMAIN).with(flags::DIFFERENT_L3),
                3,
                &e
            )
            .unwrap(),
            set("8-15")
        );
        assert_eq!(
            place(&m, a().numa_set(&[1]).unwrap(), 0, &e).unwrap(),
            set("16-31")
        );
    }

    #[test]
    fn environment_and_allowed_cpus_narrow_the_set() {
        let mut m = two_socket();
        let e = Env {
            cpu_set: Some(set("4-20")),
            ..Env::default()
        };
        assert_eq!(
            place(&m, Attr::new().with(flags::SAME_NUMA_DOMAIN), 0, &e).unwrap(),
            set("4-15")
        );
        m.allowed = set("0-7");
        let err = place(
            &m,
            Attr::new().with(flags::DIFFERENT_NUMA_DOMAIN),
            0,
            &Env::default(),
        )
        .unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL);
        assert!(err.to_string().contains("DIFFERENT_NUMA_DOMAIN"), "{err}");
    }

    #[test]
    fn empty_results_and_bad_callers_are_einval() {
        let m = two_socket();
        let e = Env::default();
        let r = place(
            &m,
            Attr::new().with(flags::SAME_L1).with(flags::DIFFERENT_L2),
            0,
            &e,
        );
        assert_eq!(r.unwrap_err().errno(), libc::EINVAL);
        let r = place(&m, Attr::new().numa_set(&[7]).unwrap(), 0, &e);
        assert_eq!(r.unwrap_err().errno(), libc::EINVAL);
        let r = place(&m, Attr::new().with(flags::SAME_L3), 99, &e);
        assert!(r.unwrap_err().to_string().contains("CPU 99"));
        let e2 = Env {
            cpu_set: Some(set("100")),
            ..Env::default()
        };
        assert!(place(&m, Attr::new(), 0, &e2).is_err());
    }

    #[test]
    fn missing_cache_levels_are_skipped() {
        let mut m = two_socket();
        m.l3.clear();
        let e = Env::default();
        assert_eq!(
            place(&m, Attr::new().with(flags::SAME_L3), 9, &e).unwrap(),
            set("0-31")
        );
    }

    #[test]
    fn kernel_preference() {
        let m = two_socket();
        let plain = Env::default();
        let lwk = Attr::new().with(flags::PREFER_LWK);
        let fwk = Attr::new().with(flags::PREFER_FWK);
        // Plain Linux: every CPU is an FWK CPU; PREFER_LWK falls back.
        let r = eligible(&m, &lwk, Some(0), &plain).unwrap();
        assert_eq!((r.cpus, r.kernel), (set("0-31"), Kernel::Fwk));
        let r = eligible(&m, &fwk, Some(0), &plain).unwrap();
        assert_eq!((r.cpus, r.kernel), (set("0-31"), Kernel::Fwk));
        // Under mcexec --enable-uti: Linux CPUs 0-3, LWK CPUs 4-31.
        let split = Env {
            fwk_cpus: Some(set("0-3")),
            lwk_cpus: Some(set("4-31")),
            ..Env::default()
        };
        let r = eligible(&m, &Attr::new(), Some(8), &split).unwrap();
        assert_eq!((r.cpus, r.kernel), (set("0-3"), Kernel::Fwk));
        let r = eligible(&m, &lwk, Some(8), &split).unwrap();
        assert_eq!((r.cpus, r.kernel), (set("4-31"), Kernel::Lwk));
        // Preferred kind empty after the hints: fall back to the other kind.
        let r = eligible(&m, &fwk.with(flags::DIFFERENT_L3), Some(0), &split).unwrap();
        assert_eq!((r.cpus, r.kernel), (set("8-31"), Kernel::Lwk));
        let bad = Env {
            fwk_cpus: Some(set("0-3")),
            lwk_cpus: Some(set("3-5")),
            ..Env::default()
        };
        assert!(eligible(&m, &Attr::new(), Some(0), &bad).is_err());
    }

    #[test]
    fn least_used_prefers_idle_cpus_away_from_the_caller() {
        let m = two_socket();
        let rank = |c| proximity_rank(&m, Some(0), c);
        let elig = set("0-3");
        assert_eq!(pick_least_used(&elig, |_| 0, rank), Some(2));
        let used = |c: usize| usize::from(c >= 2);
        assert_eq!(pick_least_used(&elig, used, rank), Some(1));
        assert_eq!(pick_least_used(&set("0"), |_| 5, rank), Some(0));
        assert_eq!(pick_least_used(&CpuSet::new(), |_| 0, rank), None);
    }
}
