//! The library's per-process state (the topology snapshot and the usage
//! table) and the planning step shared by the C and Rust APIs: eligible
//! CPUs, then one least-used CPU for EXCLUSIVE_CPU / CPU_INTENSIVE.

use std::sync::{Arc, OnceLock};

use crate::attr::{flags, Attr};
use crate::cpuset::CpuSet;
use crate::env::Env;
use crate::error::Error;
use crate::log;
use crate::machine::Machine;
use crate::placement::{self, Kernel};
use crate::registry::{Claim, Registry};
use crate::topology::{self, Source};

/// Placement state of a process: the machine and the usage table.
#[derive(Debug)]
pub struct Uti {
    machine: Machine,
    registry: OnceLock<Arc<Registry>>,
}

/// Where a thread is to run, decided before it is created.
#[derive(Debug)]
pub struct Plan {
    /// The thread's CPU set (one CPU for EXCLUSIVE_CPU / CPU_INTENSIVE).
    pub cpus: CpuSet,
    /// Kind of CPU.
    pub kernel: Kernel,
    /// Whether `cpus` can be applied as the thread's affinity (the topology
    /// is this machine's).
    pub apply_affinity: bool,
    /// HIGH_PRIORITY was asked for.
    pub high_priority: bool,
    /// The thread's entry in the usage table, if it is counted.
    pub claim: Option<Claim>,
}

/// Failure to initialise the global state, kept to be reported on each use.
#[derive(Debug)]
struct InitError {
    message: String,
    errno: i32,
}

static GLOBAL: OnceLock<Result<Uti, InitError>> = OnceLock::new();

/// The CPU the calling thread is running on.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no arguments; it returns -1 on failure.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

impl Uti {
    /// State over a given machine; the usage table is opened at first need
    /// at its default location ([`crate::registry::default_path`]).
    pub fn new(machine: Machine) -> Uti {
        Uti {
            machine,
            registry: OnceLock::new(),
        }
    }

    /// State over a given machine and usage table.
    pub fn with_registry(machine: Machine, registry: Arc<Registry>) -> Uti {
        let r = OnceLock::new();
        let _ = r.set(registry);
        Uti {
            machine,
            registry: r,
        }
    }

    /// State for the topology named by the environment
    /// ([`crate::topology`]).
    pub fn from_env() -> Result<Uti, Error> {
        let source = Source::from_env();
        let machine = topology::load(&source)?;
        log::debug!(
            "topology: {} (CPUs: {}, allowed: {{{}}}, NUMA nodes: {}, this system: {})",
            machine.source,
            machine.complete.len(),
            machine.allowed,
            machine.numa.len(),
            machine.this_system
        );
        Ok(Uti::new(machine))
    }

    /// The process-wide state, created on first use.
    pub fn global() -> Result<&'static Uti, Error> {
        let r = GLOBAL.get_or_init(|| {
            Uti::from_env().map_err(|e| InitError {
                message: e.to_string(),
                errno: e.errno(),
            })
        });
        match r {
            Ok(u) => Ok(u),
            Err(e) if e.errno == libc::EINVAL => Err(Error::Topology(e.message.clone())),
            Err(e) => Err(Error::os(e.message.clone(), e.errno)),
        }
    }

    /// The machine snapshot.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    fn registry(&self) -> Result<&Arc<Registry>, Error> {
        if let Some(r) = self.registry.get() {
            return Ok(r);
        }
        let r = Registry::open_default()?;
        log::debug!("counting utility threads in {}", r.location);
        Ok(self.registry.get_or_init(|| r))
    }

    /// Decides where a thread with `attr` goes. `caller_cpu` is the
    /// creating thread's CPU; `within` further restricts the CPUs (the
    /// affinity already set in the caller's `pthread_attr_t`; ignored for a
    /// topology that is not this machine's). Claims a slot in the usage
    /// table for EXCLUSIVE_CPU / CPU_INTENSIVE.
    pub fn plan(
        &self,
        attr: &Attr,
        env: &Env,
        caller_cpu: Option<usize>,
        within: Option<&CpuSet>,
    ) -> Result<Plan, Error> {
        let m = &self.machine;
        let mut el = placement::eligible(m, attr, caller_cpu, env)?;
        if let (Some(w), true) = (within, m.this_system) {
            let narrowed = &el.cpus & w;
            if narrowed.is_empty() {
                return Err(Error::NoCpu(format!(
                    "the eligible CPUs {{{}}} are all outside the affinity {{{w}}} of the given pthread_attr_t",
                    el.cpus
                )));
            }
            el.cpus = narrowed;
        }
        let mut claim = None;
        let mut cpus = el.cpus.clone();
        if placement::wants_least_used(attr) {
            let rank = |c| placement::proximity_rank(m, caller_cpu, c);
            let mut seen_count = 0;
            let choose = |usage: &std::collections::BTreeMap<usize, usize>| {
                let used = |c| usage.get(&c).copied().unwrap_or(0);
                let c = placement::pick_least_used(&el.cpus, used, rank)?;
                seen_count = used(c);
                Some(c)
            };
            let chosen = match self.registry().and_then(|r| r.claim(choose)) {
                Ok(Some(c)) => {
                    let cpu = c.cpu();
                    claim = Some(c);
                    cpu
                }
                Ok(None) => unreachable_empty(&el.cpus)?,
                Err(e) => {
                    log::warning!("usage table unavailable ({e}); choosing without counts");
                    placement::pick_least_used(&el.cpus, |_| 0, rank)
                        .map_or_else(|| unreachable_empty(&el.cpus), Ok)?
                }
            };
            if attr.has(flags::EXCLUSIVE_CPU) && seen_count > 0 {
                log::warning!(
                    "EXCLUSIVE_CPU: every eligible CPU {{{}}} already runs utility threads; CPU {chosen} is shared with {seen_count}",
                    el.cpus
                );
            }
            cpus = std::iter::once(chosen).collect();
        }
        log::debug!(
            "thread goes to {:?} CPUs {{{}}} (caller on CPU {})",
            el.kernel,
            cpus,
            caller_cpu.map_or("?".to_string(), |c| c.to_string())
        );
        Ok(Plan {
            cpus,
            kernel: el.kernel,
            apply_affinity: m.this_system,
            high_priority: attr.has(flags::HIGH_PRIORITY),
            claim,
        })
    }
}

fn unreachable_empty(cpus: &CpuSet) -> Result<usize, Error> {
    Err(Error::NoCpu(format!("empty eligible set {{{cpus}}}")))
}
