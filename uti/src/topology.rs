//! Loading the node topology with hwloc (through `hwlocality`) and reducing
//! it to a [`Machine`].
//!
//! Source, in order of precedence:
//! - `UTI_TOPOLOGY_XML=<file>`: an hwloc XML export (`lstopo file.xml`);
//! - `UTI_TOPOLOGY_SYNTHETIC=<description>`: an hwloc synthetic description,
//!   e.g. `"pack:2 numa:1 l3:2 l2:4 l1:1 core:1 pu:2"`;
//! - otherwise hwloc's own defaults, which honour `HWLOC_XMLFILE`,
//!   `HWLOC_SYNTHETIC` and `HWLOC_THISSYSTEM`, and discover the real machine
//!   when none is set.
//!
//! On the LWK (under `mcexec`), `/sys` and `/proc` show the LWK's view (its
//! CPUs only); the host's topology is what placement needs, so the default
//! source is read through a root directory descriptor (`HWLOC_FSROOT=/.`,
//! relative paths, which the LWK passes to Linux unchanged) and counts as
//! this system ([`host_view`]).
//!
//! A topology that is not the running system (XML or synthetic without
//! `HWLOC_THISSYSTEM=1`) is used to compute CPU sets only; they are not
//! applied to threads, since its CPUs need not exist here.

use std::path::Path;

use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::{OSDeviceType, ObjectType};
use hwlocality::topology::builder::TypeFilter;
use hwlocality::topology::Topology;

use crate::cpuset::CpuSet;
use crate::error::Error;
use crate::machine::{Fabric, Machine};

/// `UTI_TOPOLOGY_XML`.
pub const UTI_TOPOLOGY_XML: &str = "UTI_TOPOLOGY_XML";
/// `UTI_TOPOLOGY_SYNTHETIC`.
pub const UTI_TOPOLOGY_SYNTHETIC: &str = "UTI_TOPOLOGY_SYNTHETIC";

/// Where to take the topology from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// hwloc's default: the running machine unless `HWLOC_XMLFILE` or
    /// `HWLOC_SYNTHETIC` say otherwise.
    Default,
    /// An hwloc XML file.
    Xml(String),
    /// An hwloc synthetic description.
    Synthetic(String),
}

impl Source {
    /// The source named by the `UTI_TOPOLOGY_*` variables.
    pub fn from_env() -> Source {
        let get = |k| {
            std::env::var(k)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        if let Some(p) = get(UTI_TOPOLOGY_XML) {
            Source::Xml(p)
        } else if let Some(d) = get(UTI_TOPOLOGY_SYNTHETIC) {
            Source::Synthetic(d)
        } else {
            Source::Default
        }
    }
}

/// While alive (on the LWK, unless the user set `HWLOC_FSROOT`): hwloc
/// reads the host's `/sys` and `/proc` through a root descriptor, and the
/// result is this system.
pub struct HostView(Option<Option<std::ffi::OsString>>);

/// On the LWK, make the topology loaded next the host's (see the module
/// comment); a no-op on Linux.
pub fn host_view() -> HostView {
    if !crate::lwk::on_lwk() || std::env::var_os("HWLOC_FSROOT").is_some() {
        return HostView(None);
    }
    // The environment is changed only around the topology load, which
    // happens once, at the library's first use (uti_pthread_create).
    let thissystem = std::env::var_os("HWLOC_THISSYSTEM");
    std::env::set_var("HWLOC_FSROOT", "/.");
    std::env::set_var("HWLOC_THISSYSTEM", "1");
    HostView(Some(thissystem))
}

impl Drop for HostView {
    fn drop(&mut self) {
        if let Some(thissystem) = self.0.take() {
            std::env::remove_var("HWLOC_FSROOT");
            match thissystem {
                Some(v) => std::env::set_var("HWLOC_THISSYSTEM", v),
                None => std::env::remove_var("HWLOC_THISSYSTEM"),
            }
        }
    }
}

/// Loads the topology from `source` and reduces it to a [`Machine`].
pub fn load(source: &Source) -> Result<Machine, Error> {
    let topo = build(source)?;
    let label = match source {
        Source::Default if topo.is_this_system() => "this system".to_string(),
        Source::Default => "hwloc environment (HWLOC_XMLFILE/HWLOC_SYNTHETIC)".to_string(),
        Source::Xml(p) => format!("{UTI_TOPOLOGY_XML}={p}"),
        Source::Synthetic(d) => format!("{UTI_TOPOLOGY_SYNTHETIC}={d:?}"),
    };
    Ok(reduce(&topo, label))
}

fn build(source: &Source) -> Result<Topology, Error> {
    let bad = |var: &'static str, value: &str, why: String| Error::BadEnv {
        var,
        value: value.to_string(),
        expected: why,
    };
    let _host = matches!(source, Source::Default).then(host_view);
    let mut b = Topology::builder();
    match source {
        Source::Default => {}
        Source::Xml(path) => {
            if !Path::new(path).is_file() {
                return Err(bad(
                    UTI_TOPOLOGY_XML,
                    path,
                    "the path of an hwloc XML topology file (no such file)".into(),
                ));
            }
            b = b.from_xml_file(path).map_err(|e| {
                bad(
                    UTI_TOPOLOGY_XML,
                    path,
                    format!("an hwloc XML topology file ({e})"),
                )
            })?;
        }
        Source::Synthetic(desc) => {
            b = b.from_synthetic(desc).map_err(|e| {
                bad(
                    UTI_TOPOLOGY_SYNTHETIC,
                    desc,
                    format!(
                        "an hwloc synthetic description such as \"pack:2 l3:2 core:4 pu:2\" ({e})"
                    ),
                )
            })?;
        }
    }
    // Fabric adapters are I/O objects: keep the important ones (OS devices
    // with their PCI parents), which is enough to find their locality.
    b = b
        .with_io_type_filter(TypeFilter::KeepImportant)
        .map_err(|e| Error::Topology(format!("setting the I/O type filter: {e}")))?;
    b.build().map_err(|e| Error::Topology(e.to_string()))
}

fn to_set(bitmap: &hwlocality::cpu::cpuset::CpuSet) -> CpuSet {
    bitmap.iter_set().map(usize::from).collect()
}

fn sets_of(topo: &Topology, ty: ObjectType) -> Vec<CpuSet> {
    topo.objects_with_type(ty)
        .filter_map(|o| o.cpuset().map(|s| to_set(&s)))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reduces an hwloc topology to a [`Machine`].
pub fn reduce(topo: &Topology, source: String) -> Machine {
    let complete = to_set(&topo.complete_cpuset());
    let allowed = &to_set(&topo.allowed_cpuset()) & &complete;
    let numa = topo
        .objects_with_type(ObjectType::NUMANode)
        .filter_map(|n| {
            let cpus = n.cpuset()?;
            Some((n.os_index()?, to_set(&cpus)))
        })
        .collect();
    let fabrics = topo
        .os_devices()
        .filter(|d| {
            matches!(d.attributes(), Some(ObjectAttributes::OSDevice(a))
                if a.device_type() == OSDeviceType::OpenFabrics)
        })
        .filter_map(|d| {
            let near = d.first_non_io_ancestor()?.cpuset()?;
            let name = d
                .name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Some(Fabric {
                name,
                cpus: to_set(&near),
            })
        })
        .collect();
    Machine {
        this_system: topo.is_this_system(),
        source,
        complete,
        allowed,
        numa,
        l1: sets_of(topo, ObjectType::L1Cache),
        l2: sets_of(topo, ObjectType::L2Cache),
        l3: sets_of(topo, ObjectType::L3Cache),
        cores: sets_of(topo, ObjectType::Core),
        fabrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    #[test]
    fn synthetic_two_socket_topology() {
        let m = load(&Source::Synthetic(
            "pack:2 numa:1 l3:2 l2:4 l1:1 core:1 pu:2".into(),
        ))
        .unwrap();
        assert!(!m.this_system);
        assert_eq!(m.complete, set("0-31"));
        assert_eq!(m.allowed, set("0-31"));
        assert_eq!(m.numa.len(), 2);
        assert_eq!(m.numa[&0], set("0-15"));
        assert_eq!(m.numa[&1], set("16-31"));
        assert_eq!(
            m.l3,
            vec![set("0-7"), set("8-15"), set("16-23"), set("24-31")]
        );
        assert_eq!(m.l2.len(), 16);
        assert_eq!(m.l1[3], set("6-7"));
        assert_eq!(m.cores[15], set("30-31"));
        assert!(m.fabrics.is_empty());
    }

    #[test]
    fn bad_sources_are_reported_with_the_value() {
        let e = load(&Source::Synthetic("bogus:3".into())).unwrap_err();
        assert!(e.to_string().contains("bogus:3"), "{e}");
        let e = load(&Source::Xml("/nonexistent/topo.xml".into())).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/topo.xml"), "{e}");
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn this_machine_matches_sysfs() {
        let m = load(&Source::Default).unwrap();
        assert!(m.this_system);
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        assert_eq!(m.complete, set(online.trim()));
        for cpu in m.complete.iter() {
            let core = std::fs::read_to_string(format!(
                "/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
            ))
            .unwrap();
            assert_eq!(
                m.domain_of(crate::machine::Sharing::Core, cpu),
                Some(&set(core.trim()))
            );
        }
    }
}
