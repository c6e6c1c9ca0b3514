//! A lock for process state that a thread may hold while it waits: the
//! address space is held across offloaded calls (zeroing new memory
//! through the proxy, file reads of `mmap`), during which the holder gives
//! up its CPU. A second thread of the process on the same CPU must then let
//! the holder run instead of spinning with interrupts off (which would
//! never end): a contended `lock` from thread context yields the CPU and
//! retries; from the scheduler context it spins.

use spin::MutexGuard;

use super::{sched, ThreadState};

pub struct ThreadMutex<T>(spin::Mutex<T>);

impl<T> ThreadMutex<T> {
    pub const fn new(v: T) -> ThreadMutex<T> {
        ThreadMutex(spin::Mutex::new(v))
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        loop {
            if let Some(g) = self.0.try_lock() {
                return g;
            }
            match sched::current() {
                Some(t) => {
                    t.set_state(ThreadState::Runnable);
                    sched::yield_now(t);
                }
                None => core::hint::spin_loop(),
            }
        }
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock()
    }
}
