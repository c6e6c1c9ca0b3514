//! The KVM VM of one partition: in-kernel irqchip (LAPICs in x2APIC-capable
//! mode), one memslot per guest memory region, MSI routes for irqfds, and
//! ioeventfds. Dropping it closes the VM fd, which frees every KVM resource.

use crate::error::VmError;
use crate::memory::GuestRegion;
use kvm_bindings::{
    kvm_enable_cap, kvm_irq_routing_entry, kvm_userspace_memory_region, KvmIrqRouting,
    KVM_CAP_X2APIC_API, KVM_IRQ_ROUTING_MSI, KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK,
    KVM_X2APIC_API_USE_32BIT_IDS,
};
use kvm_ioctls::{Cap, IoEventAddress, Kvm, VmFd};
use std::sync::Mutex;
use vmm_sys_util::eventfd::EventFd;

/// Where KVM may put the real-mode TSS on Intel (three pages, inside the MMIO
/// hole, never guest memory).
const TSS_ADDRESS: usize = 0xfffb_d000;
/// First GSI used for MSI routes (0..23 belong to the emulated IOAPIC).
const FIRST_MSI_GSI: u32 = 24;

pub(crate) struct Vm {
    pub kvm: Kvm,
    pub fd: VmFd,
    /// 32-bit x2APIC ids in MSI routes (KVM_CAP_X2APIC_API enabled).
    x2apic_api: bool,
    routes: Mutex<Vec<kvm_irq_routing_entry>>,
}

impl Vm {
    pub fn new() -> Result<Vm, VmError> {
        let kvm = Kvm::new().map_err(VmError::kvm("open /dev/kvm"))?;
        let fd = kvm.create_vm().map_err(VmError::kvm("KVM_CREATE_VM"))?;
        fd.set_tss_address(TSS_ADDRESS)
            .map_err(VmError::kvm("KVM_SET_TSS_ADDR"))?;
        fd.create_irq_chip()
            .map_err(VmError::kvm("KVM_CREATE_IRQCHIP"))?;
        let mut x2apic_api = false;
        if kvm.check_extension(Cap::X2ApicApi) {
            let cap = kvm_enable_cap {
                cap: KVM_CAP_X2APIC_API,
                args: [
                    (KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK) as u64,
                    0,
                    0,
                    0,
                ],
                ..Default::default()
            };
            fd.enable_cap(&cap)
                .map_err(VmError::kvm("KVM_ENABLE_CAP(X2APIC_API)"))?;
            x2apic_api = true;
        }
        Ok(Vm {
            kvm,
            fd,
            x2apic_api,
            routes: Mutex::new(Vec::new()),
        })
    }

    /// Highest vCPU id (= APIC id) this KVM accepts, plus one.
    pub fn max_vcpu_id(&self) -> usize {
        self.kvm.get_max_vcpu_id()
    }

    /// One memslot per region.
    pub fn add_memory(&self, regions: &[GuestRegion]) -> Result<(), VmError> {
        let slots = self.kvm.get_nr_memslots();
        if regions.len() > slots {
            return Err(VmError::invalid(
                "memory chunks",
                format!(
                    "{} guest regions; KVM supports {slots} memslots",
                    regions.len()
                ),
            ));
        }
        for (i, r) in regions.iter().enumerate() {
            let region = kvm_userspace_memory_region {
                slot: i as u32,
                flags: 0,
                guest_phys_addr: r.gpa,
                memory_size: r.size,
                userspace_addr: r.host_addr as u64,
            };
            // SAFETY: the region is a mapping of `size` bytes that the caller
            // keeps alive for the partition's lifetime (ChunkSpec contract),
            // which outlives this VM fd.
            unsafe { self.fd.set_user_memory_region(region) }
                .map_err(VmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        }
        Ok(())
    }

    /// Route a new GSI as an MSI with `vector` to the LAPIC `apic_id` and
    /// attach `efd` to it: a write to `efd` interrupts that vCPU.
    pub fn add_msi_irqfd(&self, efd: &EventFd, apic_id: u32, vector: u8) -> Result<u32, VmError> {
        if apic_id > 0xff && !self.x2apic_api {
            return Err(VmError::invalid(
                "APIC id",
                format!("{apic_id} needs KVM_CAP_X2APIC_API, which this kernel lacks"),
            ));
        }
        let mut routes = self.routes.lock().unwrap();
        let gsi = FIRST_MSI_GSI + routes.len() as u32;
        let mut e = kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_MSI,
            ..Default::default()
        };
        // MSI address: 0xfee << 20 | dest id (bits 19:12), fixed delivery,
        // physical destination; the upper 24 bits of a 32-bit x2APIC id go
        // to address_hi (KVM_X2APIC_API_USE_32BIT_IDS).
        e.u.msi.address_lo = 0xfee0_0000 | ((apic_id & 0xff) << 12);
        e.u.msi.address_hi = apic_id & 0xffff_ff00;
        e.u.msi.data = vector as u32;
        routes.push(e);
        let mut table =
            KvmIrqRouting::new(routes.len()).map_err(|e| VmError::State(format!("{e:?}")))?;
        table.as_mut_slice().copy_from_slice(&routes);
        self.fd
            .set_gsi_routing(&table)
            .map_err(VmError::kvm("KVM_SET_GSI_ROUTING"))?;
        self.fd
            .register_irqfd(efd, gsi)
            .map_err(VmError::kvm("KVM_IRQFD"))?;
        Ok(gsi)
    }

    /// `efd` is signalled, without a VM exit to user space, when the guest
    /// writes the 32-bit `datamatch` to I/O `port`.
    pub fn add_port_ioeventfd(
        &self,
        efd: &EventFd,
        port: u16,
        datamatch: u32,
    ) -> Result<(), VmError> {
        self.fd
            .register_ioevent(efd, &IoEventAddress::Pio(port as u64), datamatch)
            .map_err(VmError::kvm("KVM_IOEVENTFD"))
    }
}
