//! Creating the thread a [`Plan`] describes, and the record each utility
//! thread keeps about its own placement.
//!
//! C path ([`create_pthread`]): the plan's CPU set and scheduling policy go
//! into the `pthread_attr_t` (the caller's, restored afterwards, or a
//! private one), so the thread starts on its CPUs. A trampoline then binds
//! the usage-table claim to the new thread and stores the placement in a
//! thread-local record, whose destructor (run at thread exit, including
//! `pthread_exit` and cancellation) releases the claim.
//!
//! Rust path ([`spawn()`]): a `std::thread` that applies the affinity and
//! policy to itself before running the closure, and reports failure to the
//! creator before the closure runs.
//!
//! HIGH_PRIORITY asks for SCHED_FIFO at priority [`RT_PRIORITY`], the lowest
//! real-time priority: enough to preempt every normal thread without
//! competing with the kernel's own real-time threads. Without the right
//! (CAP_SYS_NICE or RLIMIT_RTPRIO) the thread gets the default policy and a
//! warning is logged.

use std::cell::RefCell;
use std::ffi::c_void;
use std::mem::MaybeUninit;

use crate::context::Plan;
use crate::cpuset::CpuSet;
use crate::error::Error;
use crate::log;
use crate::placement::Kernel;
use crate::registry::Claim;

/// SCHED_FIFO priority used for HIGH_PRIORITY threads.
pub const RT_PRIORITY: i32 = 1;

/// Words of the affinity masks exchanged with glibc (at least a
/// `cpu_set_t`, 1024 CPUs).
const MIN_MASK_WORDS: usize = 16;

/// What a utility thread knows about its own placement.
#[derive(Debug)]
pub struct ThreadPlacement {
    /// The CPU set computed for it.
    pub cpus: CpuSet,
    /// Kind of CPU.
    pub kernel: Kernel,
    /// Whether `cpus` was applied as its affinity.
    pub applied: bool,
    /// Its usage-table entry, released when the thread exits.
    claim: Option<Claim>,
}

thread_local! {
    static CURRENT: RefCell<Option<ThreadPlacement>> = const { RefCell::new(None) };
}

/// The CPU set computed for the calling thread, if it was created by UTI
/// with placement (not under `DISABLE_UTI`).
pub fn current_cpus() -> Option<CpuSet> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|p| p.cpus.clone()))
        .ok()
        .flatten()
}

/// Whether the calling thread's computed set was applied as its affinity.
pub fn current_applied() -> Option<bool> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|p| p.applied))
        .ok()
        .flatten()
}

/// Installs the record in the new thread, binding its claim to it.
fn install(mut record: ThreadPlacement) {
    if let Some(c) = record.claim.as_mut() {
        if let Err(e) = c.adopt_current_thread() {
            log::warning!("counting utility thread on CPU {}: {e}", c.cpu());
        }
    }
    let _ = CURRENT.try_with(|c| *c.borrow_mut() = Some(record));
}

fn record_of(plan: Plan) -> ThreadPlacement {
    ThreadPlacement {
        cpus: plan.cpus,
        kernel: plan.kernel,
        applied: plan.apply_affinity,
        claim: plan.claim,
    }
}

/// Thread start routine as C declares it. The "C-unwind" ABI lets
/// `pthread_exit` and cancellation (forced unwinds) pass through the
/// trampoline.
pub type StartRoutine = unsafe extern "C-unwind" fn(*mut c_void) -> *mut c_void;

struct Payload {
    start: StartRoutine,
    arg: *mut c_void,
    record: ThreadPlacement,
}

/// Unpacks the payload and installs the record; returns what the
/// trampoline calls. Kept out of line so the trampoline's own frame holds
/// nothing with a destructor while the user's routine runs.
#[inline(never)]
fn unpack(p: *mut c_void) -> (StartRoutine, *mut c_void) {
    // SAFETY: `p` is the pointer `create_pthread` obtained from
    // `Box::into_raw` and handed to exactly this one thread.
    let payload = unsafe { Box::from_raw(p.cast::<Payload>()) };
    let Payload { start, arg, record } = *payload;
    let _no_cancel = crate::cancel::NoCancel::new();
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| install(record))).is_err() {
        log::error!("internal error while recording a utility thread's placement");
    }
    (start, arg)
}

unsafe extern "C-unwind" fn trampoline(p: *mut c_void) -> *mut c_void {
    let (start, arg) = unpack(p);
    // SAFETY: `start` and `arg` are what the caller of uti_pthread_create
    // passed, called exactly as pthread_create would call them.
    unsafe { start(arg) }
}

/// Saved scheduling/affinity settings of a caller's `pthread_attr_t`.
struct SavedAttr {
    affinity: Option<Vec<u64>>,
    inherit: i32,
    policy: i32,
    param: libc::sched_param,
}

fn check(what: &str, rc: i32) -> Result<(), Error> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::os(what.to_string(), rc))
    }
}

/// The affinity set in `attr`, if any (glibc reports an unset affinity as
/// all CPUs).
///
/// # Safety
/// `attr` must point to an initialized `pthread_attr_t`.
pub unsafe fn attr_affinity(attr: *const libc::pthread_attr_t) -> Result<Option<Vec<u64>>, Error> {
    let mut words = MIN_MASK_WORDS;
    loop {
        let mut mask = vec![0u64; words];
        // SAFETY: `attr` is valid (caller's contract); the mask buffer has
        // exactly the size passed.
        let rc = unsafe {
            libc::pthread_attr_getaffinity_np(
                attr,
                words * 8,
                mask.as_mut_ptr().cast::<libc::cpu_set_t>(),
            )
        };
        if rc == libc::EINVAL && words < 1024 {
            words *= 4;
            continue;
        }
        check("pthread_attr_getaffinity_np", rc)?;
        return Ok(if mask.iter().all(|&w| w == u64::MAX) {
            None
        } else {
            Some(mask)
        });
    }
}

/// # Safety
/// `attr` must point to an initialized `pthread_attr_t`.
unsafe fn save(attr: *mut libc::pthread_attr_t) -> Result<SavedAttr, Error> {
    let mut inherit = 0;
    let mut policy = 0;
    let mut param = MaybeUninit::<libc::sched_param>::zeroed();
    // SAFETY: `attr` is valid; the out-pointers are valid locals.
    unsafe {
        check(
            "pthread_attr_getinheritsched",
            libc::pthread_attr_getinheritsched(attr, &mut inherit),
        )?;
        check(
            "pthread_attr_getschedpolicy",
            libc::pthread_attr_getschedpolicy(attr, &mut policy),
        )?;
        check(
            "pthread_attr_getschedparam",
            libc::pthread_attr_getschedparam(attr, param.as_mut_ptr()),
        )?;
        Ok(SavedAttr {
            affinity: attr_affinity(attr)?,
            inherit,
            policy,
            // SAFETY: zero-initialized, then filled by glibc.
            param: param.assume_init(),
        })
    }
}

/// # Safety
/// `attr` must point to an initialized `pthread_attr_t`.
unsafe fn restore_sched(attr: *mut libc::pthread_attr_t, s: &SavedAttr) {
    // SAFETY: `attr` is valid; values were read from this attr before.
    unsafe {
        libc::pthread_attr_setinheritsched(attr, s.inherit);
        libc::pthread_attr_setschedpolicy(attr, s.policy);
        libc::pthread_attr_setschedparam(attr, &s.param);
    }
}

/// # Safety
/// `attr` must point to an initialized `pthread_attr_t`.
unsafe fn restore(attr: *mut libc::pthread_attr_t, s: &SavedAttr) {
    // SAFETY: `attr` is valid; a NULL/0 affinity clears it (glibc), a
    // saved mask is passed with its own length.
    unsafe {
        match &s.affinity {
            Some(m) => libc::pthread_attr_setaffinity_np(attr, m.len() * 8, m.as_ptr().cast()),
            None => libc::pthread_attr_setaffinity_np(attr, 0, std::ptr::null()),
        };
        restore_sched(attr, s);
    }
}

/// # Safety
/// `attr` must point to an initialized `pthread_attr_t`.
unsafe fn set_fifo(attr: *mut libc::pthread_attr_t) -> Result<(), Error> {
    let param = libc::sched_param {
        sched_priority: RT_PRIORITY,
    };
    // SAFETY: `attr` is valid; `param` is a valid local.
    unsafe {
        check(
            "pthread_attr_setinheritsched",
            libc::pthread_attr_setinheritsched(attr, libc::PTHREAD_EXPLICIT_SCHED),
        )?;
        check(
            "pthread_attr_setschedpolicy",
            libc::pthread_attr_setschedpolicy(attr, libc::SCHED_FIFO),
        )?;
        check(
            "pthread_attr_setschedparam",
            libc::pthread_attr_setschedparam(attr, &param),
        )
    }
}

/// Owns a private, initialized `pthread_attr_t`.
struct OwnedAttr(Box<MaybeUninit<libc::pthread_attr_t>>);

impl OwnedAttr {
    fn new() -> Result<Self, Error> {
        let mut b = Box::new(MaybeUninit::<libc::pthread_attr_t>::uninit());
        // SAFETY: pthread_attr_init initializes the storage it is given.
        check("pthread_attr_init", unsafe {
            libc::pthread_attr_init(b.as_mut_ptr())
        })?;
        Ok(OwnedAttr(b))
    }
    fn ptr(&mut self) -> *mut libc::pthread_attr_t {
        self.0.as_mut_ptr()
    }
}

impl Drop for OwnedAttr {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, destroyed once.
        unsafe { libc::pthread_attr_destroy(self.0.as_mut_ptr()) };
    }
}

/// Creates the thread of `plan` with `pthread_create`.
///
/// # Safety
/// `thread` must be valid for writing a `pthread_t`; `user_attr` must be
/// NULL or point to an initialized `pthread_attr_t`; `start` and `arg` must
/// be valid as for `pthread_create`.
pub unsafe fn create_pthread(
    thread: *mut libc::pthread_t,
    user_attr: *mut libc::pthread_attr_t,
    start: StartRoutine,
    arg: *mut c_void,
    plan: Plan,
) -> Result<(), Error> {
    let mut own = None;
    let (attr, saved) = if user_attr.is_null() {
        let a = own.insert(OwnedAttr::new()?);
        (a.ptr(), None)
    } else {
        // SAFETY: caller's contract.
        (user_attr, Some(unsafe { save(user_attr)? }))
    };
    // SAFETY: `attr` is initialized (ours or the caller's) for the rest of
    // this function; `thread`, `start`, `arg` per the caller's contract.
    let result = unsafe { create_with(thread, attr, start, arg, plan, saved.as_ref()) };
    if let Some(s) = &saved {
        // SAFETY: as above.
        unsafe { restore(attr, s) };
    }
    drop(own);
    result
}

/// # Safety
/// As [`create_pthread`], with `attr` initialized.
unsafe fn create_with(
    thread: *mut libc::pthread_t,
    attr: *mut libc::pthread_attr_t,
    start: StartRoutine,
    arg: *mut c_void,
    mut plan: Plan,
    saved: Option<&SavedAttr>,
) -> Result<(), Error> {
    // On the LWK, the next clone becomes a utility thread on Linux; without
    // mcexec --enable-uti an ordinary LWK thread, whose CPUs are not the
    // Linux CPUs of the plan (lwk.rs).
    // A plan for LWK CPUs (PREFER_LWK, or no Linux CPU left) keeps the
    // thread on the LWK, as McKernel does; its CPUs are not the LWK's
    // numbering, so no affinity.
    let backend = if plan.kernel == Kernel::Lwk && crate::lwk::on_lwk() {
        log::debug!("placement chose LWK CPUs {{{}}}: the thread stays on the LWK", plan.cpus);
        crate::lwk::Backend::LwkOnly
    } else {
        crate::lwk::indicate_clone()
    };
    if backend == crate::lwk::Backend::LwkOnly {
        plan.apply_affinity = false;
    }
    let high = plan.high_priority;
    if plan.apply_affinity {
        let mask = plan.cpus.to_mask_words(MIN_MASK_WORDS);
        // SAFETY: `attr` valid; mask pointer and byte length agree.
        check("pthread_attr_setaffinity_np", unsafe {
            libc::pthread_attr_setaffinity_np(attr, mask.len() * 8, mask.as_ptr().cast())
        })?;
    } else {
        log::debug!(
            "topology is not this machine's: CPU set {{{}}} computed, not applied",
            plan.cpus
        );
    }
    if high {
        // SAFETY: `attr` valid.
        unsafe { set_fifo(attr)? };
    }
    let payload = Box::into_raw(Box::new(Payload {
        start,
        arg,
        record: record_of(plan),
    }));
    // SAFETY: `trampoline` takes ownership of `payload` iff the thread is
    // created; `thread` and `attr` are valid.
    let mut rc = unsafe { libc::pthread_create(thread, attr, trampoline_c(), payload.cast()) };
    if rc == libc::EPERM && high {
        log::warning!("HIGH_PRIORITY: SCHED_FIFO is not permitted (needs CAP_SYS_NICE or RLIMIT_RTPRIO); using the default policy");
        if backend == crate::lwk::Backend::LwkOnLinux {
            crate::lwk::indicate_clone();
        }
        // SAFETY: `attr` valid; going back to inheriting the creator's policy
        // (or the caller's own settings).
        unsafe {
            match saved {
                Some(s) => restore_sched(attr, s),
                None => {
                    libc::pthread_attr_setinheritsched(attr, libc::PTHREAD_INHERIT_SCHED);
                }
            }
            rc = libc::pthread_create(thread, attr, trampoline_c(), payload.cast());
        }
    }
    if rc != 0 {
        if backend == crate::lwk::Backend::LwkOnLinux {
            crate::lwk::withdraw();
        }
        // SAFETY: no thread was created, so the payload is still ours.
        drop(unsafe { Box::from_raw(payload) });
        return Err(Error::os("pthread_create", rc));
    }
    Ok(())
}

/// The trampoline with the exact function type `pthread_create` expects.
fn trampoline_c() -> extern "C" fn(*mut c_void) -> *mut c_void {
    // SAFETY: "C-unwind" and "C" have the same calling convention; the
    // difference only concerns unwinding, which glibc's thread start code
    // permits (it is how pthread_exit and cancellation work).
    unsafe {
        std::mem::transmute::<StartRoutine, extern "C" fn(*mut c_void) -> *mut c_void>(trampoline)
    }
}

/// Applies `cpus` as the calling thread's affinity.
pub fn set_own_affinity(cpus: &CpuSet) -> Result<(), Error> {
    let mask = cpus.to_mask_words(MIN_MASK_WORDS);
    // SAFETY: pid 0 is the calling thread; mask pointer and length agree.
    let rc = unsafe { libc::sched_setaffinity(0, mask.len() * 8, mask.as_ptr().cast()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::last_os(format!(
            "sched_setaffinity to CPUs {{{cpus}}}"
        )))
    }
}

/// Switches the calling thread to SCHED_FIFO, or logs why not.
fn set_own_fifo() {
    let param = libc::sched_param {
        sched_priority: RT_PRIORITY,
    };
    // SAFETY: pthread_self is the calling thread; `param` is a valid local.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == libc::EPERM {
        log::warning!("HIGH_PRIORITY: SCHED_FIFO is not permitted (needs CAP_SYS_NICE or RLIMIT_RTPRIO); using the default policy");
    } else if rc != 0 {
        log::warning!(
            "HIGH_PRIORITY: pthread_setschedparam: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

/// A utility thread started by [`spawn()`].
#[derive(Debug)]
pub struct UtiThread<T> {
    inner: std::thread::JoinHandle<Option<T>>,
    cpus: Option<CpuSet>,
}

impl<T> UtiThread<T> {
    /// Waits for the thread and returns its result (`Err` if it panicked).
    pub fn join(self) -> std::thread::Result<T> {
        self.inner
            .join()
            .map(|v| v.expect("a started utility thread always runs its closure"))
    }

    /// The CPU set computed for it (`None` when UTI is disabled).
    pub fn cpus(&self) -> Option<&CpuSet> {
        self.cpus.as_ref()
    }

    /// The underlying thread.
    pub fn thread(&self) -> &std::thread::Thread {
        self.inner.thread()
    }
}

/// Starts `f` on a thread placed per `plan` (`None`: no placement, as
/// under `DISABLE_UTI`). Returns once the placement is in effect.
pub fn spawn<F, T>(plan: Option<Plan>, f: F) -> Result<UtiThread<T>, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cpus = plan.as_ref().map(|p| p.cpus.clone());
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), Error>>();
    let inner = std::thread::Builder::new()
        .name("uti".into())
        .spawn(move || {
            if let Some(plan) = plan {
                let setup = if plan.apply_affinity {
                    set_own_affinity(&plan.cpus)
                } else {
                    Ok(())
                };
                if setup.is_err() {
                    let _ = tx.send(setup);
                    return None;
                }
                if plan.high_priority {
                    set_own_fifo();
                }
                install(record_of(plan));
            }
            let _ = tx.send(Ok(()));
            Some(f())
        })
        .map_err(|source| Error::Os {
            what: "spawning a thread".into(),
            source,
        })?;
    match rx.recv() {
        Ok(Ok(())) => Ok(UtiThread { inner, cpus }),
        Ok(Err(e)) => {
            let _ = inner.join();
            Err(e)
        }
        Err(_) => {
            let _ = inner.join();
            Err(Error::os("utility thread ended during setup", libc::EIO))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn a_thread_releases_its_slot_when_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("c")).unwrap();
        let claim = reg.claim(|_| Some(0)).unwrap();
        let plan = Plan {
            cpus: std::iter::once(0).collect(),
            kernel: Kernel::Fwk,
            apply_affinity: false,
            high_priority: false,
            claim,
        };
        assert_eq!(reg.raw_used_slots(), 1);
        let t = spawn(Some(plan), current_cpus).unwrap();
        assert_eq!(t.join().unwrap().unwrap().to_string(), "0");
        // Freed by the thread's own exit path, not by the liveness check.
        assert_eq!(reg.raw_used_slots(), 0);
    }

    #[test]
    fn plain_threads_have_no_placement() {
        assert!(current_cpus().is_none());
        let t = spawn(None, current_cpus).unwrap();
        assert!(t.cpus().is_none());
        assert!(t.join().unwrap().is_none());
    }
}
