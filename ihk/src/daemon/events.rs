//! Monitoring events of one OS instance (§1.2.2.13, §1.3.2.18): the
//! eventfds handed out by `ihk_os_get_eventfd`, and what ihkmond reports.
//!
//! ihkd creates each eventfd, keeps a descriptor of it and sends another to
//! the caller (SCM_RIGHTS); on an event it adds 1 to every eventfd of the
//! event's type. ihkmond detects, ihkd records and signals:
//! * a hang: the status becomes HUNGUP (until the next boot) and the
//!   type-2 eventfds are signalled, once per boot;
//! * a panic (the status is PANIC already, from the LWK): type 2, once;
//! * memory above (assigned - 2 MiB): type 0, at each report (ihkmond
//!   reports each time usage crosses the threshold upward).
//!
//! Reports name the boot they are about; a report about an earlier boot is
//! refused, so a slow ihkmond cannot mark a rebooted instance HUNGUP.
//! ihkd cannot tell when a holder closes its eventfd, so its own copies
//! live until the instance is destroyed (mcreboot and mcstop+release
//! destroy it; a scheduler asks once per job).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use ihk_vm::OsStatus;

use crate::error::{IhkError, IhkResult};
use crate::proto::libihk::{EventType, MonitorEvent};

#[derive(Default)]
pub struct Events {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    boot: u64,
    hungup: bool,
    /// Type-2 eventfds already signalled during this boot.
    status_signalled: bool,
    fds: Vec<(EventType, OwnedFd)>,
}

impl Events {
    /// A boot starts: new boot number, no HUNGUP; the eventfds stay (their
    /// holders watch the instance, whichever boot it is in).
    pub fn new_boot(&self) -> u64 {
        let mut i = self.inner.lock().unwrap();
        i.boot += 1;
        i.hungup = false;
        i.status_signalled = false;
        i.boot
    }

    pub fn boot(&self) -> u64 {
        self.inner.lock().unwrap().boot
    }

    /// The status to report, given the partition's own.
    pub fn apply(&self, s: OsStatus) -> OsStatus {
        let hung = self.inner.lock().unwrap().hungup;
        match s {
            OsStatus::Running | OsStatus::Freezing | OsStatus::Frozen if hung => OsStatus::Hungup,
            s => s,
        }
    }

    /// A new eventfd of `kind`: one descriptor stays here, the returned one
    /// goes to the caller.
    pub fn new_eventfd(&self, kind: EventType) -> IhkResult<OwnedFd> {
        // SAFETY: eventfd has no memory effects; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(IhkError::os(std::io::Error::last_os_error(), "eventfd"));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let ours = unsafe { OwnedFd::from_raw_fd(fd) };
        let theirs = ours
            .try_clone()
            .map_err(|e| IhkError::os(e, "duplicating the eventfd"))?;
        self.inner.lock().unwrap().fds.push((kind, ours));
        Ok(theirs)
    }

    /// Record what ihkmond found about boot `boot`; `status` is the
    /// partition's own status now.
    pub fn report(
        &self,
        os: u32,
        boot: u64,
        event: MonitorEvent,
        status: OsStatus,
    ) -> IhkResult<()> {
        let mut i = self.inner.lock().unwrap();
        if boot != i.boot {
            return Err(IhkError::inval(format!(
                "report about boot {boot} of OS instance {os}, which is at boot {} now",
                i.boot
            )));
        }
        match event {
            MonitorEvent::Hangup { lwk_cpu } => {
                if !matches!(
                    status,
                    OsStatus::Running | OsStatus::Freezing | OsStatus::Frozen
                ) {
                    return Err(IhkError::inval(format!(
                        "OS instance {os} is {}; a hang is reported only while it runs",
                        status.as_str()
                    )));
                }
                if !i.hungup {
                    tracing::error!("OS {os}: hang detected on LWK CPU {lwk_cpu}; status HUNGUP");
                }
                i.hungup = true;
                signal_status_once(&mut i);
            }
            MonitorEvent::Panic => {
                if status != OsStatus::Panic {
                    return Err(IhkError::inval(format!(
                        "OS instance {os} is {}, not PANIC",
                        status.as_str()
                    )));
                }
                if !i.status_signalled {
                    tracing::error!("OS {os}: panic reported");
                }
                signal_status_once(&mut i);
            }
            MonitorEvent::MemoryThreshold => {
                tracing::warn!("OS {os}: memory in use exceeds the assigned memory minus 2 MiB");
                signal(&i, EventType::Memory);
            }
        }
        Ok(())
    }
}

fn signal_status_once(i: &mut Inner) {
    if !i.status_signalled {
        i.status_signalled = true;
        signal(i, EventType::Status);
    }
}

fn signal(i: &Inner, kind: EventType) {
    for (k, fd) in &i.fds {
        if *k == kind {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writing 8 bytes from a local buffer to an eventfd we own.
            let r = unsafe { libc::write(fd.as_raw_fd(), one.as_ptr() as *const libc::c_void, 8) };
            if r != 8 {
                tracing::warn!("signalling an eventfd: {}", std::io::Error::last_os_error());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_counter(fd: &OwnedFd) -> u64 {
        let mut b = [0u8; 8];
        // SAFETY: reading 8 bytes into a local buffer from our eventfd.
        let r = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 8) };
        assert_eq!(r, 8);
        u64::from_ne_bytes(b)
    }

    #[test]
    fn hangup_sets_hungup_and_signals_status_fds_once_per_boot() {
        let e = Events::default();
        let boot = e.new_boot();
        let status = e.new_eventfd(EventType::Status).unwrap();
        let mem = e.new_eventfd(EventType::Memory).unwrap();
        assert_eq!(e.apply(OsStatus::Running), OsStatus::Running);
        e.report(
            0,
            boot,
            MonitorEvent::Hangup { lwk_cpu: 1 },
            OsStatus::Running,
        )
        .unwrap();
        e.report(
            0,
            boot,
            MonitorEvent::Hangup { lwk_cpu: 1 },
            OsStatus::Running,
        )
        .unwrap();
        assert_eq!(e.apply(OsStatus::Running), OsStatus::Hungup);
        assert_eq!(e.apply(OsStatus::Panic), OsStatus::Panic);
        assert_eq!(read_counter(&status), 1, "signalled once");
        e.report(0, boot, MonitorEvent::MemoryThreshold, OsStatus::Running)
            .unwrap();
        assert_eq!(read_counter(&mem), 1);
        // A stale report is refused; a new boot clears HUNGUP.
        let b2 = e.new_boot();
        assert_eq!(e.apply(OsStatus::Running), OsStatus::Running);
        assert!(e
            .report(
                0,
                boot,
                MonitorEvent::Hangup { lwk_cpu: 0 },
                OsStatus::Running
            )
            .is_err());
        assert!(e
            .report(0, b2, MonitorEvent::Panic, OsStatus::Running)
            .is_err());
        e.report(0, b2, MonitorEvent::Panic, OsStatus::Panic)
            .unwrap();
        assert_eq!(read_counter(&status), 1);
    }
}
