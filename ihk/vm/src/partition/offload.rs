//! mcexec attachments (ARCHITECTURE.md §5; owned by the mcexec work, kept
//! apart from the rest of the partition): claiming a process slot of the
//! LWK's offload area for an `mcexec`, the doorbells it needs, and telling
//! the LWK when that `mcexec` is gone.
//!
//! Doorbells, created on first use and kept for the partition's life: one
//! ioeventfd per process slot (datamatch `process_doorbell(slot)` on the
//! IKC doorbell port: the LWK rings its proxy without a VM exit to user
//! space) and one irqfd per LWK CPU (MSI with `OFFLOAD_VECTOR` to that CPU:
//! proxies wake the LWK CPU waiting for an answer).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use ihk_abi::doorbell::IKC_DOORBELL_PORT;
use ihk_abi::offload::{
    process_doorbell, process_slot_offset, OffloadAreaHeader, ProcState, ProcessSlot, EVENT_PROXY_GONE,
    MAX_PROCESSES, NO_FORK, OFFLOAD_AREA_GPA, OFFLOAD_AREA_SIZE, OFFLOAD_MAGIC, OFFLOAD_VECTOR, OFFLOAD_VERSION,
};
use ihk_abi::OsStatus;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::Partition;
use crate::error::VmError;
use crate::memory::GuestRegion;

/// Per-partition offload state shared with live attachments.
pub(crate) struct OffloadState {
    inner: Mutex<StateInner>,
}

struct StateInner {
    /// False once the partition is torn down: guest memory may be reused,
    /// attachments must not touch it any more.
    alive: bool,
    /// Host address of the offload area.
    area: usize,
    doorbells: Vec<Option<EventFd>>,
    irqfds: Vec<Option<EventFd>>,
}

impl OffloadState {
    pub(crate) fn new(nr_cpus: usize) -> OffloadState {
        OffloadState {
            inner: Mutex::new(StateInner {
                alive: true,
                area: 0,
                doorbells: (0..MAX_PROCESSES).map(|_| None).collect(),
                irqfds: (0..nr_cpus).map(|_| None).collect(),
            }),
        }
    }

    /// The partition is going away (called before its memory is released).
    pub(crate) fn shut(&self) {
        self.inner.lock().unwrap().alive = false;
    }
}

/// One guest memory region as mcexec maps it.
#[derive(Debug, Clone, Copy)]
pub struct AttachRegion {
    pub gpa: u64,
    pub size: u64,
    /// The region's memfd (owned by the partition's caller) and the offset
    /// of `gpa` in it.
    pub memfd: RawFd,
    pub memfd_offset: u64,
    /// Page size of the memfd (huge page size for hugetlbfs).
    pub page_size: u64,
}

/// A process slot claimed for one mcexec. Dropping it tells the LWK that
/// the proxy is gone (the LWK then ends the process if it still runs).
pub struct OffloadAttachment {
    pub slot: u32,
    /// LWK CPU chosen for the process's main thread.
    pub cpu: u32,
    /// The process's CPU set: LWK CPUs `cpu_first .. cpu_first + cpu_count`
    /// (its share with `mcexec -n`, else the whole partition).
    pub cpu_first: u32,
    pub cpu_count: u32,
    pub nr_cpus: u32,
    pub offload_area_gpa: u64,
    /// Duplicates for mcexec: the slot's doorbell and the irqfd of each CPU
    /// of the set, in CPU order.
    pub doorbell: EventFd,
    pub irqfds: Vec<EventFd>,
    pub regions: Vec<AttachRegion>,
    state: Arc<OffloadState>,
}

fn slot_at(area: usize, i: usize) -> &'static ProcessSlot {
    // SAFETY: `area` is the host address of the offload area inside guest
    // memory, mapped while `alive` (checked by every caller under the lock);
    // the slot is used through its atomics.
    unsafe { &*((area + process_slot_offset(i)) as *const ProcessSlot) }
}

fn page_size_of(fd: RawFd) -> u64 {
    // SAFETY: fstat on a descriptor the partition's caller keeps open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } == 0 && st.st_blksize > 0 {
        st.st_blksize as u64
    } else {
        4096
    }
}

impl Partition {
    /// Claim a process slot for the mcexec with host pid `host_pid`.
    /// With `per_node` (mcexec -n), the process gets one of `per_node`
    /// shares of the LWK CPUs: `local_rank`'s, or else the least used one;
    /// without, all of them. Its main thread starts on the least loaded CPU
    /// of that set.
    pub fn offload_attach(
        &self,
        host_pid: u32,
        local_rank: Option<u32>,
        per_node: Option<u32>,
    ) -> Result<OffloadAttachment, VmError> {
        if self.status() != OsStatus::Running {
            return Err(VmError::State(format!("the OS instance is {}", self.status().as_str())));
        }
        let mem = &self.inner.mem;
        let area = mem.host_ptr(OFFLOAD_AREA_GPA, OFFLOAD_AREA_SIZE)? as usize;
        let nr_cpus = self.inner.cpus.len();
        let mut st = self.offload.inner.lock().unwrap();
        if !st.alive {
            return Err(VmError::State("the OS instance is shutting down".into()));
        }
        st.area = area;
        // SAFETY: the header is inside guest memory (host_ptr checked).
        let h = unsafe { &*(area as *const OffloadAreaHeader) };
        if h.magic != OFFLOAD_MAGIC || h.version != OFFLOAD_VERSION || h.nr_slots as usize != MAX_PROCESSES {
            return Err(VmError::State(
                "the LWK has no offload area (an LWK image without process support?)".into(),
            ));
        }
        // Processes per LWK CPU (main threads), from the claimed slots.
        let mut load = vec![0u32; nr_cpus];
        for i in 0..MAX_PROCESSES {
            let s = slot_at(area, i);
            let state = s.state.load(Ordering::Acquire);
            // Processes that live (not those ended, waiting for their proxy
            // to go).
            if [ProcState::Claimed, ProcState::Start, ProcState::Running].iter().any(|&x| x as u32 == state) {
                // SAFETY: `start.cpu` and `start.fork_from_slot` are
                // written at claim time (below) and by mcexec before
                // START; a torn value only skews this heuristic.
                let (c, forked) = unsafe {
                    (std::ptr::read_volatile(&s.start.cpu) as usize, std::ptr::read_volatile(&s.start.fork_from_slot))
                };
                // A fork child lives in its parent's share: it does not
                // count against the shares of `-n` processes.
                if c < nr_cpus && forked == NO_FORK {
                    load[c] += 1;
                }
            }
        }
        // The process's share of the CPUs: the rank's with `-n` and a
        // launcher's local rank; with `-n` alone, the share fewest processes
        // use (so `mcexec -n 2` twice at once gets both halves); without
        // `-n`, all of them. Then its least loaded CPU.
        let share = |r: usize, n: usize| {
            let first = r * nr_cpus / n;
            let end = ((r + 1) * nr_cpus / n).max(first + 1).min(nr_cpus);
            (first, end - first)
        };
        let (first, count) = match (local_rank, per_node) {
            (Some(r), Some(n)) if n > 0 => share((r % n) as usize, n as usize),
            (None, Some(n)) if n > 0 => {
                let n = n as usize;
                let r = (0..n)
                    .min_by_key(|&r| {
                        let (f, c) = share(r, n);
                        load[f..f + c].iter().sum::<u32>()
                    })
                    .unwrap_or(0);
                share(r, n)
            }
            _ => (0, nr_cpus),
        };
        let cpu = (first..first + count).min_by_key(|&c| load[c]).unwrap_or(first) as u32;
        let slot = (0..MAX_PROCESSES)
            .find(|&i| {
                slot_at(area, i)
                    .state
                    .compare_exchange(ProcState::Free as u32, ProcState::Claimed as u32, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
            .ok_or_else(|| VmError::State(format!("all {MAX_PROCESSES} process slots are in use")))?;
        let s = slot_at(area, slot);
        s.host_pid.store(host_pid, Ordering::Release);
        let sp = (area + process_slot_offset(slot)) as *mut ProcessSlot;
        // SAFETY: the slot is CLAIMED by us (nobody else writes it now);
        // mcexec writes `start` later.
        unsafe {
            std::ptr::addr_of_mut!((*sp).start.cpu).write_volatile(cpu);
            std::ptr::addr_of_mut!((*sp).start.fork_from_slot).write_volatile(NO_FORK);
        }
        let prepared = (|| -> Result<(EventFd, Vec<EventFd>), VmError> {
            if st.doorbells[slot].is_none() {
                let efd = EventFd::new(EFD_NONBLOCK).map_err(VmError::io("eventfd"))?;
                self._vm.add_port_ioeventfd(&efd, IKC_DOORBELL_PORT, process_doorbell(slot as u32))?;
                st.doorbells[slot] = Some(efd);
            }
            let mut irqs = Vec::with_capacity(count);
            for c in first..first + count {
                if st.irqfds[c].is_none() {
                    let efd = EventFd::new(EFD_NONBLOCK).map_err(VmError::io("eventfd"))?;
                    self._vm.add_msi_irqfd(&efd, self.inner.cpus[c].1, OFFLOAD_VECTOR)?;
                    st.irqfds[c] = Some(efd);
                }
                irqs.push(st.irqfds[c].as_ref().unwrap().try_clone().map_err(VmError::io("dup eventfd"))?);
            }
            let db = st.doorbells[slot].as_ref().unwrap();
            // Drop counts left by the slot's previous process.
            let _ = db.read();
            let db = db.try_clone().map_err(VmError::io("dup eventfd"))?;
            Ok((db, irqs))
        })();
        let (doorbell, irqfds) = match prepared {
            Ok(v) => v,
            Err(e) => {
                s.state.store(ProcState::Free as u32, Ordering::Release);
                return Err(e);
            }
        };
        drop(st);
        let regions = mem
            .regions()
            .iter()
            .map(|r: &GuestRegion| AttachRegion {
                gpa: r.gpa,
                size: r.size,
                memfd: r.memfd,
                memfd_offset: r.memfd_offset,
                page_size: page_size_of(r.memfd),
            })
            .collect();
        Ok(OffloadAttachment {
            slot: slot as u32,
            cpu,
            cpu_first: first as u32,
            cpu_count: count as u32,
            nr_cpus: nr_cpus as u32,
            offload_area_gpa: OFFLOAD_AREA_GPA,
            doorbell,
            irqfds,
            regions,
            state: Arc::clone(&self.offload),
        })
    }
}

impl OffloadAttachment {
    /// Descriptors to pass to mcexec, in the order of the attach reply:
    /// doorbell, the irqfds of the CPU set, then one memfd per region.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.doorbell.as_raw_fd()];
        v.extend(self.irqfds.iter().map(|f| f.as_raw_fd()));
        v.extend(self.regions.iter().map(|r| r.memfd));
        v
    }
}

impl Drop for OffloadAttachment {
    fn drop(&mut self) {
        let st = self.state.inner.lock().unwrap();
        if !st.alive {
            return;
        }
        let s = slot_at(st.area, self.slot as usize);
        // Never started (or failed to): the slot is free again at once.
        for from in [ProcState::Claimed, ProcState::Failed] {
            if s.state
                .compare_exchange(from as u32, ProcState::Free as u32, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
        s.events.fetch_or(EVENT_PROXY_GONE, Ordering::SeqCst);
        // SAFETY: see the CLAIMED store above.
        let cpu = unsafe { std::ptr::read_volatile(&s.start.cpu) } as usize;
        if let Some(Some(irq)) = st.irqfds.get(cpu) {
            let _ = irq.write(1);
        }
    }
}
