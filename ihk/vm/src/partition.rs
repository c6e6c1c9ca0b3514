//! [`Partition`]: builds the VM from a [`BootSpec`], boots the LWK, answers
//! status/kmsg/monitor queries, and tears everything down.
//!
//! Boot order: validate everything (no side effect on bad input) -> create
//! the VM and memslots -> write the boot area (page tables, GDT, image, boot
//! parameters, monitor/kmsg/meminfo/rusage pages, master rings) -> create the
//! vCPUs -> start the master-channel thread and the vCPU threads. The LWK
//! answers with a BOOTED packet on the master channel.
//!
//! Shutdown order: SHUTDOWN packet (LWK stops its CPUs, each writes
//! CPU_OFF_PORT) -> wait up to the timeout -> kick remaining vCPU threads
//! (signal + immediate_exit) -> join -> stop the master thread -> close the
//! VM. Guest memory belongs to the caller and is left as it is.

use crate::boot::elf::KernelImage;
use crate::boot::gdt::gdt_page;
use crate::boot::page_tables::PageTables;
use crate::boot::params::{self, ParamsInput};
use crate::boot::regs::{entry_regs, long_mode_sregs};
use crate::error::VmError;
use crate::ikc::{MasterChannel, MasterHandler};
use crate::kmsg::Kmsg;
use crate::memory::{place_chunks, GuestMemory, GuestRegion};
use crate::monitor::{CpuMonitor, Monitor};
use crate::spec::BootSpec;
use crate::vcpu::{self, VcpuEnd, VcpuInit, VcpuObserver, VcpuThread};
use crate::vm::Vm;
use ihk_abi::layout::*;
use ihk_abi::master::{MasterPacket, MSG_BOOTED, MSG_SHUTDOWN, MSG_WINDOW_RELEASE};
use ihk_abi::meminfo::{MemInfoPage, MEMINFO_MAGIC};
use ihk_abi::ring;
use ihk_abi::rusage::RUSAGE_MAGIC;
use ihk_abi::OsStatus;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

// mcexec attachments (process slots, offload doorbells): partition/offload.rs.
mod offload;
// libihk: ihk_os_freeze/thaw (freeze.rs), rusage, heartbeat period and kmsg
// for ihkmond (stats.rs), ihk_os_makedumpfile (dump.rs, dump/).
mod dump;
mod freeze;
// Share windows: host files mapped MAP_SHARED by LWK processes (share.rs).
mod share;
mod stats;
mod trace;
pub use dump::{DumpLevel, DumpSummary};
pub use stats::{KmsgChunk, Rusage};
pub use trace::{CpuTrace, TraceEntry, TraceInfo};
pub use offload::{AttachRegion, OffloadAttachment};
pub use share::ShareBacking;

/// A booted (or booting) OS instance. `Send + Sync`; dropping it tears the
/// VM down like [`Partition::shutdown`] with a short timeout.
pub struct Partition {
    inner: Arc<Inner>,
    vcpus: Mutex<Vec<VcpuThread>>,
    master: MasterChannel,
    torn_down: Mutex<bool>,
    /// mcexec attachments (partition/offload.rs).
    offload: Arc<offload::OffloadState>,
    // Dropped last: closing the VM fd releases every KVM resource (the
    // share windows hold the VM too, and go with `inner`).
    _vm: Arc<Vm>,
}

struct State {
    booted_after: Option<Duration>,
    /// First fatal event: a vCPU's fatal exit or a broken channel.
    fatal: Option<String>,
    vcpus_alive: usize,
    shutting_down: bool,
}

struct Inner {
    mem: GuestMemory,
    monitor: Monitor,
    kmsg: Kmsg,
    meminfo: *const MemInfoPage,
    /// (Linux CPU, APIC id) per LWK CPU.
    cpus: Vec<(u32, u32)>,
    /// Linux NUMA id per LWK NUMA id.
    numa_linux: Vec<u32>,
    /// Span of the kernel image at KERNEL_VIRT_BASE, and the end of the
    /// boot area in chunk 0 (for memory dumps).
    kernel_span: u64,
    boot_area_end: u64,
    /// Host files shared with LWK processes (share.rs).
    windows: share::ShareWindows,
    /// Set between ihk_os_freeze and ihk_os_thaw (freeze.rs).
    freeze_requested: std::sync::atomic::AtomicBool,
    started: Instant,
    state: Mutex<State>,
    cond: Condvar,
}

// SAFETY: `meminfo` points into guest memory that stays mapped for the
// partition's lifetime and is only read through atomics; every other field
// is Send + Sync.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

impl MasterHandler for Inner {
    fn packet(&self, p: &MasterPacket) {
        if p.msg == MSG_BOOTED {
            let mut s = self.state.lock().unwrap();
            if s.booted_after.is_none() {
                s.booted_after = Some(self.started.elapsed());
            }
            self.cond.notify_all();
        } else if p.msg == MSG_WINDOW_RELEASE {
            self.windows.release(p.args[0]);
        } else {
            tracing::debug!("master channel: packet {p:?}");
            self.cond.notify_all();
        }
    }

    fn doorbell(&self) {
        let _guard = self.state.lock().unwrap();
        self.cond.notify_all();
    }

    fn broken(&self, why: String) {
        let mut s = self.state.lock().unwrap();
        s.fatal.get_or_insert(why);
        self.cond.notify_all();
    }
}

impl VcpuObserver for Inner {
    fn vcpu_ended(&self, lwk_id: u32, end: &VcpuEnd) {
        let mut s = self.state.lock().unwrap();
        s.vcpus_alive = s.vcpus_alive.saturating_sub(1);
        if let VcpuEnd::Fatal(msg) = end {
            tracing::error!(cpu = lwk_id, "vCPU stopped: {msg}");
            if !s.shutting_down {
                s.fatal.get_or_insert_with(|| msg.clone());
            }
        }
        self.cond.notify_all();
    }
}

impl Inner {
    fn panic_message(&self, s: &State) -> Option<String> {
        self.monitor.panic_message().or_else(|| s.fatal.clone())
    }
}

/// Linux CPU -> APIC id, from /proc/cpuinfo (the Linux id when unreadable).
fn host_apic_ids() -> Vec<(u32, u32)> {
    let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cpu = None;
    for line in text.lines() {
        let mut kv = line.splitn(2, ':').map(str::trim);
        match (kv.next(), kv.next()) {
            (Some("processor"), Some(v)) => cpu = v.parse().ok(),
            (Some("apicid"), Some(v)) => {
                if let (Some(c), Ok(a)) = (cpu, v.parse()) {
                    out.push((c, a));
                }
            }
            _ => {}
        }
    }
    out
}

fn realtime_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// Whether the guest may use 1 GiB pages (CPUID 0x80000001 EDX bit 26).
fn gb_pages(cpuid: &kvm_bindings::CpuId) -> bool {
    cpuid
        .as_slice()
        .iter()
        .any(|e| e.function == 0x8000_0001 && e.edx & (1 << 26) != 0)
}

fn nx(cpuid: &kvm_bindings::CpuId) -> bool {
    cpuid
        .as_slice()
        .iter()
        .any(|e| e.function == 0x8000_0001 && e.edx & (1 << 20) != 0)
}

fn check_cpus(spec: &BootSpec) -> Result<(), VmError> {
    if spec.cpus.is_empty() {
        return Err(VmError::invalid(
            "CPUs",
            "no CPU assigned; expected at least one",
        ));
    }
    if spec.chunks.is_empty() {
        return Err(VmError::invalid(
            "memory chunks",
            "no memory assigned; expected at least one chunk",
        ));
    }
    // SAFETY: sysconf has no memory effects.
    let ncpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1) as u32;
    let mut seen = std::collections::HashSet::new();
    for c in &spec.cpus {
        if c.linux_cpu >= ncpus {
            return Err(VmError::invalid(
                "CPUs",
                format!(
                    "Linux CPU {} does not exist; this host has CPUs 0-{}",
                    c.linux_cpu,
                    ncpus - 1
                ),
            ));
        }
        if !seen.insert(c.linux_cpu) {
            return Err(VmError::invalid(
                "CPUs",
                format!("Linux CPU {} assigned twice", c.linux_cpu),
            ));
        }
    }
    Ok(())
}

impl Partition {
    /// Build the VM and start the vCPUs; returns at once (see
    /// [`Partition::wait_booted`]). On error nothing is left running.
    pub fn boot(spec: BootSpec) -> Result<Partition, VmError> {
        let started = Instant::now();
        check_cpus(&spec)?;
        params::check_kargs(&spec.kargs)?;
        let image = KernelImage::parse(&spec.image)?;
        let regions = place_chunks(&spec.chunks)?;
        let host_apic = host_apic_ids();
        let apic_ids: Vec<u32> = spec
            .cpus
            .iter()
            .map(|c| {
                host_apic
                    .iter()
                    .find(|&&(l, _)| l == c.linux_cpu)
                    .map_or(c.linux_cpu, |&(_, a)| a)
            })
            .collect();

        let vm = Arc::new(Vm::new()?);
        if let Some(&a) = apic_ids.iter().find(|&&a| a as usize >= vm.max_vcpu_id()) {
            return Err(VmError::invalid(
                "APIC id",
                format!("{a} exceeds KVM's maximum vCPU id"),
            ));
        }
        let base_cpuid = vcpu::base_cpuid(&vm)?;

        // Page tables first: they validate the layout before memory is touched.
        let mut pt = PageTables::new(PAGE_TABLES_GPA, PAGE_TABLES_SIZE);
        for r in &regions {
            pt.identity_map(r.gpa, r.end(), gb_pages(&base_cpuid))?;
        }
        pt.map_kernel(KERNEL_PHYS_BASE, image.span)?;
        let area_end = boot_area_end(image.span, spec.cpus.len() as u64);
        if regions[0].size < area_end.max(MIN_FIRST_CHUNK_SIZE) {
            return Err(VmError::invalid(
                "memory chunk",
                format!(
                    "first chunk is {} MiB; it must hold the boot area ({} MiB) and be at least {} MiB",
                    regions[0].size >> 20,
                    area_end >> 20,
                    MIN_FIRST_CHUNK_SIZE >> 20
                ),
            ));
        }

        vm.add_memory(&regions)?;
        let mem = GuestMemory::new(regions.clone());

        // vCPUs (created now, run later).
        let stacks = stacks_gpa(image.span);
        let cr3 = pt.cr3();
        let nx = nx(&base_cpuid);
        let sregs_for = move |s| long_mode_sregs(s, cr3, nx);
        let mut prepared = Vec::with_capacity(spec.cpus.len());
        for (i, c) in spec.cpus.iter().enumerate() {
            let top = stacks + (i as u64 + 1) * BOOT_STACK_SIZE;
            prepared.push(vcpu::create(
                &vm,
                VcpuInit {
                    cpuid: &base_cpuid,
                    apic_id: apic_ids[i],
                    lwk_id: i as u32,
                    linux_cpu: c.linux_cpu,
                    sregs_for: &sregs_for,
                    regs: entry_regs(
                        image.entry,
                        BOOT_PARAMS_GPA,
                        KERNEL_PHYS_BASE,
                        i as u32,
                        top,
                    ),
                },
            )?);
        }
        let tsc_khz = prepared[0]
            .fd
            .get_tsc_khz()
            .map_err(VmError::kvm("KVM_GET_TSC_KHZ"))? as u64;

        // Boot area.
        mem.zero(0, KERNEL_PHYS_BASE)?;
        mem.write(PAGE_TABLES_GPA, &pt.to_bytes())?;
        mem.write(GDT_GPA, &gdt_page())?;
        image.load(&mem)?;
        let (boot_tsc, boot_realtime_ns) = (vcpu::rdtsc(), realtime_ns());
        let bp = params::build(&ParamsInput {
            regions: &regions,
            cpus: &spec.cpus,
            apic_ids: &apic_ids,
            kargs: &spec.kargs,
            kernel_span: image.span,
            tsc_khz,
            boot_realtime_ns,
            boot_tsc,
            distance: &params::sysfs_distance,
        })?;
        mem.write_obj(BOOT_PARAMS_GPA, &*bp)?;
        mem.write_obj(MEMINFO_GPA, &MEMINFO_MAGIC)?;
        mem.write_obj(RUSAGE_GPA, &RUSAGE_MAGIC)?;
        let nr_cpus = spec.cpus.len() as u32;
        // SAFETY (all four): the regions are inside chunk 0 (checked by
        // host_ptr), mapped until the Partition is dropped (ChunkSpec
        // contract), and the LWK does not run yet.
        let monitor = unsafe { Monitor::init(mem.host_ptr(MONITOR_GPA, MONITOR_SIZE)?, nr_cpus) };
        let kmsg = unsafe { Kmsg::init(mem.host_ptr(KMSG_GPA, KMSG_SIZE)?, KMSG_SIZE) };
        let to_host = (
            mem.host_ptr(IKC_MASTER_TO_HOST_GPA, IKC_MASTER_RING_SIZE)?,
            IKC_MASTER_RING_SIZE as usize,
        );
        let to_lwk = (
            mem.host_ptr(IKC_MASTER_TO_LWK_GPA, IKC_MASTER_RING_SIZE)?,
            IKC_MASTER_RING_SIZE as usize,
        );
        unsafe { ring::init::<MasterPacket>(to_host.0, to_host.1) }
            .and_then(|_| unsafe { ring::init::<MasterPacket>(to_lwk.0, to_lwk.1) })
            .map_err(|e| VmError::State(format!("master rings: {e:?}")))?;
        // SAFETY: the meminfo page is inside chunk 0 (checked), zeroed above.
        let meminfo = unsafe { mem.shared::<MemInfoPage>(MEMINFO_GPA)? } as *const MemInfoPage;

        let numa_linux = params::numa_nodes(&regions, &spec.cpus);
        let inner = Arc::new(Inner {
            mem,
            monitor,
            kmsg,
            meminfo,
            cpus: spec
                .cpus
                .iter()
                .zip(&apic_ids)
                .map(|(c, &a)| (c.linux_cpu, a))
                .collect(),
            numa_linux,
            kernel_span: image.span,
            boot_area_end: area_end,
            windows: share::ShareWindows::new(vm.clone(), regions.len() as u32),
            freeze_requested: std::sync::atomic::AtomicBool::new(false),
            started,
            state: Mutex::new(State {
                booted_after: None,
                fatal: None,
                vcpus_alive: 0,
                shutting_down: false,
            }),
            cond: Condvar::new(),
        });
        // SAFETY: ring regions stay mapped for the partition's lifetime and
        // the host holds no other handle to them.
        let master =
            unsafe { MasterChannel::new(&vm, to_host, to_lwk, apic_ids[0], inner.clone())? };

        let part = Partition {
            inner: inner.clone(),
            vcpus: Mutex::new(Vec::new()),
            master,
            torn_down: Mutex::new(false),
            offload: Arc::new(offload::OffloadState::new(nr_cpus as usize)),
            _vm: vm,
        };
        for v in prepared {
            let lwk_id = v.lwk_id;
            inner.state.lock().unwrap().vcpus_alive += 1;
            match VcpuThread::spawn(v, inner.clone()) {
                Ok(t) => part.vcpus.lock().unwrap().push(t),
                Err(e) => {
                    inner.state.lock().unwrap().vcpus_alive -= 1;
                    tracing::error!(cpu = lwk_id, "{e}");
                    // Dropping `part` kicks and joins the threads started.
                    return Err(e);
                }
            }
        }
        tracing::info!(
            cpus = nr_cpus,
            mem_mib = regions.iter().map(|r| r.size).sum::<u64>() >> 20,
            "LWK partition started in {:?}",
            started.elapsed()
        );
        Ok(part)
    }

    /// Wait until the LWK acknowledged the master channel (status RUNNING).
    /// `Err(Panic)` when it panicked or a vCPU died, `Err(Timeout)` when it
    /// did neither in time.
    pub fn wait_booted(&self, timeout: Duration) -> Result<(), VmError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.inner.state.lock().unwrap();
        loop {
            if let Some(msg) = self.inner.panic_message(&s) {
                return Err(VmError::Panic { msg });
            }
            if s.booted_after.is_some() {
                return Ok(());
            }
            if s.vcpus_alive == 0 {
                return Err(VmError::State(
                    "all vCPUs stopped before the LWK booted".into(),
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(VmError::Timeout {
                    what: "the LWK to boot",
                    ms: timeout.as_millis() as u64,
                });
            }
            // The monitor page is also polled: a panic on a CPU that cannot
            // ring the doorbell still shows up.
            let wait = (deadline - now).min(Duration::from_millis(5));
            s = self.inner.cond.wait_timeout(s, wait).unwrap().0;
        }
    }

    /// Time from [`Partition::boot`] to the LWK's BOOTED packet.
    pub fn boot_time(&self) -> Option<Duration> {
        self.inner.state.lock().unwrap().booted_after
    }

    pub fn status(&self) -> OsStatus {
        let s = self.inner.state.lock().unwrap();
        let lwk = self.inner.monitor.status();
        if lwk == OsStatus::Panic || (s.fatal.is_some() && !s.shutting_down) {
            OsStatus::Panic
        } else if s.shutting_down || lwk == OsStatus::Shutdown {
            OsStatus::Shutdown
        } else if s.booted_after.is_some() {
            self.freeze_status().unwrap_or(OsStatus::Running)
        } else {
            OsStatus::Booting
        }
    }

    /// The kernel message buffer's text.
    pub fn kmsg(&self) -> String {
        self.inner.kmsg.read()
    }

    pub fn clear_kmsg(&self) {
        self.inner.kmsg.clear()
    }

    /// Free bytes per Linux NUMA node as the LWK's allocator reports them
    /// (empty until the allocator is up).
    pub fn free_mem(&self) -> Vec<(u32, u64)> {
        // SAFETY: see `Inner`'s Send/Sync justification.
        let m = unsafe { &*self.inner.meminfo };
        (0..m.nodes().min(self.inner.numa_linux.len()))
            .map(|i| {
                (
                    self.inner.numa_linux[i],
                    m.free_bytes[i].load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Per-CPU heartbeat and state.
    pub fn monitor(&self) -> Vec<CpuMonitor> {
        self.inner.monitor.cpus(&self.inner.cpus)
    }

    /// Guest-physical placement of the chunks (for mcexec's mappings).
    pub fn guest_layout(&self) -> Vec<GuestRegion> {
        self.inner.mem.regions().to_vec()
    }

    /// Stop the LWK and the VM. Never hangs: CPUs that do not stop within
    /// `timeout` are kicked out of KVM_RUN.
    pub fn shutdown(self, timeout: Duration) -> Result<(), VmError> {
        self.teardown(timeout)
    }

    fn teardown(&self, timeout: Duration) -> Result<(), VmError> {
        let mut done = self.torn_down.lock().unwrap();
        if *done {
            return Ok(());
        }
        *done = true;
        // Attachments must not touch guest memory from now on.
        self.offload.shut();
        self.inner.windows.close();
        let graceful = {
            let mut s = self.inner.state.lock().unwrap();
            s.shutting_down = true;
            s.vcpus_alive > 0 && s.fatal.is_none() && self.inner.monitor.status() != OsStatus::Panic
        };
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        if graceful {
            if let Err(e) = self.master.send(&MasterPacket::new(MSG_SHUTDOWN, 0), true) {
                tracing::warn!("sending SHUTDOWN to the LWK: {e}");
            } else {
                let mut s = self.inner.state.lock().unwrap();
                while s.vcpus_alive > 0 {
                    let now = Instant::now();
                    if now >= deadline {
                        timed_out = true;
                        break;
                    }
                    s = self.inner.cond.wait_timeout(s, deadline - now).unwrap().0;
                }
            }
        }
        let mut vcpus = self.vcpus.lock().unwrap();
        if graceful && !timed_out {
            // Every CPU reported its stop; their threads may still be on the
            // way out of KVM_RUN. Give them a moment before kicking.
            let settle = Instant::now() + Duration::from_millis(200);
            while vcpus.iter().any(|v| !v.finished()) && Instant::now() < settle {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let kick_start = Instant::now();
        let mut kicked = false;
        while vcpus.iter().any(|v| !v.finished()) {
            if kick_start.elapsed() > Duration::from_secs(10) {
                // A thread KVM_RUN never returns for (not seen in practice):
                // leave it rather than hang the caller.
                tracing::error!("vCPU threads ignore kicks; leaving them behind");
                for v in vcpus.iter_mut().filter(|v| !v.finished()) {
                    std::mem::forget(v.handle.take());
                }
                break;
            }
            for v in vcpus.iter().filter(|v| !v.finished()) {
                v.kick();
            }
            kicked = true;
            std::thread::sleep(Duration::from_millis(2));
        }
        for v in vcpus.iter_mut() {
            if let Some(VcpuEnd::Fatal(m)) = v.join() {
                tracing::debug!(cpu = v.lwk_id, "vCPU ended: {m}");
            }
        }
        if kicked && graceful && timed_out {
            tracing::warn!(
                "the LWK did not stop its CPUs within {timeout:?}; vCPUs were stopped by force"
            );
        } else if kicked && graceful {
            tracing::warn!("the LWK stopped its CPUs but their threads had to be kicked out of KVM_RUN");
        }
        self.master.stop();
        Ok(())
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = self.teardown(Duration::from_millis(500));
    }
}

impl Partition {
    /// Make `len` bytes of the host file `fd` at `offset` the share window
    /// at guest-physical `gpa` (`partition/share.rs`). mcexec asks, on
    /// behalf of the LWK, which chose `gpa`.
    pub fn share_window(&self, backing: ShareBacking, gpa: u64, len: u64, offset: u64, writable: bool) -> Result<(), VmError> {
        self.inner.windows.create(backing, gpa, len, offset, writable)
    }

    /// Remove the share window at `gpa` (its creation could not be
    /// reported to the LWK).
    pub fn unshare_window(&self, gpa: u64) {
        self.inner.windows.release(gpa)
    }
}
