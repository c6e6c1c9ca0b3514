//! What the node has, read from sysfs: online CPUs grouped by core, NUMA
//! nodes with their memory, and the translation of Slurm's core numbers into
//! Linux CPU ids.
//!
//! Slurm hands a step its allocation as *abstract* core numbers
//! (`S_JOB_ALLOC_CORES`, socket-major: socket 0's cores, then socket 1's).
//! We number the machine's cores the same way, sorted by (package, core id),
//! and give each core all its hardware threads. When Slurm counts hardware
//! threads as cores (a slurm.conf that declares only `CPUs=`), the numbers
//! exceed the machine's core count and are taken as CPU ids instead.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::SiteConfig;
use crate::lists::CpuSet;

#[derive(Debug, Clone, PartialEq)]
pub struct NumaNode {
    pub mem_total: u64,
    pub cpus: CpuSet,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub online: CpuSet,
    /// Linux CPU ids of each core, in Slurm's abstract core order.
    pub cores: Vec<Vec<u32>>,
    pub numa: BTreeMap<u32, NumaNode>,
}

fn read_trim(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl Topology {
    pub fn read(config: &SiteConfig) -> Result<Self, String> {
        let cpu_dir = config.sys_path("/sys/devices/system/cpu");
        let online_s = read_trim(&cpu_dir.join("online"))?;
        let online = CpuSet::parse(&online_s).map_err(|e| e.to_string())?;

        let mut by_core: BTreeMap<(u32, u32), Vec<u32>> = BTreeMap::new();
        for cpu in online.iter() {
            let topo = cpu_dir.join(format!("cpu{cpu}/topology"));
            let num = |name: &str| -> Result<u32, String> {
                let p = topo.join(name);
                let s = read_trim(&p)?;
                // physical_package_id is -1 on some virtual machines.
                Ok(s.parse::<i64>()
                    .map_err(|e| format!("{}: {e}", p.display()))?
                    .max(0) as u32)
            };
            let key = (num("physical_package_id")?, num("core_id")?);
            by_core.entry(key).or_default().push(cpu);
        }
        let cores = by_core.into_values().collect();

        let mut numa = BTreeMap::new();
        let node_dir = config.sys_path("/sys/devices/system/node");
        if node_dir.join("online").exists() {
            let nodes = CpuSet::parse(&read_trim(&node_dir.join("online"))?)
                .map_err(|e| format!("NUMA nodes: {e}"))?;
            for n in nodes.iter() {
                let dir = node_dir.join(format!("node{n}"));
                let mem_total = meminfo_total(&read_trim(&dir.join("meminfo"))?)
                    .ok_or_else(|| format!("no MemTotal in {}/meminfo", dir.display()))?;
                let cpulist = read_trim(&dir.join("cpulist"))?;
                let cpus = CpuSet::try_from(cpulist).map_err(|e| e.to_string())?;
                numa.insert(n, NumaNode { mem_total, cpus });
            }
        } else {
            // A kernel without NUMA support: one node 0 with all memory.
            let meminfo = config.sys_path("/proc/meminfo");
            let mem_total = meminfo_total(&read_trim(&meminfo)?)
                .ok_or_else(|| format!("no MemTotal in {}", meminfo.display()))?;
            numa.insert(
                0,
                NumaNode {
                    mem_total,
                    cpus: online.clone(),
                },
            );
        }
        Ok(Topology {
            online,
            cores,
            numa,
        })
    }

    /// Linux CPUs of Slurm's abstract cores (see the module comment).
    pub fn cpus_of_slurm_cores(&self, cores: &CpuSet) -> Result<CpuSet, String> {
        let highest = cores.iter().next_back().unwrap_or(0) as usize;
        if highest < self.cores.len() {
            Ok(CpuSet::from_ids(
                cores.iter().flat_map(|c| self.cores[c as usize].clone()),
            ))
        } else if cores.is_subset(&self.online) {
            Ok(cores.clone())
        } else {
            Err(format!(
                "Slurm allocated cores {cores} on this node, but it has {} cores (CPUs {}): \
                 slurm.conf does not describe this node",
                self.cores.len(),
                self.online
            ))
        }
    }
}

/// `Node 0 MemTotal:  24683520 kB` (per node) or `MemTotal: ... kB` (/proc).
fn meminfo_total(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, rest) = line.split_once(':')?;
        if !key.trim_end().ends_with("MemTotal") {
            return None;
        }
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// A fake /sys with `cpus` = [(cpu, package, core)], and NUMA nodes
    /// [(node, MiB, cpulist)].
    pub fn fake_sys(root: &Path, cpus: &[(u32, i32, u32)], nodes: &[(u32, u64, &str)]) {
        let cpu_dir = root.join("sys/devices/system/cpu");
        fs::create_dir_all(&cpu_dir).unwrap();
        let online = CpuSet::from_ids(cpus.iter().map(|c| c.0));
        fs::write(cpu_dir.join("online"), format!("{online}\n")).unwrap();
        for (cpu, pkg, core) in cpus {
            let t = cpu_dir.join(format!("cpu{cpu}/topology"));
            fs::create_dir_all(&t).unwrap();
            fs::write(t.join("physical_package_id"), format!("{pkg}\n")).unwrap();
            fs::write(t.join("core_id"), format!("{core}\n")).unwrap();
        }
        let node_dir = root.join("sys/devices/system/node");
        fs::create_dir_all(&node_dir).unwrap();
        let ids = CpuSet::from_ids(nodes.iter().map(|n| n.0));
        fs::write(node_dir.join("online"), format!("{ids}\n")).unwrap();
        for (n, mib, cpulist) in nodes {
            let d = node_dir.join(format!("node{n}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(
                d.join("meminfo"),
                format!(
                    "Node {n} MemTotal:       {} kB\nNode {n} MemFree: 1 kB\n",
                    mib * 1024
                ),
            )
            .unwrap();
            fs::write(d.join("cpulist"), format!("{cpulist}\n")).unwrap();
        }
    }

    fn config_for(root: &Path) -> SiteConfig {
        SiteConfig {
            sys_root: root.to_path_buf(),
            ..SiteConfig::default()
        }
    }

    #[test]
    fn hyperthreaded_two_socket_node() {
        let dir = tempfile::tempdir().unwrap();
        // 2 packages x 2 cores x 2 threads; Linux numbers threads last.
        let cpus = [
            (0, 0, 0),
            (1, 0, 1),
            (2, 1, 0),
            (3, 1, 1),
            (4, 0, 0),
            (5, 0, 1),
            (6, 1, 0),
            (7, 1, 1),
        ];
        fake_sys(
            dir.path(),
            &cpus,
            &[(0, 1024, "0-1,4-5"), (1, 2048, "2-3,6-7")],
        );
        let t = Topology::read(&config_for(dir.path())).unwrap();
        assert_eq!(
            t.cores,
            vec![vec![0, 4], vec![1, 5], vec![2, 6], vec![3, 7]]
        );
        assert_eq!(t.numa[&1].mem_total, 2048 << 20);
        let cpus = t
            .cpus_of_slurm_cores(&CpuSet::parse("1-2").unwrap())
            .unwrap();
        assert_eq!(cpus.to_string(), "1-2,5-6");
        // Slurm counting threads as cores: ids are CPU ids.
        let cpus = t
            .cpus_of_slurm_cores(&CpuSet::parse("6-7").unwrap())
            .unwrap();
        assert_eq!(cpus.to_string(), "6-7");
        let e = t
            .cpus_of_slurm_cores(&CpuSet::parse("9").unwrap())
            .unwrap_err();
        assert!(e.contains("slurm.conf does not describe this node"), "{e}");
    }

    #[test]
    fn this_machine_reads() {
        let t = Topology::read(&SiteConfig::default()).unwrap();
        assert!(!t.online.is_empty());
        assert!(t.numa.contains_key(&0));
        assert_eq!(t.cores.iter().map(Vec::len).sum::<usize>(), t.online.len());
    }
}
