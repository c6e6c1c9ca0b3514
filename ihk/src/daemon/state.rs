//! The daemon's state and the device operations (ihkconfig, §1.2.1 / §1.3.1):
//! reserved CPUs and memory, OS instance creation and destruction, teardown.
//!
//! Every operation validates everything before changing anything, so a
//! failed call leaves the node and the daemon as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use super::instance::{InstanceHandle, SHUTDOWN_TIMEOUT};
use super::server::{ServerCtl, SocketKind};
use crate::error::{IhkError, IhkResult};
use crate::host::topology;
use crate::journal::Journal;
use crate::list::{format_cpus, format_size, MemList, MemSize};
use crate::paths::{Roots, RuntimeDir};
use crate::reserve::evict::Evictor;
use crate::reserve::mempool::{granule_floor, MemPool};
use crate::reserve::{self, Isolation};

/// Never take more than this share of node 0's free memory (§1.2.1.8).
pub(super) const NODE0_MAX_PERCENT: u64 = 95;
// `ALL` takes `MemConf::max_size_ratio_all` (98%) of a node's free memory
// (§1.2.1.6); node 0 stays within NODE0_MAX_PERCENT.
/// How long destroy waits for other users of an OS socket to go away.
pub const DESTROY_BUSY_WAIT: Duration = Duration::from_secs(1);

pub struct State {
    pub dir: RuntimeDir,
    pub roots: Roots,
    pub isolation: Isolation,
    pub journal: Journal,
    evictor: Option<Evictor>,
    pub reserved_cpus: BTreeSet<u32>,
    pub mem: MemPool,
    pub instances: BTreeMap<u32, Arc<InstanceHandle>>,
    /// Owner of the sockets (`-o user[:group]`).
    pub owner: Option<(u32, u32)>,
    ctl: ServerCtl,
    /// `ihk_reserve_mem_conf` settings for the next reservation (memconf.rs).
    pub mem_conf: super::memconf::MemConf,
}

impl State {
    pub fn new(
        dir: RuntimeDir,
        roots: Roots,
        isolation: Isolation,
        journal: Journal,
        ctl: ServerCtl,
    ) -> State {
        let evictor = match isolation {
            Isolation::Evict => Some(Evictor::new(roots.clone())),
            Isolation::Pin => None,
        };
        State {
            dir,
            roots,
            isolation,
            journal,
            evictor,
            reserved_cpus: BTreeSet::new(),
            mem: MemPool::new(),
            instances: BTreeMap::new(),
            owner: None,
            ctl,
            mem_conf: Default::default(),
        }
    }

    pub fn online_cpus(&self) -> IhkResult<Vec<u32>> {
        topology::online_cpus(&self.roots)
    }

    /// The OS instance a CPU is assigned to, if any.
    pub fn cpu_owner(&self, cpu: u32) -> Option<u32> {
        self.instances
            .values()
            .find(|h| h.assigned_cpus_snapshot().contains(&cpu))
            .map(|h| h.index)
    }

    // ---- CPUs ----

    pub fn reserve_cpu(&mut self, cpus: &[u32], warnings: &mut Vec<String>) -> IhkResult<()> {
        if cpus.is_empty() {
            return Err(IhkError::inval("no CPUs given"));
        }
        let online = self.online_cpus()?;
        for &c in cpus {
            if !online.contains(&c) {
                return Err(IhkError::inval(format!(
                    "CPU {c} does not exist; this node's CPUs are {}",
                    format_cpus(&online)
                )));
            }
            if self.reserved_cpus.contains(&c) {
                return Err(IhkError::inval(format!("CPU {c} is already reserved")));
            }
        }
        let mut next = self.reserved_cpus.clone();
        next.extend(cpus.iter().copied());
        // In pin mode Linux keeps running everywhere, so all CPUs may go to
        // LWKs (two instances side by side on a 2-CPU machine).
        if self.isolation == Isolation::Evict && online.iter().all(|c| next.contains(c)) {
            return Err(IhkError::inval(format!(
                "reserving CPU {} would leave Linux without a CPU",
                format_cpus(cpus)
            )));
        }
        if let Some(ev) = self.evictor.as_mut() {
            match ev.apply(&mut self.journal, &next, &online) {
                Ok(w) => warnings.extend(w),
                Err(e) => {
                    // Put back whatever was already moved.
                    let _ = ev.apply(&mut self.journal, &self.reserved_cpus, &online);
                    return Err(e);
                }
            }
        }
        self.reserved_cpus = next;
        tracing::info!(
            "reserved CPUs {} ({} mode)",
            format_cpus(cpus),
            self.isolation.as_str()
        );
        Ok(())
    }

    pub fn release_cpu(&mut self, cpus: &[u32], warnings: &mut Vec<String>) -> IhkResult<()> {
        if cpus.is_empty() {
            return Err(IhkError::inval("no CPUs given"));
        }
        for &c in cpus {
            if !self.reserved_cpus.contains(&c) {
                return Err(IhkError::inval(format!("CPU {c} is not reserved")));
            }
            if let Some(os) = self.cpu_owner(c) {
                return Err(IhkError::inval(format!(
                    "CPU {c} is assigned to OS instance {os}; release it there first (ihkosctl {os} release cpu {c})"
                )));
            }
        }
        let next: BTreeSet<u32> = self
            .reserved_cpus
            .iter()
            .copied()
            .filter(|c| !cpus.contains(c))
            .collect();
        if let Some(ev) = self.evictor.as_mut() {
            let online = topology::online_cpus(&self.roots)?;
            warnings.extend(ev.apply(&mut self.journal, &next, &online)?);
        }
        self.reserved_cpus = next;
        tracing::info!("released CPUs {}", format_cpus(cpus));
        Ok(())
    }

    // ---- memory ----

    /// Bytes per node a memory list asks to reserve, after resolving `ALL`
    /// against what the node may give; checks nodes and free memory.
    fn plan_reservation(&self, mem: &MemList) -> IhkResult<BTreeMap<u32, u64>> {
        let nodes = topology::numa_nodes(&self.roots)?;
        let mut explicit: BTreeMap<u32, u64> = BTreeMap::new();
        let mut all_nodes: BTreeSet<u32> = BTreeSet::new();
        for c in mem.chunks() {
            let node = c.node();
            if !nodes.contains(&node) {
                return Err(IhkError::inval(format!(
                    "NUMA node {node} does not exist; this node's NUMA nodes are {}",
                    format_cpus(&nodes)
                )));
            }
            match c.size {
                MemSize::Bytes(b) => {
                    let e = explicit.entry(node).or_insert(0);
                    *e = e
                        .checked_add(b)
                        .ok_or_else(|| IhkError::nomem("requested size overflows"))?;
                }
                MemSize::All => {
                    all_nodes.insert(node);
                }
            }
        }
        let mut plan = BTreeMap::new();
        for node in explicit
            .keys()
            .chain(all_nodes.iter())
            .copied()
            .collect::<BTreeSet<u32>>()
        {
            let free = topology::node_free_bytes(&self.roots, node)?;
            let cap = if node == 0 {
                free / 100 * NODE0_MAX_PERCENT
            } else {
                free
            };
            let want = explicit.get(&node).copied().unwrap_or(0);
            if want > cap {
                return Err(IhkError::nomem(format!(
                    "not enough memory on NUMA node {node}: {} requested, at most {} can be reserved ({} available: free plus reclaimable cache{})",
                    format_size(want),
                    format_size(granule_floor(cap)),
                    format_size(free),
                    if node == 0 { ", of which IHK takes at most 95%" } else { "" }
                )));
            }
            let mut total = want;
            if all_nodes.contains(&node) {
                let ratio_cap = free / 100 * self.mem_conf.max_size_ratio_all;
                let all_cap = if node == 0 {
                    cap.min(ratio_cap)
                } else {
                    ratio_cap
                };
                total = want.max(granule_floor(all_cap));
                if total == want {
                    return Err(IhkError::nomem(format!(
                        "no memory left on NUMA node {node} for ALL"
                    )));
                }
            }
            plan.insert(node, total);
        }
        Ok(plan)
    }

    pub fn reserve_mem(&mut self, mem: &MemList, warnings: &mut Vec<String>) -> IhkResult<()> {
        // The settings hold for this one reservation (memconf.rs); a bare
        // `ALL` means best effort on node 0, the default node.
        let conf = self.mem_conf.clone();
        let planned = if conf.balanced {
            self.plan_balanced(mem)
        } else {
            self.plan_reservation(mem)
        };
        self.mem_conf = Default::default();
        let plan = planned?;
        let started = std::time::Instant::now();
        let mut created = Vec::new();
        for (&node, &size) in &plan {
            let reserved = self
                .mem
                .reserve(&mut self.journal, &self.roots, node, size, warnings)
                .and_then(|ids| {
                    created.extend(ids.iter().copied());
                    self.check_mem_conf(&conf, &ids, started)
                });
            match reserved {
                Ok(()) => {}
                Err(e) => {
                    let left = self
                        .mem
                        .drop_regions(&mut self.journal, &self.roots, &created);
                    for l in left {
                        tracing::error!("rolling back a failed reservation: {l}");
                    }
                    return Err(e);
                }
            }
        }
        for (node, size) in plan {
            tracing::info!("reserved {} on NUMA node {node}", format_size(size));
        }
        Ok(())
    }

    pub fn release_mem(&mut self, mem: &MemList) -> IhkResult<()> {
        if mem.is_everything() {
            let failures = self
                .mem
                .release_all_free(&mut self.journal, &self.roots, None);
            if !failures.is_empty() {
                return Err(IhkError::io(failures.join("; ")));
            }
            let still = self.mem.total_by_node();
            if !still.is_empty() {
                let held: Vec<String> = still
                    .iter()
                    .map(|(n, b)| format!("{} on node {n}", format_size(*b)))
                    .collect();
                return Err(IhkError::busy(format!(
                    "{} still assigned to OS instances; destroy them first",
                    held.join(", ")
                )));
            }
            tracing::info!("released all memory");
            return Ok(());
        }
        // Work out every region to free before freeing any.
        let mut per_node: BTreeMap<u32, u64> = BTreeMap::new();
        let mut all_of: BTreeSet<u32> = BTreeSet::new();
        for c in mem.chunks() {
            match c.size {
                MemSize::Bytes(b) => *per_node.entry(c.node()).or_insert(0) += b,
                MemSize::All => {
                    all_of.insert(c.node());
                }
            }
        }
        let mut ids = Vec::new();
        for (&node, &size) in &per_node {
            if all_of.contains(&node) {
                continue;
            }
            ids.extend(self.mem.pick_release(node, size)?);
        }
        let mut failures = self.mem.drop_regions(&mut self.journal, &self.roots, &ids);
        for node in all_of {
            failures.extend(
                self.mem
                    .release_all_free(&mut self.journal, &self.roots, Some(node)),
            );
        }
        if !failures.is_empty() {
            return Err(IhkError::io(failures.join("; ")));
        }
        tracing::info!("released memory {mem}");
        Ok(())
    }

    // ---- OS instances ----

    fn bind_socket(&self, kind: SocketKind) -> IhkResult<UnixListener> {
        let path = match kind {
            SocketKind::Device(d) => self.dir.device_socket(d),
            SocketKind::Os(o) => self.dir.os_socket(o),
        };
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path)
            .map_err(|e| IhkError::os(e, format!("creating {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| IhkError::os(e, format!("setting the mode of {}", path.display())))?;
        if let Some((uid, gid)) = self.owner {
            nix::unistd::chown(&path, Some(uid.into()), Some(gid.into()))
                .map_err(|e| IhkError::os(e.into(), format!("chown {}", path.display())))?;
        }
        Ok(l)
    }

    /// Create the device socket (at start).
    pub fn open_device(&self, dev: u32) -> IhkResult<UnixListener> {
        self.bind_socket(SocketKind::Device(dev))
    }

    pub fn create_os(&mut self) -> IhkResult<u32> {
        let index = (0..).find(|i| !self.instances.contains_key(i)).unwrap();
        let listener = self.bind_socket(SocketKind::Os(index))?;
        let handle = Arc::new(InstanceHandle::new(index));
        self.instances.insert(index, handle.clone());
        self.ctl
            .add_listener(SocketKind::Os(index), listener, Some(handle));
        tracing::info!("created OS instance {index}");
        Ok(index)
    }

    pub fn destroy_os(&mut self, os: u32) -> IhkResult<()> {
        let handle = self
            .instances
            .get(&os)
            .cloned()
            .ok_or_else(|| IhkError::noent(format!("OS instance {os} does not exist")))?;
        if handle.connections() > 0 {
            return Err(IhkError::busy(format!(
                "OS instance {os} is in use ({} open connection(s) to {}, e.g. mcexec)",
                handle.connections(),
                self.dir.os_socket(os).display()
            )));
        }
        self.remove_instance(os)
    }

    /// Shut down (if booted) and remove an instance, giving its resources
    /// back to the reserved pool.
    fn remove_instance(&mut self, os: u32) -> IhkResult<()> {
        let Some(handle) = self.instances.get(&os).cloned() else {
            return Ok(());
        };
        let result = handle.teardown(&mut self.mem, SHUTDOWN_TIMEOUT);
        handle.mark_destroyed();
        self.instances.remove(&os);
        self.ctl.remove_listener(SocketKind::Os(os));
        let _ = std::fs::remove_file(self.dir.os_socket(os));
        tracing::info!("destroyed OS instance {os}");
        result
    }

    pub fn set_owner(&mut self, uid: u32, gid: u32) -> IhkResult<()> {
        let mut paths = vec![self.dir.device_socket(0)];
        paths.extend(self.instances.keys().map(|&i| self.dir.os_socket(i)));
        for p in &paths {
            nix::unistd::chown(p, Some(uid.into()), Some(gid.into()))
                .map_err(|e| IhkError::os(e.into(), format!("chown {}", p.display())))?;
        }
        self.owner = Some((uid, gid));
        tracing::info!("sockets now owned by {uid}:{gid}");
        Ok(())
    }

    /// Shut down and destroy every instance, release all memory and CPUs,
    /// and undo whatever is left in the journal. Returns what could not be
    /// restored.
    pub fn teardown(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        let indices: Vec<u32> = self.instances.keys().copied().collect();
        for os in indices {
            if let Err(e) = self.remove_instance(os) {
                failures.push(format!("OS instance {os}: {}", e.detail));
            }
        }
        failures.extend(
            self.mem
                .release_all_free(&mut self.journal, &self.roots, None),
        );
        if !self.mem.is_empty() {
            failures.push("memory is still assigned after destroying every OS instance".into());
        }
        if let Some(ev) = self.evictor.as_mut() {
            match topology::online_cpus(&self.roots)
                .and_then(|online| ev.apply(&mut self.journal, &BTreeSet::new(), &online))
            {
                Ok(w) => failures.extend(w),
                Err(e) => failures.push(e.detail),
            }
        }
        self.reserved_cpus.clear();
        failures.extend(reserve::replay(&mut self.journal, &self.roots));
        if failures.is_empty() {
            tracing::info!("released everything; the node is restored");
        } else {
            for f in &failures {
                tracing::error!("not restored: {f}");
            }
        }
        failures
    }
}
