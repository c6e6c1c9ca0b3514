//! `ihk_reserve_mem_conf` (§1.2.1.6): settings that apply to the next
//! memory reservation only (then the defaults come back), and the balanced
//! planner.
//!
//! How each setting acts here, where memory is reserved as memfd regions of
//! huge or 4 KiB pages rather than physically contiguous kernel chunks:
//! * BALANCED_ENABLE / BEST_EFFORT / VARIANCE_LIMIT: as specified (see
//!   [`plan_balanced`]).
//! * MAX_SIZE_RATIO_ALL: the share of a node's free memory that `ALL`
//!   (size -1) and balanced mode may take (node 0 stays capped at 95%).
//! * MIN_CHUNK_SIZE: the smallest physically contiguous piece accepted,
//!   i.e. the smallest page size: 2 MiB or more refuses 4 KiB pages, 1 GiB
//!   or more refuses 2 MiB pages; a reservation that cannot get large
//!   enough pages fails with ENOMEM and leaves nothing reserved.
//! * TIMEOUT: a reservation that took longer (checked after each NUMA
//!   node) is undone and fails with ENOMEM.

use std::collections::BTreeMap;
use std::time::Instant;

use super::state::{State, NODE0_MAX_PERCENT};
use crate::error::{IhkError, IhkResult};
use crate::host::topology;
use crate::list::{format_cpus, format_size, MemList, MemSize, MEM_GRANULE};

pub use ihk_client::proto::libihk::MemConf;

/// Balanced reservation (§1.2.1.6 steps 1-2). `requested`: per node, the
/// size asked for (`None` = -1/ALL: the node's cap); `caps`: per node, what
/// may be taken (free memory times the ratio, node 0 also at most 95%).
/// Returns bytes per node, multiples of 4 MiB, as equal as the caps allow.
pub fn plan_balanced(
    requested: &BTreeMap<u32, Option<u64>>,
    caps: &BTreeMap<u32, u64>,
    conf: &MemConf,
) -> IhkResult<BTreeMap<u32, u64>> {
    let nodes: Vec<u32> = requested.keys().copied().collect();
    if nodes.is_empty() {
        return Err(IhkError::inval("no NUMA node given"));
    }
    let cap = |n: u32| caps.get(&n).copied().unwrap_or(0) / MEM_GRANULE * MEM_GRANULE;
    let available: u64 = nodes.iter().map(|&n| cap(n)).sum();
    let asked: u64 = requested
        .iter()
        .map(|(&n, s)| s.unwrap_or_else(|| cap(n)))
        .sum();
    let total = if asked > available {
        if !conf.best_effort {
            return Err(IhkError::nomem(format!(
                "balanced reservation of {} over NUMA nodes {nodes:?}: only {} can be reserved",
                format_size(asked),
                format_size(available)
            )));
        }
        available
    } else {
        asked
    };
    // Water-filling in 4 MiB granules: every node gets the same share
    // until its cap stops it.
    let mut plan: BTreeMap<u32, u64> = nodes.iter().map(|&n| (n, 0)).collect();
    let mut left = total / MEM_GRANULE;
    while left > 0 {
        let open: Vec<u32> = nodes
            .iter()
            .copied()
            .filter(|&n| plan[&n] < cap(n))
            .collect();
        if open.is_empty() {
            break;
        }
        let share = (left / open.len() as u64).max(1);
        for n in open {
            if left == 0 {
                break;
            }
            let room = (cap(n) - plan[&n]) / MEM_GRANULE;
            let g = share.min(room).min(left);
            *plan.get_mut(&n).unwrap() += g * MEM_GRANULE;
            left -= g;
        }
    }
    if let Some(limit) = conf.variance_limit {
        let sizes: Vec<u64> = plan.values().copied().collect();
        let mean = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
        if mean > 0.0 {
            let dev =
                sizes.iter().map(|&s| (s as f64 - mean).abs()).sum::<f64>() / sizes.len() as f64;
            let pct = dev / mean * 100.0;
            if pct > limit as f64 {
                return Err(IhkError::nomem(format!(
                    "balanced reservation would differ by {pct:.1}% between NUMA nodes (limit {limit}%): {}",
                    plan.iter()
                        .map(|(n, b)| format!("{}@{n}", format_size(*b)))
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
        }
    }
    plan.retain(|_, b| *b > 0);
    if plan.is_empty() {
        return Err(IhkError::nomem(
            "no memory can be reserved on the given NUMA nodes",
        ));
    }
    Ok(plan)
}

impl State {
    /// Bytes per node of a balanced reservation of `mem`.
    pub(super) fn plan_balanced(&self, mem: &MemList) -> IhkResult<BTreeMap<u32, u64>> {
        let nodes = topology::numa_nodes(&self.roots)?;
        let mut requested: BTreeMap<u32, Option<u64>> = BTreeMap::new();
        for c in mem.chunks() {
            let node = c.node();
            if !nodes.contains(&node) {
                return Err(IhkError::inval(format!(
                    "NUMA node {node} does not exist; this node's NUMA nodes are {}",
                    format_cpus(&nodes)
                )));
            }
            let e = requested.entry(node).or_insert(Some(0));
            *e = match (*e, c.size) {
                (Some(a), MemSize::Bytes(b)) => Some(a.saturating_add(b)),
                _ => None,
            };
        }
        let mut caps = BTreeMap::new();
        for &node in requested.keys() {
            let free = topology::node_free_bytes(&self.roots, node)?;
            let mut cap = free / 100 * self.mem_conf.max_size_ratio_all;
            if node == 0 {
                cap = cap.min(free / 100 * NODE0_MAX_PERCENT);
            }
            caps.insert(node, cap);
        }
        plan_balanced(&requested, &caps, &self.mem_conf)
    }

    /// After one node's regions were created: page sizes and time as the
    /// settings demand (the caller rolls back on error).
    pub(super) fn check_mem_conf(
        &self,
        conf: &MemConf,
        ids: &[u64],
        started: Instant,
    ) -> IhkResult<()> {
        for id in ids {
            if let Some(r) = self.mem.region(*id) {
                if r.page_kb() < conf.min_page_kb() {
                    return Err(IhkError::nomem(format!(
                        "NUMA node {}: only {} KiB pages could be had, and IHK_RESERVE_MEM_MIN_CHUNK_SIZE is {} bytes",
                        r.node(),
                        r.page_kb(),
                        conf.min_chunk_size
                    )));
                }
            }
        }
        if started.elapsed() > conf.timeout {
            return Err(IhkError::nomem(format!(
                "the reservation took {:.1} s, longer than IHK_RESERVE_MEM_TIMEOUT ({} s)",
                started.elapsed().as_secs_f64(),
                conf.timeout.as_secs()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::libihk::MemConfKey;

    const M: u64 = 1 << 20;

    fn req(v: &[(u32, Option<u64>)]) -> BTreeMap<u32, Option<u64>> {
        v.iter().copied().collect()
    }
    fn caps(v: &[(u32, u64)]) -> BTreeMap<u32, u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn settings_are_validated() {
        let mut c = MemConf::default();
        assert!(c.set(MemConfKey::MaxSizeRatioAll, 99).is_err());
        assert!(c.set(MemConfKey::MaxSizeRatioAll, 0).is_err());
        assert_eq!(c, MemConf::default(), "a refused value changes nothing");
        c.set(MemConfKey::MaxSizeRatioAll, 50).unwrap();
        c.set(MemConfKey::Timeout, 5).unwrap();
        assert!(c.set(MemConfKey::Timeout, 0).is_err());
        assert!(c.set(MemConfKey::MinChunkSize, 100).is_err());
        c.set(MemConfKey::MinChunkSize, 2 << 20).unwrap();
        assert_eq!(c.min_page_kb(), 2048);
        c.set(MemConfKey::MinChunkSize, (2 << 20) + 4096).unwrap();
        assert_eq!(c.min_page_kb(), 1 << 20);
        assert_eq!(MemConf::default().min_page_kb(), 4);
    }

    #[test]
    fn balanced_spreads_the_total_evenly() {
        let c = MemConf {
            balanced: true,
            ..Default::default()
        };
        let p = plan_balanced(
            &req(&[(0, Some(100 * M)), (1, Some(300 * M))]),
            &caps(&[(0, 4096 * M), (1, 4096 * M)]),
            &c,
        )
        .unwrap();
        assert_eq!(p, caps(&[(0, 200 * M), (1, 200 * M)]));
    }

    #[test]
    fn a_small_node_is_filled_and_the_rest_goes_elsewhere() {
        let c = MemConf::default();
        let p = plan_balanced(
            &req(&[(0, Some(400 * M)), (1, Some(400 * M))]),
            &caps(&[(0, 1000 * M), (1, 100 * M)]),
            &c,
        )
        .unwrap();
        assert_eq!(p, caps(&[(0, 700 * M), (1, 100 * M)]));
        // ...unless the variance limit forbids it.
        let strict = MemConf {
            variance_limit: Some(10),
            ..Default::default()
        };
        let e = plan_balanced(
            &req(&[(0, Some(400 * M)), (1, Some(400 * M))]),
            &caps(&[(0, 1000 * M), (1, 100 * M)]),
            &strict,
        )
        .unwrap_err();
        assert_eq!(e.errno, libc::ENOMEM);
    }

    #[test]
    fn too_much_is_enomem_unless_best_effort() {
        let r = req(&[(0, Some(1024 * M))]);
        let cp = caps(&[(0, 512 * M)]);
        let e = plan_balanced(&r, &cp, &MemConf::default()).unwrap_err();
        assert_eq!(e.errno, libc::ENOMEM);
        let be = MemConf {
            best_effort: true,
            ..Default::default()
        };
        assert_eq!(plan_balanced(&r, &cp, &be).unwrap(), caps(&[(0, 512 * M)]));
        // -1 (None) means the node's cap.
        assert_eq!(
            plan_balanced(&req(&[(0, None)]), &cp, &MemConf::default()).unwrap(),
            caps(&[(0, 512 * M)])
        );
    }
}
