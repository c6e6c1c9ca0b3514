//! The progress thread's loop: `MPI_Test` of a receive that never
//! completes (posted on a private duplicate of `MPI_COMM_SELF`, on which
//! nothing is ever sent), over and over. Testing an incomplete request
//! enters the library's whole progress engine (Open MPI: `opal_progress`,
//! which polls every BTL; MPICH: `MPID_Progress_test`, every transport),
//! which moves the other requests' data: fragments copied, rendezvous
//! answered, single copies (CMA) done, completions recorded. The standard
//! API only, so any MPI of either ABI. (`MPI_Iprobe` does not do it with
//! MPICH 4.0: a probe on a one-process communicator never reaches UCX.)
//!
//! Back-off: a poll that took long (the engine moved data) keeps the
//! thread polling at once; a quick one yields the CPU first (the progress
//! threads of several ranks may share a Linux CPU, and a pipelined
//! transfer needs both ends' threads to take turns); after [`SPIN`] of
//! quick polls only, it sleeps between polls, 1 us doubling up to the
//! configured maximum, so an idle program does not keep a Linux CPU busy.

use super::{CPUS, POLLS, STOP};
use crate::pmpi::Handle;
use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A poll at least this long did work.
const BUSY: Duration = Duration::from_micros(10);
/// Quick polls for this long before the thread starts sleeping.
const SPIN: Duration = Duration::from_millis(2);
/// Record the CPU every this many polls.
const CPU_SAMPLE: u64 = 256;
/// Room for either ABI's `MPI_Status` (Open MPI 24 bytes, MPICH 20).
const STATUS_WORDS: usize = 8;

type Test = unsafe extern "C" fn(*mut Handle, *mut c_int, *mut c_void) -> c_int;

/// What the thread needs: the test and its request.
pub(crate) struct Poller {
    test: Test,
    request: Handle,
    max_sleep: Duration,
}

/// The idle back-off: how long to sleep after a poll.
#[derive(Debug, Default)]
struct Backoff {
    idle_since: Option<Instant>,
    sleep: Duration,
}

impl Backoff {
    /// After a poll that started at `start` and took `took`: the sleep
    /// before the next one (zero: poll again at once).
    fn after(&mut self, start: Instant, took: Duration, max: Duration) -> Duration {
        if took >= BUSY {
            *self = Backoff::default();
            return Duration::ZERO;
        }
        let since = *self.idle_since.get_or_insert(start);
        if start.duration_since(since) < SPIN {
            return Duration::ZERO;
        }
        self.sleep = (self.sleep * 2).clamp(Duration::from_micros(1), max);
        self.sleep
    }
}

impl Poller {
    /// `test` is the library's `PMPI_Test`, `request` the pending receive.
    pub(crate) fn new(test: *mut c_void, request: Handle, max_sleep: Duration) -> Poller {
        // SAFETY: `int MPI_Test(MPI_Request *, int *flag, MPI_Status *)`,
        // the request as u64 (pmpi module comment).
        let test = unsafe { std::mem::transmute::<*mut c_void, Test>(test) };
        Poller {
            test,
            request,
            max_sleep,
        }
    }

    /// Polls until [`STOP`] is set.
    pub(crate) fn run(mut self) {
        let mut status = [0u64; STATUS_WORDS];
        let mut backoff = Backoff::default();
        while !STOP.load(Ordering::Acquire) {
            let start = Instant::now();
            let mut flag: c_int = 0;
            // SAFETY: MPI is initialised with MPI_THREAD_MULTIPLE and not
            // finalised (MPI_Finalize joins this thread first); the request
            // is this thread's own and stays pending (nothing is sent on
            // its communicator); flag and status are writable and large
            // enough for either ABI.
            let rc =
                unsafe { (self.test)(&mut self.request, &mut flag, status.as_mut_ptr().cast()) };
            let n = POLLS.fetch_add(1, Ordering::Relaxed);
            if rc != 0 || flag != 0 {
                say!("MPI_Test of the progress request returned {rc}, flag {flag}: the progress thread stops");
                return;
            }
            if n % CPU_SAMPLE == 0 {
                record_cpu();
            }
            let took = start.elapsed();
            let pause = backoff.after(start, took, self.max_sleep);
            if !pause.is_zero() {
                std::thread::sleep(pause);
            } else if took < BUSY {
                // Nothing moved: let another thread of this CPU run (the
                // other ranks' progress threads, mcexec's proxies).
                // SAFETY: no arguments.
                unsafe { libc::sched_yield() };
            }
        }
        record_cpu();
    }
}

/// Adds the calling thread's current CPU to [`CPUS`].
fn record_cpu() {
    // SAFETY: no arguments; returns -1 on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu >= 0 {
        CPUS.fetch_or(1 << (cpu as u64).min(63), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_spins_while_busy_then_sleeps_doubling() {
        let max = Duration::from_micros(8);
        let mut b = Backoff::default();
        let t0 = Instant::now();
        let quick = Duration::from_nanos(200);
        assert_eq!(b.after(t0, quick, max), Duration::ZERO);
        assert_eq!(b.after(t0 + SPIN / 2, quick, max), Duration::ZERO);
        let late = t0 + SPIN;
        let sleeps: Vec<u128> = (0..6)
            .map(|_| b.after(late, quick, max).as_micros())
            .collect();
        assert_eq!(sleeps, [1, 2, 4, 8, 8, 8]);
        // Work resets it: spinning again.
        assert_eq!(b.after(late, BUSY, max), Duration::ZERO);
        assert_eq!(b.after(late + SPIN / 2, quick, max), Duration::ZERO);
        assert_eq!(b.after(late + SPIN * 2, quick, max).as_micros(), 1);
    }
}
