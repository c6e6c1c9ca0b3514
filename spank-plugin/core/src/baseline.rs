//! What "the node is as before" means, measured: the hugepage pools
//! (global and per NUMA node) and the online CPUs, captured before a boot
//! and compared after the cleanup. ihkd raises `nr_hugepages` to back the
//! LWK's memory and must put every value back.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::SiteConfig;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    /// `nr_hugepages` files (path relative to the sys root) and their values.
    pub hugepages: BTreeMap<String, u64>,
    pub online_cpus: String,
}

impl Baseline {
    pub fn capture(config: &SiteConfig) -> Result<Self, String> {
        // On a shared host the pools are not this node's (SiteConfig::shared_host).
        let hugepages = if config.shared_host {
            BTreeMap::new()
        } else {
            hugepage_pools(config)?
        };
        let online = config.sys_path("/sys/devices/system/cpu/online");
        let online_cpus = std::fs::read_to_string(&online)
            .map_err(|e| format!("cannot read {}: {e}", online.display()))?
            .trim()
            .to_string();
        Ok(Baseline {
            hugepages,
            online_cpus,
        })
    }

    /// Every difference between this (before) and `now`, as a sentence.
    pub fn differences(&self, now: &Baseline) -> Vec<String> {
        let mut out = Vec::new();
        for (file, before) in &self.hugepages {
            match now.hugepages.get(file) {
                Some(after) if after == before => {}
                Some(after) => out.push(format!("/{file} is {after}, was {before} before the job")),
                None => out.push(format!("/{file} (was {before}) can no longer be read")),
            }
        }
        if self.online_cpus != now.online_cpus {
            out.push(format!(
                "online CPUs are {}, were {} before the job",
                now.online_cpus, self.online_cpus
            ));
        }
        out
    }
}

/// Every `nr_hugepages` of the machine (global and per NUMA node).
fn hugepage_pools(config: &SiteConfig) -> Result<BTreeMap<String, u64>, String> {
    let mut hugepages = BTreeMap::new();
    let mut pools = vec![config.sys_path("/sys/kernel/mm/hugepages")];
    if let Ok(nodes) = std::fs::read_dir(config.sys_path("/sys/devices/system/node")) {
        let mut nodes: Vec<_> = nodes
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("node"))
            .map(|e| e.path().join("hugepages"))
            .collect();
        nodes.sort();
        pools.extend(nodes);
    }
    for pool in pools {
        let Ok(sizes) = std::fs::read_dir(&pool) else {
            continue;
        };
        for size in sizes.flatten() {
            let file = size.path().join("nr_hugepages");
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let value = text
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("{}: {e}", file.display()))?;
            hugepages.insert(relative(&file, &config.sys_root), value);
        }
    }
    Ok(hugepages)
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .trim_start_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn capture_and_compare_a_fake_node() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let g = root.join("sys/kernel/mm/hugepages/hugepages-2048kB");
        let n = root.join("sys/devices/system/node/node0/hugepages/hugepages-2048kB");
        fs::create_dir_all(&g).unwrap();
        fs::create_dir_all(&n).unwrap();
        fs::create_dir_all(root.join("sys/devices/system/cpu")).unwrap();
        fs::write(g.join("nr_hugepages"), "0\n").unwrap();
        fs::write(n.join("nr_hugepages"), "0\n").unwrap();
        fs::write(root.join("sys/devices/system/cpu/online"), "0-3\n").unwrap();
        let config = SiteConfig {
            sys_root: root.to_path_buf(),
            ..SiteConfig::default()
        };
        let before = Baseline::capture(&config).unwrap();
        assert_eq!(before.hugepages.len(), 2);
        assert!(before
            .differences(&Baseline::capture(&config).unwrap())
            .is_empty());

        fs::write(n.join("nr_hugepages"), "256\n").unwrap();
        fs::write(root.join("sys/devices/system/cpu/online"), "0-2\n").unwrap();
        let diffs = before.differences(&Baseline::capture(&config).unwrap());
        assert_eq!(diffs.len(), 2, "{diffs:?}");
        assert!(
            diffs[0].contains("node0/hugepages/hugepages-2048kB/nr_hugepages is 256, was 0"),
            "{diffs:?}"
        );
        assert!(
            diffs[1].contains("online CPUs are 0-2, were 0-3"),
            "{diffs:?}"
        );

        // A node sharing the machine leaves the pools out, not the CPUs.
        let shared = SiteConfig {
            shared_host: true,
            ..config
        };
        let before = Baseline::capture(&shared).unwrap();
        assert!(before.hugepages.is_empty());
        fs::write(n.join("nr_hugepages"), "512\n").unwrap();
        fs::write(root.join("sys/devices/system/cpu/online"), "0-1\n").unwrap();
        let diffs = before.differences(&Baseline::capture(&shared).unwrap());
        assert_eq!(diffs, ["online CPUs are 0-1, were 0-2 before the job"]);
    }

    #[test]
    fn this_machine_captures() {
        let b = Baseline::capture(&SiteConfig::default()).unwrap();
        assert!(!b.online_cpus.is_empty());
    }
}
