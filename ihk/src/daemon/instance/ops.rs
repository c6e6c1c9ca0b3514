//! What libihk and ihkmond ask of an instance besides the commands'
//! operations: freeze/thaw (§1.2.2.32-33), rusage (§1.2.2.28), NUMA nodes
//! and page sizes (§1.2.2.24-27), memory dumps (§1.2.2.34), eventfds
//! (§1.2.2.13), and ihkmond's periodic watch and its reports.

use std::fs::File;
use std::sync::MutexGuard;
use std::time::Duration;

use ihk_vm::{DumpLevel, OsStatus, Partition};

use super::{vm_error, InstanceHandle, VmSlot};
use crate::daemon::state::State;
use crate::error::{IhkError, IhkResult, EBUSY};
use crate::host::topology;
use crate::proto::libihk::{
    CpuWatch, DumpInfo, EventType, KmsgPiece, MonitorEvent, OsInfo, RusageInfo, TraceInfo,
    WatchInfo,
};

/// The partition lock, waiting for short holders (kmsg, a dump) but not
/// for a boot or shutdown in progress (their phase answers instead).
fn lock(h: &InstanceHandle) -> IhkResult<MutexGuard<'_, VmSlot>> {
    loop {
        if let Ok(g) = h.vm.try_lock() {
            return Ok(g);
        }
        match h.phase() {
            s @ (OsStatus::Booting | OsStatus::Shutdown) => {
                return Err(IhkError::inval(format!(
                    "OS instance {} is {}",
                    h.index,
                    s.as_str()
                )))
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn partition<'a>(h: &InstanceHandle, slot: &'a VmSlot) -> IhkResult<&'a Partition> {
    slot.partition
        .as_ref()
        .ok_or_else(|| IhkError::inval(format!("OS instance {} is not booted (INACTIVE)", h.index)))
}

/// `ihk_os_freeze` for one instance: RUNNING only; FREEZING/FROZEN is
/// EBUSY, anything else EINVAL.
pub fn freeze(h: &InstanceHandle) -> IhkResult<()> {
    let slot = lock(h)?;
    let p = partition(h, &slot)?;
    match h.events.apply(p.status()) {
        OsStatus::Running => {
            p.freeze()
                .map_err(|e| vm_error(e, &format!("freezing OS instance {}", h.index)))?;
            tracing::info!("OS {}: freeze requested", h.index);
            Ok(())
        }
        s @ (OsStatus::Freezing | OsStatus::Frozen) => Err(IhkError::new(
            EBUSY,
            format!("OS instance {} is already {}", h.index, s.as_str()),
        )),
        s => Err(IhkError::inval(format!(
            "OS instance {} is {}; only a RUNNING instance can be frozen",
            h.index,
            s.as_str()
        ))),
    }
}

/// `ihk_os_thaw` for one instance: FREEZING or FROZEN only.
pub fn thaw(h: &InstanceHandle) -> IhkResult<()> {
    let slot = lock(h)?;
    let p = partition(h, &slot)?;
    match h.events.apply(p.status()) {
        OsStatus::Freezing | OsStatus::Frozen => {
            p.thaw()
                .map_err(|e| vm_error(e, &format!("thawing OS instance {}", h.index)))?;
            tracing::info!("OS {}: thawed", h.index);
            Ok(())
        }
        s => Err(IhkError::inval(format!(
            "OS instance {} is {}; only a FREEZING or FROZEN instance can be thawed",
            h.index,
            s.as_str()
        ))),
    }
}

pub fn rusage(h: &InstanceHandle) -> IhkResult<RusageInfo> {
    let slot = lock(h)?;
    Ok(partition(h, &slot)?.rusage())
}

/// The noise trace of every LWK CPU.
pub fn trace(h: &InstanceHandle) -> IhkResult<TraceInfo> {
    let slot = lock(h)?;
    Ok(partition(h, &slot)?.trace())
}

/// `ihk_os_makedumpfile` into `file` (created by the caller, with its
/// rights). Level 0 or 24; `interactive` writes headers and registers only.
pub fn dump(h: &InstanceHandle, file: File, level: i32, interactive: bool) -> IhkResult<DumpInfo> {
    let level = DumpLevel::from_level(level)
        .ok_or_else(|| IhkError::inval(format!("dump level {level}: expected 0 or 24")))?;
    let slot = lock(h)?;
    let p = partition(h, &slot)?;
    let s = p
        .write_core(&file, level, !interactive)
        .map_err(|e| vm_error(e, &format!("dumping OS instance {}", h.index)))?;
    tracing::info!(
        "OS {}: dumped {} bytes of memory ({} segments, {} CPUs' registers) at level {level:?}",
        h.index,
        s.memory_bytes,
        s.segments,
        s.cpus_with_registers
    );
    Ok(DumpInfo {
        file_size: s.file_size,
        memory_bytes: s.memory_bytes,
        segments: s.segments as u64,
        cpus_with_registers: s.cpus_with_registers as u64,
    })
}

/// ihkmond's view; never waits for the partition lock (a boot or a dump
/// holding it gives a view without CPUs).
pub fn watch(h: &InstanceHandle, kmsg_from: Option<u64>) -> WatchInfo {
    let boot = h.events.boot();
    let Ok(slot) = h.vm.try_lock() else {
        return WatchInfo {
            boot,
            status: h.status().as_str().to_string(),
            heartbeat_period_us: 0,
            cpus: Vec::new(),
            kmsg: None,
            memory: None,
        };
    };
    let Some(p) = slot.partition.as_ref() else {
        return WatchInfo {
            boot,
            status: OsStatus::Inactive.as_str().to_string(),
            heartbeat_period_us: 0,
            cpus: Vec::new(),
            kmsg: None,
            memory: None,
        };
    };
    WatchInfo {
        boot,
        status: h.events.apply(p.status()).as_str().to_string(),
        heartbeat_period_us: p.heartbeat_period_us(),
        cpus: p
            .monitor()
            .into_iter()
            .map(|c| CpuWatch {
                lwk_cpu: c.lwk_cpu,
                linux_cpu: c.linux_cpu,
                heartbeat: c.heartbeat,
                state: c.state as u32,
            })
            .collect(),
        kmsg: kmsg_from.map(|from| {
            let k = p.kmsg_since(from);
            KmsgPiece {
                text: String::from_utf8_lossy(&k.text).into_owned(),
                next: k.next,
                lost: k.lost,
            }
        }),
        memory: p.memory_totals(),
    }
}

/// ihkmond's report about boot `boot`.
pub fn report(h: &InstanceHandle, boot: u64, event: MonitorEvent) -> IhkResult<()> {
    let status = {
        let slot = lock(h)?;
        slot.partition
            .as_ref()
            .map_or(OsStatus::Inactive, |p| p.status())
    };
    h.events.report(h.index, boot, event, status)
}

pub fn get_eventfd(h: &InstanceHandle, kind: EventType) -> IhkResult<std::os::fd::OwnedFd> {
    let fd = h.events.new_eventfd(kind)?;
    tracing::info!("OS {}: handed out an eventfd for {kind:?} events", h.index);
    Ok(fd)
}

/// Page sizes the LWK can map on this machine: 4 KiB, 2 MiB, and 1 GiB
/// when the CPU has 1 GiB pages (the guest sees the host's CPUID).
pub fn os_info_pagesizes() -> Vec<u64> {
    let mut v = vec![4 << 10, 2 << 20];
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    if max_ext >= 0x8000_0001 {
        let edx = core::arch::x86_64::__cpuid(0x8000_0001).edx;
        if edx & (1 << 26) != 0 {
            v.push(1 << 30);
        }
    }
    v
}

impl State {
    /// NUMA nodes (of the assigned memory and CPUs) and page sizes.
    pub fn os_info(&self, os: u32) -> IhkResult<OsInfo> {
        let h = self.instance(os)?;
        let mut nodes: Vec<u32> = h.conf.lock().unwrap().mem.iter().map(|e| e.node).collect();
        nodes.extend(
            h.assigned_cpus_snapshot()
                .into_iter()
                .map(|c| topology::cpu_node(&self.roots, c)),
        );
        nodes.sort_unstable();
        nodes.dedup();
        Ok(OsInfo {
            numa_nodes: nodes,
            pagesizes: os_info_pagesizes(),
        })
    }
}
