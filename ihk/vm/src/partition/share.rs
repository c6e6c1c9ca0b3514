//! Share windows, host side (`docs/shared-memory.md`): a host file that an
//! LWK process maps `MAP_SHARED` becomes guest-physical memory at the
//! address the LWK chose in [`SHARE_WINDOW_GPA`] ..: ihkd maps the file
//! (`MAP_SHARED`, from the descriptor mcexec passed) and adds that mapping
//! as one KVM memslot. The guest then reads and writes the file's own page
//! cache pages: LWK processes, their mcexec mirrors and Linux processes that
//! map the same file share one copy of the bytes, at memory speed.
//!
//! The LWK owns a window's lifetime: it sends `MSG_WINDOW_RELEASE` on the
//! master channel when no process maps it any more, and only then does the
//! memslot go. A SysV shared memory segment (`shmat` of an LWK process) is
//! a window too: ihkd attaches it itself, after checking that the asking
//! user may. A window whose creation reply could not be delivered (the
//! proxy died meanwhile) is removed by the caller at once.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use ihk_abi::layout::{PAGE_SIZE, SHARE_WINDOW_ALIGN, SHARE_WINDOW_GPA, SHARE_WINDOW_SIZE};
use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::Cap;

use crate::error::VmError;
use crate::vm::Vm;

/// What a window maps.
pub enum ShareBacking {
    /// A host file (regular file, memfd), by the requester's descriptor.
    File(OwnedFd),
    /// SysV segment `shmid`, on behalf of user `uid` (checked against the
    /// segment's permissions as `shmat` would).
    Sysv { shmid: i32, uid: u32 },
}

/// One window: the host mapping of the file and its memslot.
struct Window {
    len: u64,
    slot: u32,
    host: usize,
    /// SysV attachment (detached with shmdt) rather than mmap.
    sysv: bool,
    /// The descriptor the mapping came from (so the file stays open as
    /// long as the window).
    _fd: Option<OwnedFd>,
}

impl Window {
    /// Unmap the host side (its memslot is gone).
    fn unmap(&self) {
        // SAFETY: our own mapping, no longer used by KVM.
        unsafe {
            if self.sysv {
                libc::shmdt(self.host as *const libc::c_void);
            } else {
                libc::munmap(self.host as *mut libc::c_void, self.len as usize);
            }
        }
    }
}

/// Whether user `uid` may attach `ds` (read, and write unless `rdonly`),
/// as the kernel's ipcperms decides for shmat (root may).
fn sysv_allowed(ds: &libc::shmid_ds, uid: u32, rdonly: bool) -> bool {
    if uid == 0 {
        return true;
    }
    let mode = ds.shm_perm.mode as u32;
    let bits = if uid == ds.shm_perm.uid || uid == ds.shm_perm.cuid {
        mode >> 6
    } else if user_in_group(uid, ds.shm_perm.gid) || user_in_group(uid, ds.shm_perm.cgid) {
        mode >> 3
    } else {
        mode
    };
    bits & 4 != 0 && (rdonly || bits & 2 != 0)
}

/// Whether `gid` is `uid`'s primary group or one of its groups.
fn user_in_group(uid: u32, gid: u32) -> bool {
    let Ok(Some(u)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else { return false };
    if u.gid.as_raw() == gid {
        return true;
    }
    let Ok(Some(g)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) else { return false };
    g.mem.iter().any(|m| *m == u.name)
}

struct State {
    windows: BTreeMap<u64, Window>,
    free_slots: Vec<u32>,
    next_slot: u32,
    closed: bool,
}

/// The share windows of one partition.
pub(crate) struct ShareWindows {
    vm: Arc<Vm>,
    max_slots: u32,
    readonly_slots: bool,
    state: Mutex<State>,
}

impl ShareWindows {
    /// `first_slot`: the first memslot not used by guest memory.
    pub(crate) fn new(vm: Arc<Vm>, first_slot: u32) -> ShareWindows {
        let max_slots = vm.kvm.get_nr_memslots() as u32;
        let readonly_slots = vm.kvm.check_extension(Cap::ReadonlyMem);
        ShareWindows {
            vm,
            max_slots,
            readonly_slots,
            state: Mutex::new(State { windows: BTreeMap::new(), free_slots: Vec::new(), next_slot: first_slot, closed: false }),
        }
    }

    /// Map `len` bytes of the file `fd` at `offset` as the window at `gpa`.
    pub(crate) fn create(&self, backing: ShareBacking, gpa: u64, len: u64, offset: u64, writable: bool) -> Result<(), VmError> {
        let end = gpa.checked_add(len);
        if len == 0
            || len % PAGE_SIZE != 0
            || offset % PAGE_SIZE != 0
            || gpa % SHARE_WINDOW_ALIGN != 0
            || gpa < SHARE_WINDOW_GPA
            || end.map_or(true, |e| e > SHARE_WINDOW_GPA + SHARE_WINDOW_SIZE)
        {
            return Err(VmError::invalid(
                "share window",
                format!(
                    "{len:#x} bytes at guest-physical {gpa:#x}, file offset {offset:#x}: expected page-aligned \
                     sizes inside {SHARE_WINDOW_GPA:#x}..{:#x}",
                    SHARE_WINDOW_GPA + SHARE_WINDOW_SIZE
                ),
            ));
        }
        // Only whole pages of the file: a guest access past its end would
        // make KVM fail the vCPU (the LWK gives SIGBUS there instead).
        let (size, ino) = match &backing {
            ShareBacking::File(fd) => {
                // SAFETY: fstat into a zeroed local of a descriptor we own.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
                    return Err(VmError::io("fstat of a shared file")(std::io::Error::last_os_error()));
                }
                (st.st_size as u64, st.st_ino)
            }
            ShareBacking::Sysv { shmid, uid } => {
                // SAFETY: IPC_STAT into a zeroed local.
                let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
                if unsafe { libc::shmctl(*shmid, libc::IPC_STAT, &mut ds) } != 0 {
                    return Err(VmError::io("shmctl(IPC_STAT) of a shared segment")(std::io::Error::last_os_error()));
                }
                if !sysv_allowed(&ds, *uid, !writable) {
                    return Err(VmError::Io {
                        op: "attaching a SysV segment",
                        source: std::io::Error::from_raw_os_error(libc::EACCES),
                    });
                }
                (ds.shm_segsz as u64, *shmid as u64)
            }
        };
        let file_pages = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        if offset.checked_add(len).map_or(true, |e| e > file_pages) {
            return Err(VmError::invalid(
                "share window",
                format!("{len:#x} bytes at offset {offset:#x} reach past the end of the file ({size} bytes)"),
            ));
        }
        let mut s = self.state.lock().unwrap();
        if s.closed {
            return Err(VmError::State("the partition is shutting down".into()));
        }
        if let Some((&g, w)) = s.windows.range(..end.unwrap()).next_back() {
            if g + w.len > gpa {
                return Err(VmError::State(format!("guest-physical {gpa:#x} is already a share window")));
            }
        }
        let slot = match s.free_slots.pop() {
            Some(n) => n,
            None if s.next_slot < self.max_slots => {
                s.next_slot += 1;
                s.next_slot - 1
            }
            None => {
                return Err(VmError::Io {
                    op: "a memslot for a share window",
                    source: std::io::Error::from_raw_os_error(libc::ENOSPC),
                })
            }
        };
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        let (host, fd, sysv) = match backing {
            // SAFETY: a new shared mapping of the caller's file; nothing of
            // ours is at the address the kernel picks.
            ShareBacking::File(fd) => {
                let h = unsafe { libc::mmap(std::ptr::null_mut(), len as usize, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset as libc::off_t) };
                (h, Some(fd), false)
            }
            ShareBacking::Sysv { shmid, .. } => {
                // SAFETY: a new attachment at an address the kernel picks.
                let h = unsafe { libc::shmat(shmid, std::ptr::null(), if writable { 0 } else { libc::SHM_RDONLY }) };
                let h = if h as isize == -1 || offset != 0 {
                    if h as isize != -1 {
                        // SAFETY: detaching what was just attached.
                        unsafe { libc::shmdt(h) };
                    }
                    libc::MAP_FAILED
                } else {
                    h
                };
                (h, None, true)
            }
        };
        if host == libc::MAP_FAILED {
            s.free_slots.push(slot);
            return Err(VmError::io("mapping a shared file")(std::io::Error::last_os_error()));
        }
        let w = Window { len, slot, host: host as usize, sysv, _fd: fd };
        let region = kvm_userspace_memory_region {
            slot,
            flags: if !writable && self.readonly_slots { KVM_MEM_READONLY } else { 0 },
            guest_phys_addr: gpa,
            memory_size: len,
            userspace_addr: host as u64,
        };
        // SAFETY: `host` maps `len` bytes until `release` removes the slot
        // first (or the VM goes, which drops every slot).
        if let Err(e) = unsafe { self.vm.fd.set_user_memory_region(region) } {
            w.unmap();
            s.free_slots.push(slot);
            return Err(VmError::kvm("KVM_SET_USER_MEMORY_REGION (share window)")(e));
        }
        s.windows.insert(gpa, w);
        tracing::debug!("share window at {gpa:#x}: {len:#x} bytes of {} {ino} (slot {slot})", if sysv { "SysV segment" } else { "inode" });
        Ok(())
    }

    /// Remove the window at `gpa` (no LWK page table maps it any more).
    /// Unknown addresses are ignored: the LWK releases what it reserved
    /// even when the creation failed.
    pub(crate) fn release(&self, gpa: u64) {
        let mut s = self.state.lock().unwrap();
        let Some(w) = s.windows.remove(&gpa) else {
            return;
        };
        let region = kvm_userspace_memory_region { slot: w.slot, flags: 0, guest_phys_addr: gpa, memory_size: 0, userspace_addr: 0 };
        // SAFETY: deleting our own slot; the mapping outlives it.
        if let Err(e) = unsafe { self.vm.fd.set_user_memory_region(region) } {
            tracing::error!("removing the share window at {gpa:#x}: {e}; its memory stays mapped");
            return;
        }
        s.free_slots.push(w.slot);
        // The slot is gone, so nothing uses the mapping any more.
        w.unmap();
    }

    /// The partition stops: no new windows; existing ones go with the VM.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap().closed = true;
    }
}

impl Drop for ShareWindows {
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for (gpa, w) in std::mem::take(&mut s.windows) {
            let region = kvm_userspace_memory_region { slot: w.slot, flags: 0, guest_phys_addr: gpa, memory_size: 0, userspace_addr: 0 };
            // SAFETY: deleting our own slot before unmapping its memory.
            let _ = unsafe { self.vm.fd.set_user_memory_region(region) };
            w.unmap();
        }
    }
}
