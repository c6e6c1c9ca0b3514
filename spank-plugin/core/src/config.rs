//! The site configuration: a TOML file named by the plugstack.conf line
//! (`config=/etc/slurm/mckernel.toml`), read by srun (to validate early), by
//! slurmstepd (to boot) and by the epilogue (to clean up). Every key has a
//! default, so an empty file is a valid configuration; an unknown key is an
//! error, so a typo does not silently fall back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::lists::CpuSet;

/// Where the file is looked for when plugstack.conf names none.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/slurm/mckernel.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the McKernel site configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid McKernel site configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// How `ihkd` isolates the reserved CPUs (its `IHK_ISOLATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Move every other task and IRQ off the CPUs (production nodes).
    Evict,
    /// Only pin the vCPU threads (shared or test machines).
    Pin,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Evict => "evict",
            Isolation::Pin => "pin",
        }
    }
}

/// When the partition of a job is shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// In the job epilogue: every step of the job reuses one boot.
    Job,
    /// Also at the end of a step when no other step of the job runs on the
    /// node (the next step boots again); the epilogue still checks.
    Step,
}

/// The parsed site configuration (see README.md for every key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// Install prefix of the IHK/McKernel tools (`<prefix>/sbin/mcreboot`, ...).
    pub prefix: PathBuf,
    pub mcreboot: Option<PathBuf>,
    pub mcstop_release: Option<PathBuf>,
    pub ihkconfig: Option<PathBuf>,
    pub ihkosctl: Option<PathBuf>,
    pub mcexec: Option<PathBuf>,
    /// `IHK_RUNTIME_DIR` of the node's ihkd. `%n` stands for the node's
    /// Slurm name (see [`SiteConfig::for_node`]).
    pub runtime_dir: PathBuf,
    /// Where the plugin keeps its lock and the record of the node's
    /// partition; `%n` as in `runtime_dir`.
    pub state_dir: PathBuf,
    pub isolation: Isolation,
    /// CPUs never given to the LWK, even when the job holds them (they keep
    /// running Linux: mcexec proxies, slurmstepd, daemons).
    #[serde(deserialize_with = "cpu_list")]
    pub linux_cpus: CpuSet,
    /// Largest share of a NUMA node's memory one job may give its LWK.
    pub max_memory_fraction: f64,
    /// Refuse `--mckernel` unless the job holds every CPU of the node.
    pub require_exclusive: bool,
    pub release: Release,
    /// Kernel arguments added to every boot (before the job's own).
    pub kargs: String,
    pub boot_timeout_secs: u64,
    pub shutdown_timeout_secs: u64,
    /// Time leftover mcexec processes get between SIGTERM and SIGKILL.
    pub kill_grace_secs: u64,
    /// Longest wait for the node lock held by a booting or cleaning step.
    pub lock_timeout_secs: u64,
    /// Cgroup directory `mcreboot` (and so the ihkd it starts) is moved to,
    /// so that a proctrack/cgroup step end does not kill the node's ihkd and
    /// the job's memory cgroup is not charged for the LWK's memory.
    pub daemon_cgroup: Option<PathBuf>,
    /// This node shares its machine with other Slurm nodes (several slurmd
    /// on one host, as scripts/cluster.sh runs them): the hugepage pools are
    /// the machine's, changed by the other nodes' partitions too, so the
    /// cleanup does not compare them with their values before the job (it
    /// still requires ihkd's journal, which holds this node's own increases,
    /// to be replayed).
    pub shared_host: bool,
    /// Root of /sys and /proc (tests point it at a fake tree).
    pub sys_root: PathBuf,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            prefix: PathBuf::from("/opt/mckernel"),
            mcreboot: None,
            mcstop_release: None,
            ihkconfig: None,
            ihkosctl: None,
            mcexec: None,
            runtime_dir: PathBuf::from("/run/ihk"),
            state_dir: PathBuf::from("/run/mckernel-slurm"),
            isolation: Isolation::Evict,
            linux_cpus: CpuSet::default(),
            max_memory_fraction: 0.9,
            require_exclusive: false,
            release: Release::Job,
            kargs: String::new(),
            boot_timeout_secs: 300,
            shutdown_timeout_secs: 120,
            kill_grace_secs: 10,
            lock_timeout_secs: 600,
            daemon_cgroup: None,
            shared_host: false,
            sys_root: PathBuf::from("/"),
        }
    }
}

fn cpu_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<CpuSet, D::Error> {
    let s = String::deserialize(d)?;
    CpuSet::try_from(s).map_err(serde::de::Error::custom)
}

/// Paths of the commands the plugin runs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub mcreboot: PathBuf,
    pub mcstop_release: PathBuf,
    pub ihkconfig: PathBuf,
    pub ihkosctl: PathBuf,
    pub mcexec: PathBuf,
}

impl SiteConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let config: SiteConfig =
            toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if !(config.max_memory_fraction > 0.0 && config.max_memory_fraction <= 1.0) {
            return Err(invalid(format!(
                "max_memory_fraction = {} is out of range (expected a number in (0, 1], e.g. 0.9)",
                config.max_memory_fraction
            )));
        }
        if config.kargs.contains(['\n', '\0']) {
            return Err(invalid("kargs must be one line".into()));
        }
        for (key, secs) in [
            ("boot_timeout_secs", config.boot_timeout_secs),
            ("shutdown_timeout_secs", config.shutdown_timeout_secs),
            ("lock_timeout_secs", config.lock_timeout_secs),
        ] {
            if secs == 0 {
                return Err(invalid(format!("{key} must be at least 1")));
            }
        }
        for (key, p) in [
            ("runtime_dir", &config.runtime_dir),
            ("state_dir", &config.state_dir),
        ] {
            if !p.is_absolute() {
                return Err(invalid(format!(
                    "{key} = {} is not an absolute path",
                    p.display()
                )));
            }
        }
        Ok(config)
    }

    /// The configuration of node `node` (its Slurm NodeName): `%n` in
    /// `runtime_dir` and `state_dir` becomes the name, as Slurm expands it in
    /// `SlurmdSpoolDir`, so nodes that share a machine keep apart. Without a
    /// name, a file that uses `%n` is an error.
    pub fn for_node(mut self, node: Option<&str>) -> Result<Self, String> {
        for (key, p) in [
            ("runtime_dir", &mut self.runtime_dir),
            ("state_dir", &mut self.state_dir),
        ] {
            let text = p.to_string_lossy();
            if !text.contains("%n") {
                continue;
            }
            let Some(node) = node.filter(|n| !n.is_empty()) else {
                return Err(format!(
                    "{key} = {text} names the node (%n), but this process does not know its node name (SLURMD_NODENAME)"
                ));
            };
            if node.contains('/') || node == "." || node == ".." {
                return Err(format!("node name '{node}' cannot be part of a path ({key})"));
            }
            *p = PathBuf::from(text.replace("%n", node));
        }
        Ok(self)
    }

    pub fn tools(&self) -> Tools {
        let sbin = self.prefix.join("sbin");
        let bin = self.prefix.join("bin");
        let pick = |o: &Option<PathBuf>, dflt: PathBuf| o.clone().unwrap_or(dflt);
        Tools {
            mcreboot: pick(&self.mcreboot, sbin.join("mcreboot")),
            mcstop_release: pick(&self.mcstop_release, sbin.join("mcstop+release")),
            ihkconfig: pick(&self.ihkconfig, sbin.join("ihkconfig")),
            ihkosctl: pick(&self.ihkosctl, sbin.join("ihkosctl")),
            mcexec: pick(&self.mcexec, bin.join("mcexec")),
        }
    }

    /// A path under the configured /sys and /proc root.
    pub fn sys_path(&self, absolute: &str) -> PathBuf {
        self.sys_root.join(absolute.trim_start_matches('/'))
    }
}

/// The plugin's arguments from plugstack.conf: `config=<path>`.
pub fn config_path_from_args<'a>(
    args: impl IntoIterator<Item = &'a str>,
) -> Result<PathBuf, String> {
    let mut path = PathBuf::from(DEFAULT_CONFIG_PATH);
    for arg in args {
        match arg.split_once('=') {
            Some(("config", p)) if !p.is_empty() => path = PathBuf::from(p),
            _ => {
                return Err(format!(
                    "unknown plugstack.conf argument '{arg}' (expected config=<path of the site TOML file>)"
                ))
            }
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = SiteConfig::parse("", Path::new("x.toml")).unwrap();
        assert_eq!(c.isolation, Isolation::Evict);
        assert_eq!(c.release, Release::Job);
        assert!(c.linux_cpus.is_empty());
        assert_eq!(
            c.tools().mcstop_release,
            PathBuf::from("/opt/mckernel/sbin/mcstop+release")
        );
        assert_eq!(c.tools().mcexec, PathBuf::from("/opt/mckernel/bin/mcexec"));
    }

    #[test]
    fn full_file() {
        let text = r#"
            prefix = "/p"
            mcexec = "/other/mcexec"
            runtime_dir = "/run/x"
            isolation = "pin"
            linux_cpus = "0-1"
            max_memory_fraction = 0.5
            require_exclusive = true
            release = "step"
            kargs = "allow_oversubscribe"
        "#;
        let c = SiteConfig::parse(text, Path::new("x.toml")).unwrap();
        assert_eq!(c.isolation, Isolation::Pin);
        assert_eq!(c.linux_cpus.to_string(), "0-1");
        assert_eq!(c.tools().mcexec, PathBuf::from("/other/mcexec"));
        assert_eq!(c.tools().ihkosctl, PathBuf::from("/p/sbin/ihkosctl"));
        assert_eq!(c.release, Release::Step);
    }

    #[test]
    fn errors_name_the_key() {
        let e = SiteConfig::parse("isolaton = \"pin\"", Path::new("/etc/x.toml")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("/etc/x.toml") && m.contains("isolaton"), "{m}");
        let e = SiteConfig::parse("max_memory_fraction = 1.5", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("max_memory_fraction = 1.5"), "{e}");
        let e = SiteConfig::parse("linux_cpus = \"3-1\"", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("not ascending"), "{e}");
        let e = SiteConfig::parse("isolation = \"none\"", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("none"), "{e}");
        let e = SiteConfig::parse("state_dir = \"rel\"", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
    }

    #[test]
    fn plugstack_args() {
        assert_eq!(
            config_path_from_args([]).unwrap(),
            PathBuf::from(DEFAULT_CONFIG_PATH)
        );
        assert_eq!(
            config_path_from_args(["config=/a.toml"]).unwrap(),
            PathBuf::from("/a.toml")
        );
        assert!(config_path_from_args(["conf=/a"])
            .unwrap_err()
            .contains("conf=/a"));
    }
}

#[cfg(test)]
mod per_node {
    use super::*;

    #[test]
    fn percent_n_is_the_node_name() {
        let text = "runtime_dir = \"/c/nodes/%n/ihk\"\nstate_dir = \"/c/%n-state\"\nshared_host = true";
        let c = SiteConfig::parse(text, Path::new("x")).unwrap();
        assert!(c.shared_host);
        let n2 = c.clone().for_node(Some("n2")).unwrap();
        assert_eq!(n2.runtime_dir, PathBuf::from("/c/nodes/n2/ihk"));
        assert_eq!(n2.state_dir, PathBuf::from("/c/n2-state"));
        let e = c.clone().for_node(None).unwrap_err();
        assert!(e.contains("runtime_dir = /c/nodes/%n/ihk") && e.contains("SLURMD_NODENAME"), "{e}");
        assert!(c.for_node(Some("../x")).unwrap_err().contains("cannot be part of a path"));
        // Without %n the name does not matter, and none is needed.
        let plain = SiteConfig::parse("", Path::new("x")).unwrap();
        assert_eq!(plain.clone().for_node(None).unwrap().runtime_dir, plain.runtime_dir);
    }
}

#[cfg(test)]
mod example {
    use super::*;

    /// The documented example is a valid configuration.
    #[test]
    fn example_file_parses() {
        let text = include_str!("../../mckernel.toml.example");
        let c = SiteConfig::parse(text, Path::new("mckernel.toml.example")).unwrap();
        assert_eq!(c.linux_cpus.to_string(), "0");
        assert_eq!(
            c.tools().mcreboot,
            PathBuf::from("/opt/mckernel/sbin/mcreboot")
        );
    }
}
