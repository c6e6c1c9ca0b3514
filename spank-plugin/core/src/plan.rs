//! Turns the user's options, the step's allocation and the site rules into
//! the partition to boot on this node, or into the message that explains
//! why not. Pure: reads nothing, changes nothing.

use crate::config::SiteConfig;
use crate::lists::{format_size, CpuSet, IkcMap, MemList};
use crate::options::{CpuRequest, JobOptions};
use crate::topology::Topology;

/// What Slurm says about the step on this node.
#[derive(Debug, Clone)]
pub struct StepInfo {
    pub job_id: u32,
    pub step_id: u32,
    pub uid: u32,
    pub gid: u32,
    /// `S_JOB_ALLOC_CORES`: the job's abstract cores on this node.
    pub alloc_cores: String,
    /// `S_JOB_LOCAL_TASK_COUNT`.
    pub local_tasks: u32,
}

/// The partition of a job on one node: what `mcreboot` is given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionSpec {
    pub cpus: CpuSet,
    pub mem: MemList,
    pub ikc_map: Option<IkcMap>,
    /// Extra kernel arguments (`mcreboot -e`), site's then the job's.
    pub kargs: String,
    pub uid: u32,
    pub gid: u32,
}

impl PartitionSpec {
    /// `mcreboot` arguments (without the program).
    pub fn mcreboot_args(&self) -> Vec<String> {
        let mut args = vec![
            "-c".to_string(),
            self.cpus.to_string(),
            "-m".to_string(),
            self.mem.to_string(),
        ];
        if let Some(map) = &self.ikc_map {
            args.push("-r".into());
            args.push(map.to_string());
        }
        args.push("-o".into());
        args.push(format!("{}:{}", self.uid, self.gid));
        // mcreboot.sh has options for the arguments it knows (it always
        // passes "hidos"); anything else goes through -e, its extra options.
        let mut extra = Vec::new();
        for word in self.kargs.split_whitespace() {
            match word {
                "hidos" => {}
                "allow_oversubscribe" => args.push("-O".into()),
                "turbo" => args.push("-t".into()),
                w => match w.strip_prefix("dump_level=") {
                    Some(level) => {
                        args.push("-d".into());
                        args.push(level.into());
                    }
                    None => extra.push(w),
                },
            }
        }
        if !extra.is_empty() {
            args.push("-e".into());
            args.push(extra.join(" "));
        }
        args
    }

    /// The LWK accepts more processes than CPUs (kernel argument).
    pub fn oversubscribed(&self) -> bool {
        self.kargs
            .split_whitespace()
            .any(|w| w == "allow_oversubscribe")
    }

    /// One line for logs and messages.
    pub fn describe(&self) -> String {
        let mut s = format!("CPUs {} and memory {}", self.cpus, self.mem);
        if let Some(map) = &self.ikc_map {
            s.push_str(&format!(", IKC map {map}"));
        }
        if !self.kargs.is_empty() {
            s.push_str(&format!(", kernel arguments \"{}\"", self.kargs));
        }
        s
    }
}

pub fn plan(
    opts: &JobOptions,
    step: &StepInfo,
    config: &SiteConfig,
    topo: &Topology,
) -> Result<PartitionSpec, String> {
    let mem = opts.mem.clone().ok_or("--mckernel was not given")?;
    check_memory(&mem, config, topo)?;

    let cores = CpuSet::parse(&step.alloc_cores)
        .map_err(|e| format!("Slurm gave this node an unreadable allocation: {e}"))?;
    let allocated = topo.cpus_of_slurm_cores(&cores)?;
    if config.require_exclusive && allocated != topo.online {
        return Err(format!(
            "this site runs McKernel only on whole nodes: the job holds CPUs {allocated} of \
             {}; submit with --exclusive",
            topo.online
        ));
    }
    let eligible = allocated.difference(&config.linux_cpus);
    let cpus = match &opts.cpus {
        None => {
            if eligible.is_empty() {
                return Err(format!(
                    "no CPU left for the LWK: the job holds CPUs {allocated} on this node and the \
                     site keeps {} for Linux; ask for more CPUs",
                    config.linux_cpus
                ));
            }
            eligible
        }
        Some(CpuRequest::Count(n)) => {
            let n = *n as usize;
            if n > eligible.len() {
                return Err(format!(
                    "--mckernel-cpus={n}: only {} CPUs can go to the LWK on this node (job's CPUs \
                     {allocated}, kept for Linux: {})",
                    eligible.len(),
                    display_or_none(&config.linux_cpus)
                ));
            }
            // The highest-numbered ones: Linux keeps the low CPUs it boots on.
            CpuSet::from_ids(eligible.iter().rev().take(n))
        }
        Some(CpuRequest::List(list)) => {
            let outside = list.difference(&allocated);
            if !outside.is_empty() {
                return Err(format!(
                    "--mckernel-cpus={list}: CPUs {outside} are not allocated to the job on this \
                     node (it holds {allocated})"
                ));
            }
            let kept = list.difference(&list.difference(&config.linux_cpus));
            if !kept.is_empty() {
                return Err(format!(
                    "--mckernel-cpus={list}: CPUs {kept} are kept for Linux by the site configuration"
                ));
            }
            list.clone()
        }
    };
    let kargs = [config.kargs.trim(), opts.kargs.as_deref().unwrap_or("")]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let oversubscribe = kargs.split_whitespace().any(|w| w == "allow_oversubscribe");
    if step.local_tasks as usize > cpus.len() && !oversubscribe {
        return Err(format!(
            "{} tasks on this node need at least {} LWK CPUs, the partition has {} ({cpus}); \
             use fewer tasks per node, more CPUs, or --mckernel-kargs=allow_oversubscribe",
            step.local_tasks,
            step.local_tasks,
            cpus.len()
        ));
    }
    if let Some(map) = &opts.ikc_map {
        let foreign = CpuSet::lwk_cpus_of(map).difference(&cpus);
        if !foreign.is_empty() {
            return Err(format!(
                "--mckernel-ikc-map={map}: CPUs {foreign} are not LWK CPUs of this partition ({cpus})"
            ));
        }
        let missing = CpuSet::linux_cpus_of(map).difference(&topo.online);
        if !missing.is_empty() {
            return Err(format!(
                "--mckernel-ikc-map={map}: Linux CPUs {missing} are not online on this node"
            ));
        }
    }
    Ok(PartitionSpec {
        cpus,
        mem,
        ikc_map: opts.ikc_map.clone(),
        kargs,
        uid: step.uid,
        gid: step.gid,
    })
}

fn display_or_none(set: &CpuSet) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.to_string()
    }
}

fn check_memory(mem: &MemList, config: &SiteConfig, topo: &Topology) -> Result<(), String> {
    let nodes: Vec<String> = topo.numa.keys().map(u32::to_string).collect();
    for (node, bytes) in mem.per_node() {
        let Some(info) = topo.numa.get(&node) else {
            return Err(format!(
                "--mckernel={mem}: NUMA node {node} does not exist on this node (it has {})",
                nodes.join(",")
            ));
        };
        let limit = (info.mem_total as f64 * config.max_memory_fraction) as u64;
        if bytes > limit {
            return Err(format!(
                "--mckernel={mem}: {} on NUMA node {node} is more than the site limit of {:.0}% of \
                 its {} ({})",
                format_size(bytes),
                config.max_memory_fraction * 100.0,
                format_size(info.mem_total),
                format_size(limit)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::OptionId;
    use crate::topology::NumaNode;
    use std::collections::BTreeMap;

    fn topo4() -> Topology {
        let mut numa = BTreeMap::new();
        numa.insert(
            0,
            NumaNode {
                mem_total: 8 << 30,
                cpus: CpuSet::parse("0-1").unwrap(),
            },
        );
        numa.insert(
            1,
            NumaNode {
                mem_total: 8 << 30,
                cpus: CpuSet::parse("2-3").unwrap(),
            },
        );
        Topology {
            online: CpuSet::parse("0-3").unwrap(),
            cores: vec![vec![0], vec![1], vec![2], vec![3]],
            numa,
        }
    }

    fn step(cores: &str, tasks: u32) -> StepInfo {
        StepInfo {
            job_id: 7,
            step_id: 0,
            uid: 1000,
            gid: 100,
            alloc_cores: cores.into(),
            local_tasks: tasks,
        }
    }

    fn opts(pairs: &[(OptionId, &str)]) -> JobOptions {
        let mut o = JobOptions::default();
        for (id, v) in pairs {
            o.set(*id, v).unwrap();
        }
        o
    }

    fn config(linux: &str) -> SiteConfig {
        SiteConfig {
            linux_cpus: CpuSet::try_from(linux.to_string()).unwrap(),
            ..SiteConfig::default()
        }
    }

    #[test]
    fn default_cpus_are_the_allocation_minus_linux_cpus() {
        let p = plan(
            &opts(&[(OptionId::Mem, "1G@1")]),
            &step("0-3", 1),
            &config("0"),
            &topo4(),
        )
        .unwrap();
        assert_eq!(p.cpus.to_string(), "1-3");
        assert_eq!(
            p.mcreboot_args(),
            ["-c", "1-3", "-m", "1G@1", "-o", "1000:100"]
                .map(String::from)
                .to_vec()
        );
    }

    #[test]
    fn counts_and_lists() {
        let t = topo4();
        let p = plan(
            &opts(&[(OptionId::Mem, "1G"), (OptionId::Cpus, "2")]),
            &step("0-3", 2),
            &config("0"),
            &t,
        )
        .unwrap();
        assert_eq!(p.cpus.to_string(), "2-3");
        let e = plan(
            &opts(&[(OptionId::Mem, "1G"), (OptionId::Cpus, "4")]),
            &step("0-3", 1),
            &config("0"),
            &t,
        )
        .unwrap_err();
        assert!(e.contains("only 3 CPUs"), "{e}");
        let e = plan(
            &opts(&[(OptionId::Mem, "1G"), (OptionId::Cpus, "2-3")]),
            &step("0-1", 1),
            &config(""),
            &t,
        )
        .unwrap_err();
        assert!(
            e.contains("CPUs 2-3 are not allocated to the job on this node (it holds 0-1)"),
            "{e}"
        );
        let e = plan(
            &opts(&[(OptionId::Mem, "1G"), (OptionId::Cpus, "0-1")]),
            &step("0-3", 1),
            &config("0"),
            &t,
        )
        .unwrap_err();
        assert!(e.contains("CPUs 0 are kept for Linux"), "{e}");
        let e = plan(
            &opts(&[(OptionId::Mem, "1G")]),
            &step("0", 1),
            &config("0"),
            &t,
        )
        .unwrap_err();
        assert!(e.contains("no CPU left for the LWK"), "{e}");
    }

    #[test]
    fn tasks_need_cpus() {
        let e = plan(
            &opts(&[(OptionId::Mem, "1G"), (OptionId::Cpus, "1")]),
            &step("0-3", 2),
            &config(""),
            &topo4(),
        )
        .unwrap_err();
        assert!(
            e.contains("2 tasks on this node need at least 2 LWK CPUs"),
            "{e}"
        );
        let p = plan(
            &opts(&[
                (OptionId::Mem, "1G"),
                (OptionId::Cpus, "1"),
                (OptionId::Kargs, "allow_oversubscribe"),
            ]),
            &step("0-3", 2),
            &config(""),
            &topo4(),
        )
        .unwrap();
        assert!(p.oversubscribed());
    }

    #[test]
    fn memory_rules() {
        let t = topo4();
        let e = plan(
            &opts(&[(OptionId::Mem, "1G@9")]),
            &step("0-3", 1),
            &config(""),
            &t,
        )
        .unwrap_err();
        assert!(
            e.contains("NUMA node 9 does not exist on this node (it has 0,1)"),
            "{e}"
        );
        // 90% of 8 GiB is 7.2 GiB: 7G fits, 4G+4G on one node does not.
        plan(
            &opts(&[(OptionId::Mem, "7G@0")]),
            &step("0-3", 1),
            &config(""),
            &t,
        )
        .unwrap();
        let e = plan(
            &opts(&[(OptionId::Mem, "4G@1,4G@1")]),
            &step("0-3", 1),
            &config(""),
            &t,
        )
        .unwrap_err();
        assert!(
            e.contains("8 GiB on NUMA node 1 is more than the site limit of 90%"),
            "{e}"
        );
    }

    #[test]
    fn exclusive_and_ikc_map() {
        let t = topo4();
        let mut c = config("");
        c.require_exclusive = true;
        let e = plan(&opts(&[(OptionId::Mem, "1G")]), &step("0-1", 1), &c, &t).unwrap_err();
        assert!(e.contains("--exclusive"), "{e}");
        plan(&opts(&[(OptionId::Mem, "1G")]), &step("0-3", 1), &c, &t).unwrap();
        let e = plan(
            &opts(&[
                (OptionId::Mem, "1G"),
                (OptionId::Cpus, "2-3"),
                (OptionId::IkcMap, "1-3:0"),
            ]),
            &step("0-3", 1),
            &config(""),
            &t,
        )
        .unwrap_err();
        assert!(e.contains("CPUs 1 are not LWK CPUs"), "{e}");
        let p = plan(
            &opts(&[
                (OptionId::Mem, "1G"),
                (OptionId::Cpus, "2-3"),
                (OptionId::IkcMap, "2-3:0"),
                (OptionId::Kargs, "allow_oversubscribe"),
            ]),
            &step("0-3", 1),
            &SiteConfig {
                kargs: "hidos dump_level=0 my_arg=1".into(),
                ..config("")
            },
            &t,
        )
        .unwrap();
        assert_eq!(p.kargs, "hidos dump_level=0 my_arg=1 allow_oversubscribe");
        assert_eq!(
            p.mcreboot_args().join(" "),
            "-c 2-3 -m 1G@0 -r 2-3:0 -o 1000:100 -d 0 -O -e my_arg=1"
        );
    }
}
