//! Keeping the harness off the benchmark CPU: the harness (and what it
//! starts without pinning: mcreboot, ihkosctl, mcexec) runs on the other
//! CPUs it may use, so its own threads and health checks do not show up as
//! noise on the CPU being measured. Only the harness's own affinity changes.

use anyhow::{Context, Result};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Removes `cpu` from the calling thread's affinity (call it before any
/// other thread or child exists; they inherit it). Returns the CPUs left,
/// or None when `cpu` is the only one allowed (nothing is changed then).
pub fn keep_off(cpu: usize) -> Result<Option<Vec<usize>>> {
    let now = sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    let mut left = CpuSet::new();
    let mut cpus = Vec::new();
    for c in (0..CpuSet::count()).filter(|&c| c != cpu && now.is_set(c).unwrap_or(false)) {
        left.set(c).context("building a CPU set")?;
        cpus.push(c);
    }
    if cpus.is_empty() {
        return Ok(None);
    }
    sched_setaffinity(Pid::from_raw(0), &left).context("sched_setaffinity")?;
    Ok(Some(cpus))
}

/// The calling thread's affinity.
pub fn current() -> Result<CpuSet> {
    sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")
}

/// Sets the calling thread's affinity (back) to `set`.
pub fn set(set: &CpuSet) -> Result<()> {
    sched_setaffinity(Pid::from_raw(0), set).context("sched_setaffinity")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_leaves_the_cpu() {
        // In a thread of our own, so the test process keeps its affinity.
        std::thread::spawn(|| {
            let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
            let first = (0..CpuSet::count())
                .find(|&c| allowed.is_set(c).unwrap())
                .unwrap();
            match keep_off(first).unwrap() {
                Some(left) => {
                    assert!(!left.contains(&first));
                    let now = sched_getaffinity(Pid::from_raw(0)).unwrap();
                    assert!(!now.is_set(first).unwrap());
                }
                None => assert_eq!(allowed, {
                    let mut s = CpuSet::new();
                    s.set(first).unwrap();
                    s
                }),
            }
        })
        .join()
        .unwrap();
    }
}
