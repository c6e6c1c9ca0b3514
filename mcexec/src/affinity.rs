//! Where the proxy runs on Linux: off the partition's CPUs.
//!
//! A launcher binds each rank to a core (Open MPI's default `--bind-to
//! core`, Slurm's `--cpu-bind`, MPICH's `-bind-to`); when that core is one
//! the partition reserved, mcexec's proxy threads would compete with the
//! vCPU thread that runs the LWK program. Before it starts any proxy
//! thread, mcexec drops the partition's host CPUs from its affinity: it
//! keeps the Linux CPUs of its mask, or, when the launcher left it only
//! partition CPUs, takes every online Linux CPU instead. Where the node
//! has no Linux CPU outside the partition (a test machine whose partition
//! shares every CPU, `pin` isolation) the mask stays as it was. The LWK
//! process's own placement does not depend on this: it follows `-n` and
//! the launcher's local rank (docs/mcexec.md). `MCEXEC_KEEP_AFFINITY=1`
//! keeps the launcher's mask unchanged.

use ihk_client::paths::RuntimeDir;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The mask to use, given the current mask, the partition's host CPUs and
/// the online CPUs; None to keep the current one.
pub fn proxy_cpus(current: &[usize], partition: &[usize], online: &[usize]) -> Option<Vec<usize>> {
    if !current.iter().any(|c| partition.contains(c)) {
        return None;
    }
    let linux = |set: &[usize]| set.iter().copied().filter(|c| !partition.contains(c)).collect::<Vec<_>>();
    let kept = linux(current);
    if !kept.is_empty() {
        return Some(kept);
    }
    let all = linux(online);
    (!all.is_empty()).then_some(all)
}

fn cpus_of(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect()
}

/// Online CPUs from `/sys/devices/system/cpu/online` ("0-3,8").
fn online_cpus() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| ihk_client::list::CpuList::parse(s.trim()).ok())
        .map(|l| l.ids().iter().map(|&c| c as usize).collect())
        .unwrap_or_default()
}

/// The host CPUs of OS instance `os` (ihkd's `os_query_cpu`, which any
/// user may ask), in LWK CPU order; None when ihkd cannot say.
pub fn partition_cpus(dir: &RuntimeDir, os: u32) -> Option<Vec<usize>> {
    let cpus = ihk_client::client::Client::os(dir, os).and_then(|mut c| c.os_query_cpu()).ok()?;
    Some(cpus.into_iter().map(|c| c as usize).collect())
}

/// Applies `proxy_cpus` to every thread of this process. Failures (a
/// cgroup that forbids the Linux CPUs, an ihkd that cannot say which CPUs
/// the partition has) leave the mask as it was: the program still runs.
pub fn keep_proxy_off_partition(dir: &RuntimeDir, os: u32) {
    if std::env::var_os("MCEXEC_KEEP_AFFINITY").is_some_and(|v| v == "1") {
        return;
    }
    let Some(partition) = partition_cpus(dir, os) else { return };
    let Ok(current) = sched_getaffinity(Pid::from_raw(0)) else { return };
    let Some(want) = proxy_cpus(&cpus_of(&current), &partition, &online_cpus()) else { return };
    let mut set = CpuSet::new();
    for c in want {
        if set.set(c).is_err() {
            return;
        }
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
    for t in tasks.flatten() {
        if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            let _ = sched_setaffinity(Pid::from_raw(tid), &set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::proxy_cpus;

    #[test]
    fn masks() {
        // Bound to a partition CPU: every online Linux CPU instead.
        assert_eq!(proxy_cpus(&[3], &[2, 3], &[0, 1, 2, 3]), Some(vec![0, 1]));
        // Partly inside: the Linux part.
        assert_eq!(proxy_cpus(&[1, 2, 3], &[2, 3], &[0, 1, 2, 3]), Some(vec![1]));
        // Already off the partition: unchanged.
        assert_eq!(proxy_cpus(&[0, 1], &[2, 3], &[0, 1, 2, 3]), None);
        // No Linux CPU outside the partition: unchanged.
        assert_eq!(proxy_cpus(&[0, 1], &[0, 1], &[0, 1]), None);
    }
}
