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

/// `MemFree` of a node in bytes (from `node<N>/meminfo`, or `/proc/meminfo`
/// on kernels without NUMA sysfs).
pub fn node_free_bytes(roots: &Roots, node: u32) -> IhkResult<u64> {
    let p = roots.sys(&format!("devices/system/node/node{node}/meminfo"));
    let (text, prefix) = if p.exists() {
        (read_trim(&p)?, format!("Node {node} MemFree:"))
    } else {
        (read_trim(&roots.proc("meminfo"))?, "MemFree:".to_string())
    };
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix(&prefix) {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .map_err(|_| IhkError::io(format!("{}: bad MemFree line '{line}'", p.display())))?;
            return Ok(kb * 1024);
        }
    }
    Err(IhkError::io(format!("{}: no MemFree line", p.display())))
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
            "Node 1 MemTotal: 100 kB\nNode 1 MemFree:   42 kB\n",
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
        assert_eq!(node_free_bytes(&roots, 1).unwrap(), 42 * 1024);
    }
}
