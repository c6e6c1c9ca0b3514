//! One OS instance and the OS operations (ihkosctl, §1.2.2 / §1.3.2).
//!
//! The configuration (assigned CPUs and memory, IKC map, image, kernel
//! arguments) lives in the daemon's `State` and changes only under its lock;
//! the running partition lives in the shared [`InstanceHandle`] under its own
//! lock, so a boot can wait for the LWK while the rest of the daemon serves.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ihk_vm::{BootSpec, ChunkSpec, CpuSpec, OsStatus, Partition, VmError};

use super::state::State;
use crate::error::{IhkError, IhkResult, EBUSY, EINVAL};
use crate::host::topology;
use crate::list::{format_cpus, format_size, IkcMap, MemList, MemSize};
use crate::reserve::mempool::{Extent, MemPool};
use crate::reserve::Isolation;

// libihk's and ihkmond's operations on an instance (instance/ops.rs).
pub mod ops;

/// How long a shutdown waits for the LWK to stop its CPUs.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest kernel image accepted.
const MAX_IMAGE: u64 = 512 << 20;
/// Lines of kmsg quoted in a boot error.
const KMSG_TAIL_LINES: usize = 20;

/// The part of an instance shared with connection threads.
pub struct InstanceHandle {
    pub index: u32,
    conns: AtomicUsize,
    destroyed: AtomicBool,
    /// Status to report while the partition lock is held by a boot or a
    /// shutdown.
    phase: AtomicU32,
    vm: Mutex<VmSlot>,
    /// Assigned CPUs, mirrored for lock-free lookups by the device side.
    cpus: Mutex<Vec<u32>>,
    conf: Mutex<Conf>,
    /// Eventfds and ihkmond's reports (daemon/events.rs).
    pub events: super::events::Events,
}

#[derive(Default)]
struct VmSlot {
    partition: Option<Partition>,
    /// kmsg of the last partition, kept after it shut down.
    last_kmsg: String,
}

/// Configuration set by ihkosctl before boot.
#[derive(Default)]
struct Conf {
    mem: Vec<Extent>,
    ikc: Option<IkcMap>,
    image: Option<(String, Vec<u8>)>,
    kargs: Option<String>,
}

impl InstanceHandle {
    pub fn new(index: u32) -> Self {
        InstanceHandle {
            index,
            conns: AtomicUsize::new(0),
            destroyed: AtomicBool::new(false),
            phase: AtomicU32::new(OsStatus::Inactive as u32),
            vm: Mutex::new(VmSlot::default()),
            cpus: Mutex::new(Vec::new()),
            conf: Mutex::new(Conf::default()),
            events: Default::default(),
        }
    }

    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
    pub fn connection_opened(&self) {
        self.conns.fetch_add(1, Ordering::SeqCst);
    }
    pub fn connection_closed(&self) {
        self.conns.fetch_sub(1, Ordering::SeqCst);
    }
    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::SeqCst)
    }
    pub fn assigned_cpus_snapshot(&self) -> Vec<u32> {
        self.cpus.lock().unwrap().clone()
    }

    fn phase(&self) -> OsStatus {
        OsStatus::from_u32(self.phase.load(Ordering::SeqCst)).unwrap_or(OsStatus::Inactive)
    }
    fn set_phase(&self, s: OsStatus) {
        self.phase.store(s as u32, Ordering::SeqCst);
    }

    /// Current status; while a boot or shutdown holds the partition, the
    /// phase it announced.
    pub fn status(&self) -> OsStatus {
        let s = match self.vm.try_lock() {
            Ok(slot) => slot
                .partition
                .as_ref()
                .map_or(OsStatus::Inactive, |p| p.status()),
            Err(_) => self.phase(),
        };
        // HUNGUP comes from ihkmond's report (daemon/events.rs).
        self.events.apply(s)
    }

    fn not_booted(&self) -> IhkResult<()> {
        match self.phase() {
            OsStatus::Inactive => Ok(()),
            s => Err(IhkError::busy(format!(
                "OS instance {} is {}; shut it down first (ihkosctl {} shutdown)",
                self.index,
                s.as_str(),
                self.index
            ))),
        }
    }

    /// Stop the partition (if any) and give every assigned resource back to
    /// `pool`; the instance becomes INACTIVE with nothing assigned.
    pub fn teardown(&self, pool: &mut MemPool, timeout: Duration) -> IhkResult<()> {
        let result = self.stop_partition(timeout);
        let mut conf = self.conf.lock().unwrap();
        pool.put_back(&conf.mem);
        *conf = Conf::default();
        self.cpus.lock().unwrap().clear();
        result
    }

    /// The instance is gone: its connections answer ENOENT from now on.
    pub fn mark_destroyed(&self) {
        self.destroyed.store(true, Ordering::SeqCst);
    }

    /// mcexec: claim a process slot of the running LWK (daemon/attach.rs).
    pub fn offload_attach(
        &self,
        pid: u32,
        local_rank: Option<u32>,
        per_node: Option<u32>,
    ) -> IhkResult<ihk_vm::OffloadAttachment> {
        let slot = self.vm.lock().unwrap();
        let p = slot.partition.as_ref().ok_or_else(|| {
            IhkError::noent(format!(
                "OS instance {} is not running (boot it with mcreboot)",
                self.index
            ))
        })?;
        p.offload_attach(pid, local_rank, per_node)
            .map_err(|e| vm_error(e, &format!("attaching to OS instance {}", self.index)))
    }

    /// mcexec: map a host file as a share window of the running LWK
    /// (`ihk_vm::Partition::share_window`).
    pub fn share_window(&self, backing: ihk_vm::ShareBacking, gpa: u64, len: u64, offset: u64, writable: bool) -> IhkResult<()> {
        let slot = self.vm.lock().unwrap();
        let p = slot.partition.as_ref().ok_or_else(|| {
            IhkError::noent(format!("OS instance {} is not running", self.index))
        })?;
        p.share_window(backing, gpa, len, offset, writable)
            .map_err(|e| vm_error(e, &format!("sharing a file with OS instance {}", self.index)))
    }

    /// Remove a share window whose creation the LWK never learned of.
    pub fn unshare_window(&self, gpa: u64) {
        if let Some(p) = self.vm.lock().unwrap().partition.as_ref() {
            p.unshare_window(gpa);
        }
    }

    fn stop_partition(&self, timeout: Duration) -> IhkResult<()> {
        // mcexec proxies of this instance go first (daemon/attach.rs).
        super::attach::close_all(self.index);
        let mut slot = self.vm.lock().unwrap();
        let Some(p) = slot.partition.take() else {
            return Ok(());
        };
        self.set_phase(OsStatus::Shutdown);
        slot.last_kmsg = p.kmsg();
        let r = p.shutdown(timeout);
        self.set_phase(OsStatus::Inactive);
        r.map_err(|e| vm_error(e, &format!("shutting down OS instance {}", self.index)))
    }
}

fn vm_error(e: VmError, doing: &str) -> IhkError {
    IhkError::new(e.errno(), format!("{doing}: {e}"))
}

fn kmsg_tail(kmsg: &str) -> String {
    let lines: Vec<&str> = kmsg.lines().collect();
    let start = lines.len().saturating_sub(KMSG_TAIL_LINES);
    lines[start..].join("\n")
}

impl State {
    fn instance(&self, os: u32) -> IhkResult<Arc<InstanceHandle>> {
        self.instances
            .get(&os)
            .cloned()
            .ok_or_else(|| IhkError::noent(format!("OS instance {os} does not exist")))
    }

    pub fn os_assign_cpu(&mut self, os: u32, cpus: &[u32]) -> IhkResult<()> {
        let h = self.instance(os)?;
        h.not_booted()?;
        if cpus.is_empty() {
            return Err(IhkError::inval("no CPUs given"));
        }
        for &c in cpus {
            if !self.reserved_cpus.contains(&c) {
                return Err(IhkError::inval(format!(
                    "CPU {c} is not reserved for IHK (reserve it first: ihkconfig 0 reserve cpu {c}; reserved: {})",
                    if self.reserved_cpus.is_empty() {
                        "none".to_string()
                    } else {
                        format_cpus(&self.reserved_cpus.iter().copied().collect::<Vec<_>>())
                    }
                )));
            }
            if let Some(owner) = self.cpu_owner(c) {
                return Err(IhkError::inval(format!(
                    "CPU {c} is already assigned to OS instance {owner}"
                )));
            }
        }
        h.cpus.lock().unwrap().extend_from_slice(cpus);
        tracing::info!("OS {os}: assigned CPUs {}", format_cpus(cpus));
        Ok(())
    }

    pub fn os_release_cpu(&mut self, os: u32, cpus: &[u32]) -> IhkResult<()> {
        let h = self.instance(os)?;
        h.not_booted()?;
        let mut assigned = h.cpus.lock().unwrap();
        for &c in cpus {
            if !assigned.contains(&c) {
                return Err(IhkError::inval(format!(
                    "CPU {c} is not assigned to OS instance {os}"
                )));
            }
        }
        assigned.retain(|c| !cpus.contains(c));
        let mut conf = h.conf.lock().unwrap();
        if let Some(map) = conf.ikc.as_mut() {
            map.0.retain(|(s, _)| !cpus.contains(s));
        }
        tracing::info!("OS {os}: released CPUs {}", format_cpus(cpus));
        Ok(())
    }

    pub fn os_query_cpu(&self, os: u32) -> IhkResult<Vec<u32>> {
        Ok(self.instance(os)?.assigned_cpus_snapshot())
    }

    pub fn os_assign_mem(&mut self, os: u32, mem: &MemList) -> IhkResult<()> {
        let h = self.instance(os)?;
        h.not_booted()?;
        let nodes = topology::numa_nodes(&self.roots)?;
        let free = self.mem.free_by_node();
        // Resolve to (node, bytes) and check everything before taking anything.
        let mut wants: Vec<(u32, u64)> = Vec::new();
        if mem.is_everything() {
            wants.extend(free.iter().map(|(&n, &b)| (n, b)));
        } else {
            for c in mem.chunks() {
                let node = c.node();
                if !nodes.contains(&node) {
                    return Err(IhkError::inval(format!(
                        "NUMA node {node} does not exist; this node's NUMA nodes are {}",
                        format_cpus(&nodes)
                    )));
                }
                match c.size {
                    MemSize::Bytes(b) => wants.push((node, b)),
                    MemSize::All => wants.push((node, free.get(&node).copied().unwrap_or(0))),
                }
            }
        }
        wants.retain(|w| w.1 > 0);
        if wants.is_empty() {
            return Err(IhkError::inval("no reserved, unassigned memory to assign (reserve it first: ihkconfig 0 reserve mem ...)"));
        }
        let mut per_node: std::collections::BTreeMap<u32, u64> = Default::default();
        for &(n, b) in &wants {
            *per_node.entry(n).or_insert(0) += b;
        }
        for (&n, &b) in &per_node {
            let avail = free.get(&n).copied().unwrap_or(0);
            if b > avail {
                return Err(IhkError::inval(format!(
                    "NUMA node {n} has {} of reserved, unassigned memory; {} requested (reserve more: ihkconfig 0 reserve mem ...)",
                    format_size(avail),
                    format_size(b)
                )));
            }
        }
        let mut taken = Vec::new();
        for (&n, &b) in &per_node {
            match self.mem.take(n, b) {
                Ok(e) => taken.extend(e),
                Err(e) => {
                    self.mem.put_back(&taken);
                    return Err(e);
                }
            }
        }
        h.conf.lock().unwrap().mem.extend(taken);
        tracing::info!("OS {os}: assigned memory {mem}");
        Ok(())
    }

    pub fn os_release_mem(&mut self, os: u32, mem: &MemList) -> IhkResult<()> {
        let h = self.instance(os)?;
        h.not_booted()?;
        let mut conf = h.conf.lock().unwrap();
        if mem.is_everything() {
            let all = std::mem::take(&mut conf.mem);
            self.mem.put_back(&all);
            return Ok(());
        }
        // Plan on a copy; commit only if every chunk can be given back.
        let mut keep = conf.mem.clone();
        let mut give = Vec::new();
        for c in mem.chunks() {
            let node = c.node();
            let have: u64 = keep.iter().filter(|e| e.node == node).map(|e| e.size).sum();
            let mut left = match c.size {
                MemSize::All => have,
                MemSize::Bytes(b) => b,
            };
            if left > have {
                return Err(IhkError::inval(format!(
                    "OS instance {os} has {} assigned on NUMA node {node}; cannot release {}",
                    format_size(have),
                    format_size(left)
                )));
            }
            while left > 0 {
                let i = keep
                    .iter()
                    .rposition(|e| e.node == node)
                    .expect("checked above");
                let e = keep[i];
                if e.size <= left {
                    give.push(keep.remove(i));
                    left -= e.size;
                } else {
                    keep[i].size -= left;
                    give.push(Extent {
                        offset: e.offset + e.size - left,
                        size: left,
                        ..e
                    });
                    left = 0;
                }
            }
        }
        conf.mem = keep;
        self.mem.put_back(&give);
        tracing::info!("OS {os}: released memory {mem}");
        Ok(())
    }

    pub fn os_query_mem(&self, os: u32) -> IhkResult<Vec<(u64, u32)>> {
        let h = self.instance(os)?;
        let conf = h.conf.lock().unwrap();
        let mut per_node: std::collections::BTreeMap<u32, u64> = Default::default();
        for e in &conf.mem {
            *per_node.entry(e.node).or_insert(0) += e.size;
        }
        Ok(per_node.into_iter().map(|(n, b)| (b, n)).collect())
    }

    pub fn os_set_ikc_map(&mut self, os: u32, map: &IkcMap) -> IhkResult<()> {
        let h = self.instance(os)?;
        h.not_booted()?;
        let assigned = h.assigned_cpus_snapshot();
        let online = self.online_cpus()?;
        for &(src, dst) in &map.0 {
            if !assigned.contains(&src) {
                return Err(IhkError::inval(format!(
                    "CPU {src} is not assigned to OS instance {os} (assigned: {})",
                    if assigned.is_empty() {
                        "none".into()
                    } else {
                        format_cpus(&assigned)
                    }
                )));
            }
            if !online.contains(&dst) {
                return Err(IhkError::inval(format!("Linux CPU {dst} does not exist")));
            }
            if self.isolation == Isolation::Evict && self.reserved_cpus.contains(&dst) {
                return Err(IhkError::inval(format!(
                    "CPU {dst} is reserved for the LWK and cannot receive IKC messages; choose a Linux CPU"
                )));
            }
        }
        h.conf.lock().unwrap().ikc = Some(map.clone());
        tracing::info!("OS {os}: IKC map {map}");
        Ok(())
    }

    /// The IKC map: the one set, completed with defaults for CPUs it does not
    /// name (a Linux CPU of the same NUMA node, else the first Linux CPU).
    pub fn os_get_ikc_map(&self, os: u32) -> IhkResult<IkcMap> {
        let h = self.instance(os)?;
        let set = h.conf.lock().unwrap().ikc.clone().unwrap_or_default();
        let online = self.online_cpus()?;
        let assigned = h.assigned_cpus_snapshot();
        let mut linux: Vec<u32> = online
            .iter()
            .copied()
            .filter(|c| !self.reserved_cpus.contains(c))
            .collect();
        if linux.is_empty() && self.isolation == Isolation::Pin {
            // Every CPU is reserved (allowed in pin mode): Linux still runs
            // on all of them; prefer CPUs of other instances.
            linux = online
                .iter()
                .copied()
                .filter(|c| !assigned.contains(c))
                .collect();
            if linux.is_empty() {
                linux = online.clone();
            }
        }
        let mut out = Vec::new();
        for cpu in assigned {
            let dst = match set.dest_of(cpu) {
                Some(d) => d,
                None => {
                    let node = topology::cpu_node(&self.roots, cpu);
                    linux
                        .iter()
                        .copied()
                        .find(|&l| topology::cpu_node(&self.roots, l) == node)
                        .or_else(|| linux.first().copied())
                        .ok_or_else(|| {
                            IhkError::inval("no Linux CPU left to receive IKC messages")
                        })?
                }
            };
            out.push((cpu, dst));
        }
        Ok(IkcMap(out))
    }

    pub fn os_load(&mut self, os: u32, name: &str, fd: Option<OwnedFd>) -> IhkResult<()> {
        let h = self.instance(os)?;
        h.not_booted()?;
        let fd = fd.ok_or_else(|| IhkError::inval("load: no image file descriptor was passed"))?;
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_IMAGE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| IhkError::os(e, format!("reading {name}")))?;
        if bytes.len() as u64 > MAX_IMAGE {
            return Err(IhkError::inval(format!(
                "{name} is larger than {}",
                format_size(MAX_IMAGE)
            )));
        }
        ihk_vm::validate_image(&bytes)
            .map_err(|e| IhkError::inval(format!("{name} is not a loadable LWK image: {e}")))?;
        tracing::info!("OS {os}: loaded {name} ({} bytes)", bytes.len());
        h.conf.lock().unwrap().image = Some((name.to_string(), bytes));
        Ok(())
    }

    pub fn os_kargs(&mut self, os: u32, kargs: &str) -> IhkResult<()> {
        let h = self.instance(os)?;
        h.not_booted()?;
        if !kargs.split([' ', ',', '\t']).any(|w| w == "hidos") {
            return Err(IhkError::inval(format!(
                "kernel arguments '{kargs}' do not contain 'hidos' (required, e.g. \"hidos dump_level=24\")"
            )));
        }
        h.conf.lock().unwrap().kargs = Some(kargs.to_string());
        tracing::info!("OS {os}: kernel arguments \"{kargs}\"");
        Ok(())
    }

    /// Everything the partition needs, checked; the instance is marked
    /// BOOTING. Called under the state lock; the wait happens outside it.
    pub fn os_prepare_boot(&mut self, os: u32) -> IhkResult<(Arc<InstanceHandle>, BootSpec)> {
        let h = self.instance(os)?;
        h.not_booted()?;
        let cpus = h.assigned_cpus_snapshot();
        if cpus.is_empty() {
            return Err(IhkError::inval(format!(
                "OS instance {os} has no CPUs assigned (ihkosctl {os} assign cpu <list>)"
            )));
        }
        let ikc = self.os_get_ikc_map(os)?;
        let conf = h.conf.lock().unwrap();
        if conf.mem.is_empty() {
            return Err(IhkError::inval(format!(
                "OS instance {os} has no memory assigned (ihkosctl {os} assign mem <list>)"
            )));
        }
        let Some((_, image)) = conf.image.as_ref() else {
            return Err(IhkError::inval(format!(
                "no kernel image loaded (ihkosctl {os} load <image>)"
            )));
        };
        let cpu_specs = cpus
            .iter()
            .map(|&c| CpuSpec {
                linux_cpu: c,
                numa_id: topology::cpu_node(&self.roots, c),
                ikc_dest_linux_cpu: ikc.dest_of(c).unwrap_or(0),
            })
            .collect();
        let mut chunks = Vec::new();
        for e in &conf.mem {
            let r = self.mem.region(e.region).ok_or_else(|| {
                IhkError::io(format!("internal: region {} of OS {os} is gone", e.region))
            })?;
            chunks.push(ChunkSpec {
                // SAFETY (of the pointer arithmetic): the extent lies inside
                // the region's mapping, which outlives the partition because
                // regions with assigned extents are never freed.
                host_addr: r.addr().wrapping_add(e.offset as usize),
                size: e.size,
                numa_id: e.node,
                memfd: r.fd(),
                memfd_offset: e.offset,
            });
        }
        let spec = BootSpec {
            image: image.clone(),
            kargs: conf.kargs.clone().unwrap_or_else(|| "hidos".to_string()),
            cpus: cpu_specs,
            chunks,
        };
        h.set_phase(OsStatus::Booting);
        Ok((h.clone(), spec))
    }

    pub fn os_shutdown(&mut self, os: u32) -> IhkResult<()> {
        let h = self.instance(os)?;
        if h.phase() == OsStatus::Inactive {
            return Err(IhkError::inval(format!("OS instance {os} is not booted")));
        }
        let r = h.teardown(&mut self.mem, SHUTDOWN_TIMEOUT);
        tracing::info!("OS {os}: shut down; its CPUs and memory are reserved again");
        crate::fault::point("ihkd:shut-down");
        r
    }
}

/// Boot a prepared instance and wait for it (outside the state lock).
pub fn boot(h: &InstanceHandle, spec: BootSpec, timeout: Duration) -> IhkResult<()> {
    let mut slot = h.vm.lock().unwrap();
    h.events.new_boot();
    let os = h.index;
    let p = match Partition::boot(spec) {
        Ok(p) => p,
        Err(e) => {
            h.set_phase(OsStatus::Inactive);
            return Err(vm_error(e, &format!("booting OS instance {os}")));
        }
    };
    let waited = p.wait_booted(timeout);
    let status = p.status();
    let kmsg = p.kmsg();
    slot.partition = Some(p);
    h.set_phase(status);
    match waited {
        Ok(()) => {
            tracing::info!("OS {os}: RUNNING");
            Ok(())
        }
        Err(e) => {
            let what = match &e {
                VmError::Panic { .. } => "the LWK panicked during boot",
                VmError::Timeout { .. } => "the LWK did not finish booting in time",
                _ => "boot failed",
            };
            tracing::error!("OS {os}: {what}: {e}");
            let errno = if e.errno() == EBUSY {
                EINVAL
            } else {
                e.errno()
            };
            Err(IhkError::new(
                errno,
                format!(
                    "{what} ({e}); status {}; last kernel messages:\n{}",
                    status.as_str(),
                    kmsg_tail(&kmsg)
                ),
            ))
        }
    }
}

pub fn kmsg(h: &InstanceHandle) -> String {
    let slot = h.vm.lock().unwrap();
    slot.partition
        .as_ref()
        .map_or_else(|| slot.last_kmsg.clone(), |p| p.kmsg())
}

pub fn clear_kmsg(h: &InstanceHandle) {
    let mut slot = h.vm.lock().unwrap();
    match slot.partition.as_ref() {
        Some(p) => p.clear_kmsg(),
        None => slot.last_kmsg.clear(),
    }
}

pub fn query_free_mem(h: &InstanceHandle) -> IhkResult<Vec<(u64, u32)>> {
    let slot = h.vm.lock().unwrap();
    match slot.partition.as_ref() {
        Some(p) if p.status() == OsStatus::Running => {
            Ok(p.free_mem().into_iter().map(|(n, b)| (b, n)).collect())
        }
        _ => Err(IhkError::new(
            EINVAL,
            format!("OS instance {} is not running", h.index),
        )),
    }
}
