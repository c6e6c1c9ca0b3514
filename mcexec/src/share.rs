//! Share windows, proxy side (`docs/shared-memory.md`): for each window an
//! LWK process maps, our own descriptor of its host file, so the mirror
//! (`mirror.rs`) maps the same file pages at the same address, and, when
//! the LWK asks to create the window, the request that makes ihkd map the
//! file as guest memory (`os_share_window` on the OS socket).
//!
//! Records are process-wide (every proxy thread of the process, and a fork
//! child inherits them with the descriptors). A record goes when the LWK's
//! map table no longer lists its range after having listed it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use ihk_abi::layout::{PAGE_SIZE, SHARE_WINDOW_GPA, SHARE_WINDOW_SIZE};
use ihk_abi::linux::errno::EINVAL;
use ihk_abi::offload::{SHARE_CREATE, SHARE_WRITE};
use ihk_client::client::Client;
use ihk_client::paths::RuntimeDir;
use ihk_client::proto::Request;

/// Our SysV attachment of a segment (outside the LWK user range), which
/// mirrors map with `mremap` (a new mapping of the same pages).
pub struct SysvMap {
    addr: usize,
}

impl Drop for SysvMap {
    fn drop(&mut self) {
        // SAFETY: our own attachment, made by SysvAttach.
        unsafe { libc::shmdt(self.addr as *const libc::c_void) };
    }
}

/// How a window's pages are reached from here.
pub enum Source {
    /// Our descriptor of the file (mmap).
    File(RawFd),
    /// The host address of our SysV attachment of it (mremap).
    Sysv(usize),
}

enum Backing {
    File(OwnedFd),
    Sysv(SysvMap),
}

/// One window of this process: guest-physical `[gpa, gpa+len)` is the file
/// (or segment) from `offset`.
struct Record {
    gpa: u64,
    len: u64,
    offset: u64,
    writable: bool,
    backing: Backing,
    /// A map table listed it (so its absence later means it is gone).
    seen: bool,
    /// The request that made it: proxy thread slot and the map sequence
    /// the LWK had then (see [`forget_unlisted`]).
    made_by: Option<(u32, u64)>,
}

thread_local! {
    /// The request this proxy thread executes: (slot, map sequence).
    static CURRENT: std::cell::Cell<Option<(u32, u64)>> = const { std::cell::Cell::new(None) };
}

/// This proxy thread now executes a request of `slot` made when the LWK's
/// map sequence was `map_seq`.
pub fn set_current(slot: u32, map_seq: u64) {
    CURRENT.with(|c| c.set(Some((slot, map_seq))));
}

/// A later request of `slot` (map sequence `map_seq`) with our mirror
/// applied up to at least `map_seq`, listing `windows`: records that slot
/// made in an earlier request and that the table does not list go, even if
/// no table ever listed them (mapped and unmapped between two syncs of the
/// mirror, as `mmap`, a store, `munmap` in a loop do). The LWK thread of a
/// slot publishes its new window before its next request, so the table
/// would list it if it were still mapped.
pub fn forget_unlisted(slot: u32, map_seq: u64, windows: &[(u64, u64)]) {
    let mut v = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|r| {
        let earlier = r.made_by.is_some_and(|(s, q)| s == slot && q <= map_seq);
        !earlier || windows.iter().any(|&(g, l)| g < r.gpa + r.len && r.gpa < g + l)
    });
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());
/// SysvAttach attachments waiting for their ShareSysv: (shmid, map, size, writable).
static PENDING: Mutex<Vec<(i32, SysvMap, u64, bool)>> = Mutex::new(Vec::new());
/// Where ihkd serves this OS instance.
static TARGET: OnceLock<(RuntimeDir, u32)> = OnceLock::new();

/// Set the OS instance that windows are created in (once, at start).
pub fn set_target(dir: RuntimeDir, os: u32) {
    let _ = TARGET.set((dir, os));
}

fn neg(e: i32) -> i64 {
    -(e as i64)
}

/// A close-on-exec duplicate of `fd` at a high number.
fn dup_high(fd: RawFd) -> Result<OwnedFd, i64> {
    let n = crate::session::dup_high(fd).map_err(|e| neg(e.raw_os_error().unwrap_or(libc::EBADF)))?;
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn check(gpa: u64, len: u64, offset: u64) -> bool {
    len > 0
        && len % PAGE_SIZE == 0
        && offset % PAGE_SIZE == 0
        && gpa >= SHARE_WINDOW_GPA
        && gpa.checked_add(len).is_some_and(|e| e <= SHARE_WINDOW_GPA + SHARE_WINDOW_SIZE)
}

/// Ask ihkd to map `fd` (or SysV segment `shmid`) as the window at `gpa`.
fn create(fd: Option<&OwnedFd>, shmid: Option<i32>, gpa: u64, len: u64, offset: u64, writable: bool) -> Result<(), i64> {
    let (dir, os) = TARGET.get().ok_or(neg(libc::ENODEV))?;
    let mut c = Client::os(dir, *os).map_err(|e| neg(e.errno))?;
    let fds: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    c.call_with_fds(Request::OsShareWindow { gpa, len, offset, writable, shmid }, &fds)
        .map(|_| ())
        .map_err(|e| {
            if crate::proxy::trace_enabled() {
                eprintln!("mcexec: os_share_window at {gpa:#x}: {e}");
            }
            neg(e.errno)
        })
}

fn record(r: Record) {
    let mut v = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    // A newer record of the same range replaces an older one.
    v.retain(|o| o.gpa + o.len <= r.gpa || r.gpa + r.len <= o.gpa);
    v.push(r);
}

/// [`ihk_abi::offload::OffloadCall::ShareFile`]: `(fd, offset, len, gpa, flags)`.
pub fn share_file(a: [u64; 6]) -> i64 {
    let (fd, offset, len, gpa, flags) = (a[0] as i32, a[1], a[2], a[3], a[4]);
    if !check(gpa, len, offset) || flags & !(SHARE_CREATE | SHARE_WRITE) != 0 {
        return EINVAL.neg();
    }
    let writable = flags & SHARE_WRITE != 0;
    let own = match dup_high(fd) {
        Ok(f) => f,
        Err(e) => return e,
    };
    if flags & SHARE_CREATE != 0 {
        if let Err(e) = create(Some(&own), None, gpa, len, offset, writable) {
            return e;
        }
    }
    record(Record { gpa, len, offset, writable, backing: Backing::File(own), seen: false, made_by: CURRENT.with(|c| c.get()) });
    0
}

/// [`ihk_abi::offload::OffloadCall::ShareAnon`]: `(len, gpa)`.
pub fn share_anon(a: [u64; 6]) -> i64 {
    let (len, gpa) = (a[0], a[1]);
    if !check(gpa, len, 0) {
        return EINVAL.neg();
    }
    // SAFETY: memfd_create with a static name.
    let m = unsafe { libc::memfd_create(c"lwk-shared-anon".as_ptr(), libc::MFD_CLOEXEC) };
    if m < 0 {
        return neg(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM));
    }
    // SAFETY: a fresh descriptor we own.
    let m = unsafe { OwnedFd::from_raw_fd(m) };
    // SAFETY: sizing our memfd.
    if unsafe { libc::ftruncate(m.as_raw_fd(), len as libc::off_t) } != 0 {
        return neg(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM));
    }
    let own = match dup_high(m.as_raw_fd()) {
        Ok(f) => f,
        Err(e) => return e,
    };
    drop(m);
    if let Err(e) = create(Some(&own), None, gpa, len, 0, true) {
        return e;
    }
    record(Record { gpa, len, offset: 0, writable: true, backing: Backing::File(own), seen: false, made_by: CURRENT.with(|c| c.get()) });
    0
}

/// [`ihk_abi::offload::OffloadCall::SysvAttach`]: `(shmid, shmflg)`.
pub fn sysv_attach(a: [u64; 6]) -> i64 {
    let (shmid, flg) = (a[0] as i32, a[1] as i32);
    let rdonly = flg & libc::SHM_RDONLY != 0;
    // SAFETY: attaching at an address the kernel picks (outside the LWK
    // user range, which is reserved); checks the program's rights.
    let p = unsafe { libc::shmat(shmid, std::ptr::null(), if rdonly { libc::SHM_RDONLY } else { 0 }) };
    if p as isize == -1 {
        return neg(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL));
    }
    let map = SysvMap { addr: p as usize };
    // SAFETY: IPC_STAT into a zeroed local.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    if unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) } != 0 {
        return neg(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL));
    }
    let size = ds.shm_segsz as u64;
    PENDING.lock().unwrap_or_else(|e| e.into_inner()).push((shmid, map, size, !rdonly));
    size as i64
}

/// [`ihk_abi::offload::OffloadCall::ShareSysv`]: `(shmid, len, gpa, flags)`.
pub fn share_sysv(a: [u64; 6]) -> i64 {
    let (shmid, len, gpa, flags) = (a[0] as i32, a[1], a[2], a[3]);
    if !check(gpa, len, 0) || flags & !(SHARE_CREATE | SHARE_WRITE) != 0 {
        return EINVAL.neg();
    }
    let writable = flags & SHARE_WRITE != 0;
    let taken = {
        let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        p.iter().position(|(id, _, _, w)| *id == shmid && (*w || !writable)).map(|i| p.remove(i))
    };
    let Some((_, map, size, _)) = taken else { return EINVAL.neg() };
    if len > size.div_ceil(PAGE_SIZE) * PAGE_SIZE {
        return EINVAL.neg();
    }
    if flags & SHARE_CREATE != 0 {
        if let Err(e) = create(None, Some(shmid), gpa, len, 0, writable) {
            return e;
        }
    }
    record(Record { gpa, len, offset: 0, writable, backing: Backing::Sysv(map), seen: false, made_by: CURRENT.with(|c| c.get()) });
    0
}

/// What is behind guest-physical `[gpa, gpa+len)`: (source, offset of
/// `gpa` in it, writable).
pub fn lookup(gpa: u64, len: u64) -> Option<(Source, u64, bool)> {
    let v = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    v.iter().rev().find(|r| r.gpa <= gpa && gpa + len <= r.gpa + r.len).map(|r| {
        let src = match &r.backing {
            Backing::File(fd) => Source::File(fd.as_raw_fd()),
            Backing::Sysv(m) => Source::Sysv(m.addr),
        };
        (src, r.offset + (gpa - r.gpa), r.writable)
    })
}

/// After a map table was applied: records it lists are seen; seen records
/// it no longer lists go (their descriptors close).
pub fn retain_listed(windows: &[(u64, u64)]) {
    let mut v = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
    v.retain_mut(|r| {
        let listed = windows.iter().any(|&(g, l)| g < r.gpa + r.len && r.gpa < g + l);
        r.seen |= listed;
        listed || !r.seen
    });
}

/// Whether `fd` is one of our window descriptors (not the program's).
pub fn owns(fd: RawFd) -> bool {
    RECORDS.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|r| matches!(&r.backing, Backing::File(f) if f.as_raw_fd() == fd))
}

/// Our window descriptors.
pub fn fds() -> Vec<RawFd> {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|r| match &r.backing {
            Backing::File(f) => Some(f.as_raw_fd()),
            Backing::Sysv(_) => None,
        })
        .collect()
}
