//! The user's options: `--mckernel=<mem list>` (required to enable the
//! plugin), `--mckernel-cpus=<cpu list|count>`, `--mckernel-ikc-map=<map>`,
//! `--mckernel-kargs=<args>`. Each value is checked for syntax when Slurm
//! hands it over, so srun rejects a bad one before the job is submitted.

use crate::lists::{CpuSet, IkcMap, ListError, MemList};

/// The options, in the order they are registered with Slurm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionId {
    Mem = 1,
    Cpus = 2,
    IkcMap = 3,
    Kargs = 4,
}

pub struct OptionSpec {
    pub id: OptionId,
    pub name: &'static str,
    pub arginfo: &'static str,
    pub usage: &'static str,
}

pub const OPTIONS: [OptionSpec; 4] = [
    OptionSpec {
        id: OptionId::Mem,
        name: "mckernel",
        arginfo: "<size>@<numa>[,...]",
        usage: "Run the tasks on a McKernel LWK booted for the job on each node, with this \
                memory (e.g. 7G@4 or 2G@0,2G@1).",
    },
    OptionSpec {
        id: OptionId::Cpus,
        name: "mckernel-cpus",
        arginfo: "<cpulist|count>",
        usage: "LWK CPUs per node: a list of Linux CPU ids or a count (default: the job's CPUs \
                on the node minus those the site keeps for Linux).",
    },
    OptionSpec {
        id: OptionId::IkcMap,
        name: "mckernel-ikc-map",
        arginfo: "<lwkcpus>:<cpu>[+...]",
        usage: "IKC map of the LWK (mcreboot -r).",
    },
    OptionSpec {
        id: OptionId::Kargs,
        name: "mckernel-kargs",
        arginfo: "<args>",
        usage: "Extra LWK kernel arguments.",
    },
];

impl OptionId {
    pub fn from_val(val: i32) -> Option<OptionId> {
        OPTIONS.iter().map(|o| o.id).find(|id| *id as i32 == val)
    }

    pub fn name(self) -> &'static str {
        OPTIONS
            .iter()
            .find(|o| o.id == self)
            .map(|o| o.name)
            .unwrap_or("mckernel")
    }
}

/// `--mckernel-cpus`: explicit CPUs, or how many of the eligible ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuRequest {
    Count(u32),
    List(CpuSet),
}

impl CpuRequest {
    pub fn parse(input: &str) -> Result<Self, ListError> {
        let t = input.trim();
        // A bare number is a count ("4 CPUs"); a single CPU id is written
        // as a list with a trailing range, e.g. "3-3", or chosen by count.
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return match t.parse::<u32>() {
                Ok(0) | Err(_) => Err(ListError {
                    what: "CPU count",
                    input: input.to_string(),
                    problem: "the count must be a positive number".into(),
                    expected: "a count like 4 or a CPU list like 1,3-5",
                }),
                Ok(n) => Ok(CpuRequest::Count(n)),
            };
        }
        CpuSet::parse(t).map(CpuRequest::List)
    }
}

/// Everything the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    pub mem: Option<MemList>,
    pub cpus: Option<CpuRequest>,
    pub ikc_map: Option<IkcMap>,
    pub kargs: Option<String>,
}

impl JobOptions {
    /// Records one option's value; the error is the message for the user.
    pub fn set(&mut self, id: OptionId, value: &str) -> Result<(), String> {
        let prefix = |e: ListError| format!("--{}={value}: {e}", id.name());
        match id {
            OptionId::Mem => self.mem = Some(MemList::parse(value).map_err(prefix)?),
            OptionId::Cpus => self.cpus = Some(CpuRequest::parse(value).map_err(prefix)?),
            OptionId::IkcMap => self.ikc_map = Some(IkcMap::parse(value).map_err(prefix)?),
            OptionId::Kargs => {
                let v = value.trim();
                if v.is_empty() {
                    return Err(format!(
                        "--mckernel-kargs={value}: the argument list is empty"
                    ));
                }
                if let Some(c) = v.chars().find(|c| c.is_control()) {
                    return Err(format!(
                        "--mckernel-kargs: control character {c:?} in kernel arguments (expected one line of words)"
                    ));
                }
                self.kargs = Some(v.to_string());
            }
        }
        Ok(())
    }

    /// The plugin acts only when `--mckernel` was given.
    pub fn enabled(&self) -> bool {
        self.mem.is_some()
    }

    /// The other options mean nothing without `--mckernel`.
    pub fn check_consistent(&self) -> Result<(), String> {
        if self.mem.is_none() {
            let given: Vec<&str> = [
                (self.cpus.is_some(), "--mckernel-cpus"),
                (self.ikc_map.is_some(), "--mckernel-ikc-map"),
                (self.kargs.is_some(), "--mckernel-kargs"),
            ]
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, n)| *n)
            .collect();
            if !given.is_empty() {
                return Err(format!(
                    "{} given without --mckernel=<memory list>, which enables McKernel",
                    given.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values() {
        let mut o = JobOptions::default();
        assert!(!o.enabled());
        o.set(OptionId::Mem, "512M@0").unwrap();
        assert!(o.enabled());
        let e = o.set(OptionId::Mem, "5M").unwrap_err();
        assert!(
            e.starts_with("--mckernel=5M: invalid memory list '5M'"),
            "{e}"
        );
        o.set(OptionId::Cpus, "2").unwrap();
        assert_eq!(o.cpus, Some(CpuRequest::Count(2)));
        o.set(OptionId::Cpus, "0-1").unwrap();
        assert_eq!(
            o.cpus,
            Some(CpuRequest::List(CpuSet::parse("0-1").unwrap()))
        );
        assert!(o.set(OptionId::Cpus, "0").unwrap_err().contains("positive"));
        assert!(o.set(OptionId::Cpus, "x").is_err());
        assert!(o.set(OptionId::IkcMap, "1:").is_err());
        o.set(OptionId::Kargs, " allow_oversubscribe ").unwrap();
        assert_eq!(o.kargs.as_deref(), Some("allow_oversubscribe"));
        assert!(o.set(OptionId::Kargs, "a\nb").is_err());
        assert!(o.set(OptionId::Kargs, "  ").is_err());
    }

    #[test]
    fn consistency() {
        let mut o = JobOptions::default();
        o.set(OptionId::Cpus, "2").unwrap();
        let e = o.check_consistent().unwrap_err();
        assert!(
            e.contains("--mckernel-cpus given without --mckernel"),
            "{e}"
        );
        o.set(OptionId::Mem, "1G").unwrap();
        o.check_consistent().unwrap();
    }

    #[test]
    fn ids_round_trip() {
        for o in &OPTIONS {
            assert_eq!(OptionId::from_val(o.id as i32), Some(o.id));
            assert!(o.name.len() < 75, "SPANK_OPTION_MAXLEN");
        }
        assert_eq!(OptionId::from_val(9), None);
    }
}
