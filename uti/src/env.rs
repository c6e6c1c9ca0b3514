//! The environment variables that steer placement, read at every
//! `uti_pthread_create` (as the original libuti does, so a program may change
//! them between calls).
//!
//! | variable | meaning |
//! |---|---|
//! | `DISABLE_UTI` | non-zero: `uti_pthread_create` is a plain `pthread_create` |
//! | `UTI_CPU_SET` | CPU list (`0,2-5`): utility threads only on these CPUs |
//! | `UTI_FWK_CPU_SET` | CPU list of the FWK (Linux) CPUs utility threads may use; set by `mcexec --enable-uti`. Unset: every CPU is an FWK CPU (plain Linux) |
//! | `UTI_LWK_CPU_SET` | CPU list of the LWK CPUs of this process; set by `mcexec --enable-uti`. Unset: no LWK CPUs |
//! | `UTI_LOGLEVEL` | 0 errors, 1 warnings (default), 2 debug; read once at load ([`crate::log`]) |
//! | `UTI_TOPOLOGY_XML`, `UTI_TOPOLOGY_SYNTHETIC` | topology source, read once ([`crate::topology`]) |
//! | `UTI_COUNTER_FILE` | path of the node-wide usage counter ([`crate::registry`]) |

use crate::cpuset::CpuSet;
use crate::error::Error;

/// `DISABLE_UTI`.
pub const DISABLE_UTI: &str = "DISABLE_UTI";
/// `UTI_CPU_SET`.
pub const UTI_CPU_SET: &str = "UTI_CPU_SET";
/// `UTI_FWK_CPU_SET`.
pub const UTI_FWK_CPU_SET: &str = "UTI_FWK_CPU_SET";
/// `UTI_LWK_CPU_SET`.
pub const UTI_LWK_CPU_SET: &str = "UTI_LWK_CPU_SET";

/// One reading of the per-call variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `DISABLE_UTI` is set to a non-zero value.
    pub disabled: bool,
    /// `UTI_CPU_SET`, if set and not blank.
    pub cpu_set: Option<CpuSet>,
    /// `UTI_FWK_CPU_SET`, if set and not blank.
    pub fwk_cpus: Option<CpuSet>,
    /// `UTI_LWK_CPU_SET`, if set and not blank.
    pub lwk_cpus: Option<CpuSet>,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Result<Env, Error> {
        Env::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get` (for tests and for callers that
    /// carry an environment of their own).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Env, Error> {
        let list = |var: &'static str| -> Result<Option<CpuSet>, Error> {
            match get(var) {
                Some(v) if !v.trim().is_empty() => CpuSet::parse(&v)
                    .map(Some)
                    .map_err(|source| Error::BadCpuList { var, source }),
                _ => Ok(None),
            }
        };
        Ok(Env {
            disabled: parse_disable(get(DISABLE_UTI))?,
            cpu_set: list(UTI_CPU_SET)?,
            fwk_cpus: list(UTI_FWK_CPU_SET)?,
            lwk_cpus: list(UTI_LWK_CPU_SET)?,
        })
    }

    /// Only `DISABLE_UTI`, for the path that must not fail on the other
    /// variables when UTI is disabled.
    pub fn disabled_from_process() -> Result<bool, Error> {
        parse_disable(std::env::var(DISABLE_UTI).ok())
    }
}

fn parse_disable(v: Option<String>) -> Result<bool, Error> {
    let Some(v) = v else { return Ok(false) };
    let t = v.trim();
    if t.is_empty() {
        return Ok(false);
    }
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n != 0);
    }
    match t.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(Error::BadEnv {
            var: DISABLE_UTI,
            value: v,
            expected: "an integer (0 enables UTI, non-zero disables it) or yes/no".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, Error> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn reads_variables() {
        let e = env(&[
            ("UTI_CPU_SET", "0-2,4"),
            ("UTI_FWK_CPU_SET", "0,1"),
            ("DISABLE_UTI", "0"),
        ])
        .unwrap();
        assert!(!e.disabled);
        assert_eq!(e.cpu_set.unwrap().to_string(), "0-2,4");
        assert_eq!(e.fwk_cpus.unwrap().to_string(), "0-1");
        assert_eq!(e.lwk_cpus, None);
        assert_eq!(env(&[]).unwrap(), Env::default());
        assert!(env(&[("DISABLE_UTI", "1")]).unwrap().disabled);
        assert!(env(&[("DISABLE_UTI", "yes")]).unwrap().disabled);
        assert!(env(&[("UTI_CPU_SET", " ")]).unwrap().cpu_set.is_none());
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        let e = env(&[("UTI_CPU_SET", "0-x")]).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        let s = e.to_string();
        assert!(s.contains("UTI_CPU_SET") && s.contains("0-x"), "{s}");
        let e = env(&[("DISABLE_UTI", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("maybe"));
    }
}
