//! What the node has: online CPUs, NUMA nodes, each CPU's node, each node's
//! free memory, read from `/sys` (under the configurable root).

use std::fs;

use crate::error::{IhkError, IhkResult};
use crate::list::CpuList;
use crate::paths::Roots;

fn read_trim(path: &std::path::Path) -> IhkResult<String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| IhkError::os(e, format!("reading {}", path.display())))
}

/// Parse a kernel list file (`0-3,8`); empty means none.
fn read_kernel_list(path: &std::path::Path) -> IhkResult<Vec<u32>> {
    let s = read_trim(path)?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    CpuList::parse(&s)
        .map(|l| l.sorted())
        .map_err(|e| IhkError::io(format!("{}: unexpected contents: {e}", path.display())))
}

/// Online CPUs, ascending.
pub fn online_cpus(roots: &Roots) -> IhkResult<Vec<u32>> {
    read_kernel_list(&roots.sys("devices/system/cpu/online"))
}

/// Online NUMA nodes, ascending (`[0]` on kernels without NUMA).
pub fn numa_nodes(roots: &Roots) -> IhkResult<Vec<u32>> {
    let p = roots.sys("devices/system/node/online");
    if !p.exists() {
        return Ok(vec![0]);
    }
    read_kernel_list(&p)
}

/// The NUMA node of a CPU (0 when the kernel does not say).
pub fn cpu_node(roots: &Roots, cpu: u32) -> u32 {
    for node in numa_nodes(roots).unwrap_or_else(|_| vec![0]) {
        let p = roots.sys(&format!("devices/system/node/node{node}/cpulist"));
        if let Ok(cpus) = read_kernel_list(&p) {
            if cpus.contains(&cpu) {
                return node;
            }
        }
    }
    0
}

/// Memory of a node that a reservation can take, in bytes: `MemFree` plus
/// the page cache and reclaimable slab the kernel drops when the reserved
/// pages are populated (the per-node equivalent of `MemAvailable`). McKernel's
/// mcreboot.sh drops the caches before reserving; here the kernel reclaims
/// them on demand, so nothing else on the node is disturbed. Read from
/// `node<N>/meminfo`, or `/proc/meminfo` on kernels without NUMA sysfs.
pub fn node_free_bytes(roots: &Roots, node: u32) -> IhkResult<u64> {
    let p = roots.sys(&format!("devices/system/node/node{node}/meminfo"));
    let (text, prefix, path) = if p.exists() {
        (read_trim(&p)?, format!("Node {node} "), p)
    } else {
        let q = roots.proc("meminfo");
        (read_trim(&q)?, String::new(), q)
    };
    let field = |name: &str| -> IhkResult<Option<u64>> {
        let key = format!("{prefix}{name}:");
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix(&key) {
                let kb: u64 = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .map_err(|_| IhkError::io(format!("{}: bad {name} line '{line}'", path.display())))?;
                return Ok(Some(kb * 1024));
            }
        }
        Ok(None)
    };
    let free = field("MemFree")?
        .ok_or_else(|| IhkError::io(format!("{}: no MemFree line", path.display())))?;
    let mut reclaimable = 0;
    for name in ["Active(file)", "Inactive(file)", "SReclaimable"] {
        reclaimable += field(name)?.unwrap_or(0);
    }
    Ok(free + reclaimable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let roots = Roots::default();
        let cpus = online_cpus(&roots).unwrap();
        assert!(!cpus.is_empty());
        let nodes = numa_nodes(&roots).unwrap();
        assert!(nodes.contains(&0));
        assert!(node_free_bytes(&roots, 0).unwrap() > 0);
        assert!(nodes.contains(&cpu_node(&roots, cpus[0])));
    }

    #[test]
    fn reads_a_fake_tree() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("sys/devices/system");
        fs::create_dir_all(sys.join("cpu")).unwrap();
        fs::create_dir_all(sys.join("node/node1")).unwrap();
        fs::write(sys.join("cpu/online"), "0-3,8\n").unwrap();
        fs::write(sys.join("node/online"), "0-1\n").unwrap();
        fs::write(sys.join("node/node1/cpulist"), "2-3\n").unwrap();
        fs::write(
            sys.join("node/node1/meminfo"),
            "Node 1 MemTotal: 100 kB\nNode 1 MemFree:   42 kB\nNode 1 Active(file):  8 kB\nNode 1 Inactive(file): 2 kB\nNode 1 SReclaimable: 1 kB\n",
        )
        .unwrap();
        let roots = Roots {
            proc_root: d.path().into(),
            sys_root: d.path().into(),
        };
        assert_eq!(online_cpus(&roots).unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(numa_nodes(&roots).unwrap(), vec![0, 1]);
        assert_eq!(cpu_node(&roots, 3), 1);
        assert_eq!(cpu_node(&roots, 8), 0);
        assert_eq!(node_free_bytes(&roots, 1).unwrap(), (42 + 8 + 2 + 1) * 1024);
    }
}
