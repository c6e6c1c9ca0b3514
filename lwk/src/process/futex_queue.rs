//! The futex wait queues as pure logic (no hardware, no kernel imports):
//! key → waiters in arrival order, each with its wake bitset; wake,
//! requeue and removal by identity. Used by `futex` with the key being the
//! futex word's physical address; tested on the host (`lwk/hosttest`).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

/// Wait queues: key (physical address) → waiters in arrival order, each
/// with its wake bitset.
pub struct FutexTable<T> {
    queues: BTreeMap<u64, VecDeque<(u32, T)>>,
}

impl<T> FutexTable<T> {
    pub const fn new() -> FutexTable<T> {
        FutexTable { queues: BTreeMap::new() }
    }

    pub fn enqueue(&mut self, key: u64, bitset: u32, w: T) {
        self.queues.entry(key).or_default().push_back((bitset, w));
    }

    /// Take up to `n` waiters of `key` whose bitset meets `bitset`, oldest
    /// first.
    pub fn wake(&mut self, key: u64, n: usize, bitset: u32) -> Vec<T> {
        let mut out = Vec::new();
        if let Some(q) = self.queues.get_mut(&key) {
            let mut i = 0;
            while i < q.len() && out.len() < n {
                if q[i].0 & bitset != 0 {
                    out.push(q.remove(i).unwrap().1);
                } else {
                    i += 1;
                }
            }
            if q.is_empty() {
                self.queues.remove(&key);
            }
        }
        out
    }

    /// Wake up to `n_wake` waiters of `from` and move up to `n_requeue` of
    /// the rest to `to`. Returns the woken and how many moved.
    pub fn requeue(&mut self, from: u64, to: u64, n_wake: usize, n_requeue: usize) -> (Vec<T>, usize) {
        let woken = self.wake(from, n_wake, u32::MAX);
        let mut moved = 0;
        if from != to {
            if let Some(mut q) = self.queues.remove(&from) {
                let take = q.len().min(n_requeue);
                let rest = q.split_off(take);
                moved = q.len();
                self.queues.entry(to).or_default().extend(q);
                if !rest.is_empty() {
                    self.queues.insert(from, rest);
                }
            }
        } else {
            moved = self.queues.get(&from).map_or(0, |q| q.len().min(n_requeue));
        }
        (woken, moved)
    }

    /// Remove the waiter `is_me` picks, wherever it is queued (a requeue
    /// may have moved it). Returns whether it was still queued.
    pub fn remove(&mut self, is_me: impl Fn(&T) -> bool) -> bool {
        let mut found = None;
        for (&k, q) in self.queues.iter_mut() {
            if let Some(i) = q.iter().position(|(_, w)| is_me(w)) {
                q.remove(i);
                found = Some(k);
                break;
            }
        }
        match found {
            Some(k) => {
                if self.queues.get(&k).is_some_and(|q| q.is_empty()) {
                    self.queues.remove(&k);
                }
                true
            }
            None => false,
        }
    }

    /// Waiters queued on `key`.
    #[allow(dead_code)] // the host tests look
    pub fn waiters(&self, key: u64) -> usize {
        self.queues.get(&key).map_or(0, |q| q.len())
    }
}

/// The 12-bit signed arguments of FUTEX_WAKE_OP.
pub fn sign_extend12(v: u32) -> i32 {
    ((v << 20) as i32) >> 20
}
