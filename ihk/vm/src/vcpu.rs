//! vCPUs: creation (CPUID passed through with the hypervisor, x2APIC and
//! TSC-deadline bits and this vCPU's APIC id; guest TSC = host TSC; long-mode
//! registers), and one thread per vCPU pinned to its Linux CPU running
//! KVM_RUN until the LWK turns the CPU off, a fatal exit, or a kick.
//!
//! Kick (Firecracker's scheme): the stopper sets the thread's stop flag and
//! sends [`kick_signal`] to the thread; the handler sets `immediate_exit` in
//! the thread's `kvm_run`, so KVM_RUN returns EINTR whether the vCPU is in
//! guest mode, halted, or just about to enter. Repeated kicks make it
//! impossible to miss.

use crate::error::VmError;
use crate::vm::Vm;
use ihk_abi::doorbell::{CPU_OFF_PORT, DEBUGCON_PORT};
use kvm_bindings::{
    kvm_device_attr, kvm_fpu, kvm_mp_state, kvm_regs, kvm_run, kvm_sregs, CpuId,
    KVM_MAX_CPUID_ENTRIES, KVM_MP_STATE_RUNNABLE, KVM_VCPU_TSC_CTRL, KVM_VCPU_TSC_OFFSET,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;

// Registers of a running vCPU, read by its own thread (memory dumps).
mod snapshot;
pub use snapshot::VcpuRegs;
use snapshot::RegsSlot;

/// Signal used to kick vCPU threads out of KVM_RUN: `SIGRTMIN() + 4`.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN() + 4
}

thread_local! {
    /// This thread's `kvm_run` page, for the kick signal handler.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let run = KVM_RUN.with(|r| r.get());
    if !run.is_null() {
        // SAFETY: the pointer is this thread's own kvm_run mapping, set
        // before the first KVM_RUN and cleared before the VcpuFd is dropped;
        // a byte store is async-signal-safe.
        unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!((*run).immediate_exit), 1) };
    }
}

fn install_kick_handler() -> Result<(), VmError> {
    static ONCE: Once = Once::new();
    let mut res = Ok(());
    ONCE.call_once(|| {
        res = vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler)
            .map_err(VmError::kvm("sigaction(vCPU kick signal)"));
    });
    res
}

/// CPUID for one vCPU: the host's as KVM supports it, with this vCPU's APIC
/// id and the hypervisor, x2APIC and TSC-deadline bits.
pub(crate) fn vcpu_cpuid(base: &CpuId, apic_id: u32, tsc_deadline: bool) -> CpuId {
    let mut c = base.clone();
    for e in c.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x00ff_ffff) | ((apic_id & 0xff) << 24);
                e.ecx |= 1 << 31 | 1 << 21;
                if tsc_deadline {
                    e.ecx |= 1 << 24;
                }
            }
            0xb | 0x1f => e.edx = apic_id,
            0x8000_001e => e.eax = apic_id,
            _ => {}
        }
    }
    c
}

/// A vCPU ready to run: created, registers set, runnable.
pub(crate) struct PreparedVcpu {
    pub fd: VcpuFd,
    pub lwk_id: u32,
    pub linux_cpu: u32,
}

pub(crate) struct VcpuInit<'a> {
    pub cpuid: &'a CpuId,
    pub apic_id: u32,
    pub lwk_id: u32,
    pub linux_cpu: u32,
    pub sregs_for: &'a dyn Fn(kvm_sregs) -> kvm_sregs,
    pub regs: kvm_regs,
}

pub(crate) fn base_cpuid(vm: &Vm) -> Result<CpuId, VmError> {
    vm.kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(VmError::kvm("KVM_GET_SUPPORTED_CPUID"))
}

pub(crate) fn create(vm: &Vm, init: VcpuInit) -> Result<PreparedVcpu, VmError> {
    let fd = vm
        .fd
        .create_vcpu(init.apic_id as u64)
        .map_err(VmError::kvm("KVM_CREATE_VCPU"))?;
    let tsc_deadline = vm.kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
    fd.set_cpuid2(&vcpu_cpuid(init.cpuid, init.apic_id, tsc_deadline))
        .map_err(VmError::kvm("KVM_SET_CPUID2"))?;
    let sregs = fd.get_sregs().map_err(VmError::kvm("KVM_GET_SREGS"))?;
    fd.set_sregs(&(init.sregs_for)(sregs))
        .map_err(VmError::kvm("KVM_SET_SREGS"))?;
    fd.set_regs(&init.regs)
        .map_err(VmError::kvm("KVM_SET_REGS"))?;
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    fd.set_fpu(&fpu).map_err(VmError::kvm("KVM_SET_FPU"))?;
    set_tsc_offset_zero(&fd);
    // With an in-kernel LAPIC, every vCPU but the boot one waits for
    // INIT/SIPI; ours are all entered directly.
    fd.set_mp_state(kvm_mp_state {
        mp_state: KVM_MP_STATE_RUNNABLE,
    })
    .map_err(VmError::kvm("KVM_SET_MP_STATE"))?;
    Ok(PreparedVcpu {
        fd,
        lwk_id: init.lwk_id,
        linux_cpu: init.linux_cpu,
    })
}

/// Make the guest TSC read the host TSC, so the boot parameters' (realtime,
/// TSC) pair holds in the guest. Kernels without the attribute (before 5.16)
/// get the host TSC written to IA32_TSC instead (KVM keeps vCPUs in sync).
fn set_tsc_offset_zero(fd: &VcpuFd) {
    let offset: u64 = 0;
    let attr = kvm_device_attr {
        flags: 0,
        group: KVM_VCPU_TSC_CTRL,
        attr: KVM_VCPU_TSC_OFFSET as u64,
        addr: &offset as *const u64 as u64,
    };
    // SAFETY: KVM_SET_DEVICE_ATTR on a vCPU fd reads one kvm_device_attr
    // and, for this attribute, the u64 at `addr`; both outlive the call.
    let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(fd, KVM_SET_DEVICE_ATTR(), &attr) };
    if ret != 0 {
        tracing::debug!(
            "KVM_VCPU_TSC_OFFSET not available: {}",
            std::io::Error::last_os_error()
        );
        const IA32_TSC: u32 = 0x10;
        let msrs = kvm_bindings::Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
            index: IA32_TSC,
            data: rdtsc(),
            ..Default::default()
        }]);
        if let Err(e) = msrs
            .map_err(|e| format!("{e:?}"))
            .and_then(|m| fd.set_msrs(&m).map_err(|e| e.to_string()))
        {
            tracing::warn!("cannot align the guest TSC with the host's: {e}");
        }
    }
}

// kvm-ioctls offers the vCPU device-attribute ioctl only on aarch64.
vmm_sys_util::ioctl_iow_nr!(
    KVM_SET_DEVICE_ATTR,
    kvm_bindings::KVMIO,
    0xe1,
    kvm_device_attr
);

/// Host TSC now.
pub(crate) fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; x86_64 always has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// How a vCPU thread ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VcpuEnd {
    /// The LWK wrote CPU_OFF_PORT (orderly shutdown).
    Off,
    /// Stopped by a kick.
    Kicked,
    /// A fatal exit: the LWK is dead on this CPU.
    Fatal(String),
}

/// Notifications from vCPU threads to the partition.
pub(crate) trait VcpuObserver: Send + Sync + 'static {
    fn vcpu_ended(&self, lwk_id: u32, end: &VcpuEnd);
}

/// A running vCPU thread.
pub(crate) struct VcpuThread {
    pub lwk_id: u32,
    pub stop: Arc<AtomicBool>,
    pub handle: Option<JoinHandle<VcpuEnd>>,
    regs: Arc<RegsSlot>,
}

impl VcpuThread {
    /// Start the thread; returns once it is pinned to its Linux CPU (or
    /// with the reason it could not be).
    pub fn spawn(v: PreparedVcpu, obs: Arc<dyn VcpuObserver>) -> Result<VcpuThread, VmError> {
        install_kick_handler()?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let regs = Arc::new(RegsSlot::default());
        let slot = regs.clone();
        let lwk_id = v.lwk_id;
        let linux_cpu = v.linux_cpu;
        let (pinned_tx, pinned_rx) = std::sync::mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name(format!("ihk-vcpu{}", v.lwk_id))
            .spawn(move || {
                let pinned = pin_to(v.linux_cpu);
                let ok = pinned.is_ok();
                let _ = pinned_tx.send(pinned);
                if !ok {
                    return VcpuEnd::Kicked;
                }
                let id = v.lwk_id;
                let end = run(v, &s, &slot);
                obs.vcpu_ended(id, &end);
                end
            })
            .map_err(VmError::io("spawning a vCPU thread"))?;
        // Report a CPU we may not run on (cpuset, offline) as a boot error.
        match pinned_rx.recv() {
            Ok(Ok(())) => Ok(VcpuThread {
                lwk_id,
                stop,
                handle: Some(handle),
                regs,
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(VmError::Io {
                    op: "pinning a vCPU thread",
                    source: std::io::Error::other(e),
                })
            }
            Err(_) => {
                let _ = handle.join();
                Err(VmError::State(format!(
                    "vCPU thread for Linux CPU {linux_cpu} died at start"
                )))
            }
        }
    }

    pub fn finished(&self) -> bool {
        self.handle.as_ref().map_or(true, |h| h.is_finished())
    }

    /// Ask the thread to leave KVM_RUN now (idempotent, never blocks).
    pub fn kick(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = &self.handle {
            if !h.is_finished() {
                use std::os::unix::thread::JoinHandleExt;
                // SAFETY: the pthread_t belongs to a thread we spawned and
                // have not joined, so it is valid; the signal has a handler.
                unsafe { libc::pthread_kill(h.as_pthread_t(), kick_signal()) };
            }
        }
    }

    /// The vCPU's registers now (the guest goes on running); None when the
    /// thread has ended or does not answer within `timeout`.
    pub fn registers(&self, timeout: std::time::Duration) -> Option<VcpuRegs> {
        let h = self.handle.as_ref()?;
        self.regs.request();
        use std::os::unix::thread::JoinHandleExt;
        let pthread = h.as_pthread_t();
        self.regs.wait(
            timeout,
            || {
                if !h.is_finished() {
                    // SAFETY: the pthread_t belongs to a thread we spawned
                    // and have not joined; the signal has a handler that
                    // only sets immediate_exit (no stop flag: it goes on).
                    unsafe { libc::pthread_kill(pthread, kick_signal()) };
                }
            },
            || !h.is_finished(),
        )
    }

    pub fn join(&mut self) -> Option<VcpuEnd> {
        self.handle.take().map(|h| {
            h.join()
                .unwrap_or_else(|_| VcpuEnd::Fatal("vCPU thread panicked".into()))
        })
    }
}

fn pin_to(cpu: u32) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu as usize)
        .map_err(|e| format!("CPU {cpu}: {e}"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("pinning vCPU thread to CPU {cpu}: {e}"))
}

/// The run loop of one vCPU thread.
fn run(mut v: PreparedVcpu, stop: &AtomicBool, regs: &RegsSlot) -> VcpuEnd {
    let run_ptr: *mut kvm_run = v.fd.get_kvm_run();
    KVM_RUN.with(|r| r.set(run_ptr));
    let mut line = Vec::new();
    let end = loop {
        if stop.load(Ordering::SeqCst) {
            break VcpuEnd::Kicked;
        }
        regs.serve(&v.fd);
        match v.fd.run() {
            Ok(VcpuExit::IoOut(CPU_OFF_PORT, _)) => break VcpuEnd::Off,
            Ok(VcpuExit::IoOut(DEBUGCON_PORT, data)) => {
                for &b in data {
                    if b == b'\n' {
                        tracing::debug!(cpu = v.lwk_id, "lwk: {}", String::from_utf8_lossy(&line));
                        line.clear();
                    } else if line.len() < 4096 {
                        line.push(b);
                    }
                }
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                tracing::warn!(
                    cpu = v.lwk_id,
                    "LWK wrote {data:?} to unknown I/O port {port:#x}"
                );
            }
            Ok(VcpuExit::IoIn(_, data)) => data.fill(0xff),
            Ok(VcpuExit::Intr) => {}
            Ok(VcpuExit::Shutdown) => {
                break VcpuEnd::Fatal(format!(
                    "CPU {}: triple fault (KVM_EXIT_SHUTDOWN)",
                    v.lwk_id
                ))
            }
            Ok(VcpuExit::FailEntry(reason, _)) => {
                break VcpuEnd::Fatal(format!(
                    "CPU {}: VM entry failed, reason {reason:#x}",
                    v.lwk_id
                ))
            }
            Ok(VcpuExit::InternalError) => {
                break VcpuEnd::Fatal(format!("CPU {}: KVM internal error", v.lwk_id))
            }
            Ok(VcpuExit::Hlt) => break VcpuEnd::Fatal(format!("CPU {}: halted", v.lwk_id)),
            Ok(other) => {
                break VcpuEnd::Fatal(format!("CPU {}: unexpected VM exit {other:?}", v.lwk_id))
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                v.fd.set_kvm_immediate_exit(0);
            }
            Err(e) => break VcpuEnd::Fatal(format!("CPU {}: KVM_RUN failed: {e}", v.lwk_id)),
        }
    };
    KVM_RUN.with(|r| r.set(std::ptr::null_mut()));
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    #[test]
    fn cpuid_patch_sets_apic_id_and_feature_bits() {
        let entries = [
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0x0102_0304,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 1,
                edx: 0,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 7,
                ebx: 5,
                ..Default::default()
            },
        ];
        let base = CpuId::from_entries(&entries).unwrap();
        let c = vcpu_cpuid(&base, 0x123, true);
        let e = c.as_slice();
        assert_eq!(e[0].ebx, 0x2302_0304);
        assert_ne!(e[0].ecx & (1 << 31), 0, "hypervisor bit");
        assert_ne!(e[0].ecx & (1 << 24), 0, "TSC deadline");
        assert_ne!(e[0].ecx & (1 << 21), 0, "x2APIC");
        assert_eq!(e[1].edx, 0x123);
        assert_eq!(e[2].ebx, 5);
    }
}
