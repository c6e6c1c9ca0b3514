//! A snapshot of the node's topology reduced to what placement needs: which
//! CPUs exist and are allowed, and which CPUs share a NUMA node, a cache, a
//! core, or are close to a fabric adapter.
//!
//! Built from hwloc by [`crate::topology`], or by hand in tests. Placement
//! ([`crate::placement`]) reads only this type.

use std::collections::BTreeMap;

use crate::cpuset::CpuSet;

/// Levels of CPU sharing a hint can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Level-1 data (or unified) cache.
    L1,
    /// Level-2 cache.
    L2,
    /// Level-3 cache.
    L3,
    /// Physical core (hardware threads of one core).
    Core,
}

/// A fabric (OpenFabrics) adapter and the CPUs of its closest non-I/O
/// ancestor (package or NUMA node), where its interrupts are best taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fabric {
    /// Device name, e.g. `mlx5_0`.
    pub name: String,
    /// CPUs near the device.
    pub cpus: CpuSet,
}

/// What placement knows about the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// The topology describes the machine this process runs on, so CPU
    /// masks can be applied to threads. False for XML or synthetic
    /// topologies: masks are then computed and reported but not applied.
    pub this_system: bool,
    /// Where the topology came from, for log lines.
    pub source: String,
    /// Every CPU of the topology.
    pub complete: CpuSet,
    /// CPUs the process may run on (cgroup/cpuset restrictions). Affinity
    /// set with `sched_setaffinity` (mpirun binding, taskset) is a binding,
    /// not a restriction, and is not reflected here.
    pub allowed: CpuSet,
    /// NUMA node OS index to its CPUs.
    pub numa: BTreeMap<usize, CpuSet>,
    /// CPU sets of the L1 caches.
    pub l1: Vec<CpuSet>,
    /// CPU sets of the L2 caches.
    pub l2: Vec<CpuSet>,
    /// CPU sets of the L3 caches.
    pub l3: Vec<CpuSet>,
    /// CPU sets of the cores.
    pub cores: Vec<CpuSet>,
    /// Fabric adapters found in the topology.
    pub fabrics: Vec<Fabric>,
}

impl Machine {
    /// The domains of one sharing level.
    pub fn domains(&self, level: Sharing) -> &[CpuSet] {
        match level {
            Sharing::L1 => &self.l1,
            Sharing::L2 => &self.l2,
            Sharing::L3 => &self.l3,
            Sharing::Core => &self.cores,
        }
    }

    /// The CPUs sharing `level` with `cpu` (including `cpu`), if the
    /// topology describes that level for it.
    pub fn domain_of(&self, level: Sharing, cpu: usize) -> Option<&CpuSet> {
        self.domains(level).iter().find(|d| d.contains(cpu))
    }

    /// The CPUs of every NUMA node local to `cpu` (usually one node).
    pub fn numa_of(&self, cpu: usize) -> CpuSet {
        self.numa
            .values()
            .filter(|s| s.contains(cpu))
            .fold(CpuSet::new(), |acc, s| &acc | s)
    }
}
