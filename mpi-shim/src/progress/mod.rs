//! Asynchronous progress (issue 18, item 3): with `MPISHIM_ASYNC_PROGRESS=1`
//! the initialisation asks the MPI library for `MPI_THREAD_MULTIPLE`, and
//! one thread per process, created through UTI (`spawn`), drives the
//! library's progress engine (`engine`) until `MPI_Finalize`, which stops
//! and joins it before the library's own finalisation.
//!
//! Owns: the settings from the environment, the running thread's record and
//! the counters exported to programs (`mpishim_progress_polls`,
//! `mpishim_progress_cpus`). Must not touch: the application's requests or
//! communicators (the thread only tests its own receive, posted on a
//! private duplicate of `MPI_COMM_SELF`).

mod engine;
mod spawn;

use crate::pmpi::{self, lookup, Comm, Handle, THREAD_MULTIPLE};
use engine::Poller;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Default upper bound of the idle back-off sleep.
const DEFAULT_MAX_SLEEP: Duration = Duration::from_micros(200);

/// Asked for in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Longest sleep between two polls once the engine has been idle.
    pub max_sleep: Duration,
    /// Log the start and the totals at `MPI_Finalize` (`MPISHIM_VERBOSE=1`).
    pub verbose: bool,
}

fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "" | "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// The settings if asynchronous progress is asked for, from a variable
/// lookup (the process environment in [`settings`]).
pub(crate) fn settings_from(get: impl Fn(&str) -> Option<String>) -> Option<Settings> {
    let on = get("MPISHIM_ASYNC_PROGRESS")?;
    match truthy(&on) {
        Some(true) => {}
        Some(false) => return None,
        None => {
            say!("MPISHIM_ASYNC_PROGRESS={on} is not 0 or 1: asynchronous progress stays off");
            return None;
        }
    }
    let max_sleep = match get("MPISHIM_PROGRESS_MAX_SLEEP_US") {
        None => DEFAULT_MAX_SLEEP,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(us) => Duration::from_micros(us),
            Err(_) => {
                say!(
                    "MPISHIM_PROGRESS_MAX_SLEEP_US={v} is not a number of microseconds: using {}",
                    DEFAULT_MAX_SLEEP.as_micros()
                );
                DEFAULT_MAX_SLEEP
            }
        },
    };
    let verbose = get("MPISHIM_VERBOSE")
        .and_then(|v| truthy(&v))
        .unwrap_or(false);
    Some(Settings { max_sleep, verbose })
}

/// The settings from the process environment, read once.
pub(crate) fn settings() -> Option<&'static Settings> {
    static S: std::sync::OnceLock<Option<Settings>> = std::sync::OnceLock::new();
    S.get_or_init(|| settings_from(|k| std::env::var(k).ok()))
        .as_ref()
}

/// The thread level to ask the library for when the application asked for
/// `required`: `MPI_THREAD_MULTIPLE` if progress is on, else unchanged.
pub(crate) fn level_to_ask(required: c_int) -> c_int {
    if settings().is_some() {
        required.max(THREAD_MULTIPLE)
    } else {
        required
    }
}

/// Polls made by the progress thread so far (also after it stopped).
static POLLS: AtomicU64 = AtomicU64::new(0);
/// Bit n: the thread was seen on CPU n (n < 63); bit 63: on a CPU >= 63.
static CPUS: AtomicU64 = AtomicU64::new(0);
/// Set by [`stop`]; read by the thread between polls.
static STOP: AtomicBool = AtomicBool::new(false);

struct Running {
    thread: libc::pthread_t,
    comm: Comm,
    request: Handle,
    how: &'static str,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

type CommDup = unsafe extern "C" fn(Comm, *mut Comm) -> c_int;
type CommFree = unsafe extern "C" fn(*mut Comm) -> c_int;
type Irecv =
    unsafe extern "C" fn(*mut c_void, c_int, Handle, c_int, c_int, Comm, *mut Handle) -> c_int;
type Cancel = unsafe extern "C" fn(*mut Handle) -> c_int;
type Wait = unsafe extern "C" fn(*mut Handle, *mut c_void) -> c_int;

/// The zero-byte receive buffer of the progress request.
static mut SINK: u8 = 0;

/// Starts the progress thread after a successful initialisation that gave
/// thread level `provided`, if progress is asked for. Runs on the thread
/// that initialised MPI.
pub(crate) fn start(provided: c_int) {
    let Some(s) = settings() else { return };
    if provided < THREAD_MULTIPLE {
        say!("the MPI library provides thread level {provided}, not MPI_THREAD_MULTIPLE: no asynchronous progress"
        );
        return;
    }
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    if running.is_some() {
        return;
    }
    let Some(abi) = pmpi::detect() else {
        say!("the MPI library is neither Open MPI nor of the MPICH ABI: no asynchronous progress");
        return;
    };
    let (Some(dup), Some(irecv), Some(test)) = (
        lookup(c"PMPI_Comm_dup"),
        lookup(c"PMPI_Irecv"),
        lookup(c"PMPI_Test"),
    ) else {
        say!("PMPI_Comm_dup, PMPI_Irecv or PMPI_Test not found: no asynchronous progress");
        return;
    };
    // SAFETY: `int MPI_Comm_dup(MPI_Comm, MPI_Comm *)` and `int
    // MPI_Irecv(void *, int, MPI_Datatype, int, int, MPI_Comm, MPI_Request
    // *)`, handles as u64 (pmpi module comment).
    let (dup, irecv) = unsafe {
        (
            std::mem::transmute::<*mut c_void, CommDup>(dup),
            std::mem::transmute::<*mut c_void, Irecv>(irecv),
        )
    };
    let mut comm: Comm = 0;
    // SAFETY: MPI is initialised with MPI_THREAD_MULTIPLE; MPI_COMM_SELF of
    // this library, and a zeroed u64 for the result. Duplicating SELF is
    // local to this process (no other rank takes part).
    if unsafe { dup(abi.self_comm, &mut comm) } != 0 {
        say!("MPI_Comm_dup(MPI_COMM_SELF) failed: no asynchronous progress");
        return;
    }
    let mut request: Handle = 0;
    // SAFETY: a zero-byte receive into a static byte, any source and tag of
    // the private communicator (nobody sends on it), a zeroed u64 for the
    // request.
    if unsafe {
        irecv(
            std::ptr::addr_of_mut!(SINK).cast(),
            0,
            abi.byte,
            abi.any_source,
            abi.any_tag,
            comm,
            &mut request,
        )
    } != 0
    {
        say!("MPI_Irecv on the private communicator failed: no asynchronous progress");
        free_comm(comm);
        return;
    }
    STOP.store(false, Ordering::SeqCst);
    let poller = Poller::new(test, request, s.max_sleep);
    match spawn::progress_thread(poller) {
        Ok((thread, how)) => {
            if s.verbose {
                say!(
                    "asynchronous progress thread started ({how}, {}, MPI_THREAD_MULTIPLE)",
                    abi.name
                );
            }
            *running = Some(Running {
                thread,
                comm,
                request,
                how,
            });
        }
        Err(e) => {
            say!("cannot start the progress thread: {e}: no asynchronous progress");
            cancel(request);
            free_comm(comm);
        }
    }
}

/// Cancels and completes the progress request.
fn cancel(mut request: Handle) {
    if let (Some(c), Some(w)) = (lookup(c"PMPI_Cancel"), lookup(c"PMPI_Wait")) {
        let mut status = [0u64; 8];
        // SAFETY: `int MPI_Cancel(MPI_Request *)`, `int MPI_Wait(MPI_Request
        // *, MPI_Status *)`; the request is the pending receive of `start`,
        // no longer tested by any thread; status has room for either ABI.
        unsafe {
            std::mem::transmute::<*mut c_void, Cancel>(c)(&mut request);
            std::mem::transmute::<*mut c_void, Wait>(w)(&mut request, status.as_mut_ptr().cast());
        }
    }
}

fn free_comm(mut comm: Comm) {
    if let Some(f) = lookup(c"PMPI_Comm_free") {
        // SAFETY: `int MPI_Comm_free(MPI_Comm *)`; `comm` is the duplicate
        // made in `start`, no longer used by any thread.
        unsafe { std::mem::transmute::<*mut c_void, CommFree>(f)(&mut comm) };
    }
}

/// Stops and joins the progress thread, if one runs, and cancels its
/// request and frees its communicator. Called before the library's finalisation.
pub(crate) fn stop() {
    let Some(r) = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    STOP.store(true, Ordering::SeqCst);
    // SAFETY: `r.thread` was created joinable by `spawn` and is joined once
    // (the record was taken out of RUNNING).
    let rc = unsafe { libc::pthread_join(r.thread, std::ptr::null_mut()) };
    if rc != 0 {
        say!(
            "joining the progress thread failed: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    cancel(r.request);
    free_comm(r.comm);
    if settings().is_some_and(|s| s.verbose) {
        say!(
            "asynchronous progress thread stopped ({}): {} polls, ran on CPUs {}",
            r.how,
            POLLS.load(Ordering::SeqCst),
            cpu_list(CPUS.load(Ordering::SeqCst))
        );
    }
}

/// `0,2-3` for a CPU mask as [`CPUS`] keeps it.
fn cpu_list(mask: u64) -> String {
    let mut parts = Vec::new();
    let mut cpu = 0;
    while cpu < 63 {
        if mask & (1 << cpu) == 0 {
            cpu += 1;
            continue;
        }
        let first = cpu;
        while cpu < 63 && mask & (1 << cpu) != 0 {
            cpu += 1;
        }
        parts.push(if cpu - 1 == first {
            first.to_string()
        } else {
            format!("{first}-{}", cpu - 1)
        });
    }
    if mask & (1 << 63) != 0 {
        parts.push(">=63".into());
    }
    if parts.is_empty() {
        "(none seen)".into()
    } else {
        parts.join(",")
    }
}

/// Number of polls the progress thread made (0 without one): lets a
/// program see that progress was driven for it. C: `unsigned long long
/// mpishim_progress_polls(void)`, found with `dlsym`.
#[no_mangle]
pub extern "C" fn mpishim_progress_polls() -> u64 {
    POLLS.load(Ordering::SeqCst)
}

/// The CPUs the progress thread was seen on: bit n for CPU n (< 63), bit
/// 63 for any higher CPU. On the LWK with `mcexec --enable-uti` these are
/// Linux's CPU numbers.
#[no_mangle]
pub extern "C" fn mpishim_progress_cpus() -> u64 {
    CPUS.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_unless_asked() {
        assert_eq!(settings_from(env(&[])), None);
        assert_eq!(settings_from(env(&[("MPISHIM_ASYNC_PROGRESS", "0")])), None);
        assert_eq!(
            settings_from(env(&[("MPISHIM_ASYNC_PROGRESS", "maybe")])),
            None
        );
        let s = settings_from(env(&[("MPISHIM_ASYNC_PROGRESS", "1")])).unwrap();
        assert_eq!(
            s,
            Settings {
                max_sleep: DEFAULT_MAX_SLEEP,
                verbose: false
            }
        );
        let s = settings_from(env(&[
            ("MPISHIM_ASYNC_PROGRESS", "yes"),
            ("MPISHIM_PROGRESS_MAX_SLEEP_US", "50"),
            ("MPISHIM_VERBOSE", "1"),
        ]))
        .unwrap();
        assert_eq!(
            s,
            Settings {
                max_sleep: Duration::from_micros(50),
                verbose: true
            }
        );
        let s = settings_from(env(&[
            ("MPISHIM_ASYNC_PROGRESS", "1"),
            ("MPISHIM_PROGRESS_MAX_SLEEP_US", "x"),
        ]))
        .unwrap();
        assert_eq!(s.max_sleep, DEFAULT_MAX_SLEEP);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list(0), "(none seen)");
        assert_eq!(cpu_list(1), "0");
        assert_eq!(cpu_list(0b1101), "0,2-3");
        assert_eq!(cpu_list(1 << 63 | 1 << 62), "62,>=63");
    }
}
