//! Hang detection (§1.3.2.18): a CPU that is busy in the kernel and whose
//! heartbeat has not moved for two monitoring intervals is hung. No timer
//! drives the heartbeat (a CPU running user code takes no interrupt for
//! it): the LWK advances it at every change of a CPU's state (kernel entry,
//! return to user mode, halt, wake-up) and every pass of its idle loop, so
//! a CPU that stays in the kernel without getting anywhere stops it, while
//! a CPU in user mode, idle or frozen is never suspected.
//!
//! The detector is fed every observation (ihkmond looks several times per
//! interval to forward kmsg) and measures the time since each CPU's
//! heartbeat last moved, so a hang is seen two intervals after it began,
//! not up to three. The window is never shorter than two heartbeat periods.

use std::time::{Duration, Instant};

use ihk_vm::CpuState;

#[derive(Debug, Clone, Copy)]
struct Cpu {
    heartbeat: u64,
    /// When the heartbeat was last seen to move (or the CPU to be other
    /// than busy in the kernel).
    moved: Instant,
}

#[derive(Debug)]
pub struct HangDetector {
    interval: Duration,
    cpus: Vec<Option<Cpu>>,
}

impl HangDetector {
    pub fn new(interval: Duration) -> Self {
        HangDetector {
            interval,
            cpus: Vec::new(),
        }
    }

    /// Forget everything (a new boot).
    pub fn reset(&mut self) {
        self.cpus.clear();
    }

    /// One observation at `now`: (LWK CPU, heartbeat, state) of every CPU,
    /// and the LWK's heartbeat period. Returns a hung CPU, if any.
    pub fn observe(
        &mut self,
        now: Instant,
        heartbeat_period: Duration,
        cpus: &[(u32, u64, CpuState)],
    ) -> Option<u32> {
        let window = (2 * self.interval).max(2 * heartbeat_period);
        let mut hung = None;
        for &(id, beat, state) in cpus {
            let i = id as usize;
            if self.cpus.len() <= i {
                self.cpus.resize(i + 1, None);
            }
            let slot = &mut self.cpus[i];
            match slot {
                Some(c) if c.heartbeat == beat && state == CpuState::RunningKernel => {
                    if now.duration_since(c.moved) >= window && hung.is_none() {
                        hung = Some(id);
                    }
                }
                _ => {
                    *slot = Some(Cpu {
                        heartbeat: beat,
                        moved: now,
                    })
                }
            }
        }
        hung
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: CpuState = CpuState::RunningKernel;
    const HB: Duration = Duration::from_millis(100);

    #[test]
    fn stopped_heartbeat_in_kernel_is_a_hang_after_two_intervals() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d = HangDetector::new(Duration::from_secs(1));
        // CPU 0 ticks, CPU 1 stops at 10.
        for (ms, b1) in [(0, 8), (250, 9), (500, 10), (750, 10)] {
            assert_eq!(d.observe(at(ms), HB, &[(0, ms, K), (1, b1, K)]), None);
        }
        assert_eq!(
            d.observe(at(2400), HB, &[(0, 2400, K), (1, 10, K)]),
            None,
            "1.9 s"
        );
        assert_eq!(
            d.observe(at(2600), HB, &[(0, 2600, K), (1, 10, K)]),
            Some(1),
            "2.1 s"
        );
    }

    #[test]
    fn idle_or_frozen_cpus_are_not_hung() {
        let t0 = Instant::now();
        let mut d = HangDetector::new(Duration::from_secs(1));
        for s in 0..10u64 {
            let now = t0 + Duration::from_secs(s);
            assert_eq!(
                d.observe(now, HB, &[(0, 5, CpuState::Idle), (1, 7, CpuState::Frozen)]),
                None
            );
        }
    }

    #[test]
    fn the_window_covers_two_heartbeat_periods() {
        let t0 = Instant::now();
        let mut d = HangDetector::new(Duration::from_secs(1));
        let slow = Duration::from_secs(3);
        d.observe(t0, slow, &[(0, 1, K)]);
        assert_eq!(
            d.observe(t0 + Duration::from_secs(5), slow, &[(0, 1, K)]),
            None
        );
        assert_eq!(
            d.observe(t0 + Duration::from_secs(6), slow, &[(0, 1, K)]),
            Some(0)
        );
    }
}
