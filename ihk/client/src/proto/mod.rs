//! The ihkd control protocol, shared by the daemon, the `ihk::client` API
//! (the commands, `libihk` later) and `mcexec`.
//!
//! Transport: a Unix stream socket, `<runtime dir>/mcd<N>` for the device and
//! `<runtime dir>/mcos<N>` for each OS instance (they stand in for
//! `/dev/mcd0` and `/dev/mcosN`). One request line, one response line, each a
//! JSON object ended by `\n`; a message may carry file descriptors
//! (SCM_RIGHTS) attached to its bytes (used by `load`, which passes the open
//! image). A connection may carry any number of request/response pairs, in
//! order. Every request names the protocol version; the daemon refuses any
//! other major version with EPROTO, so a stale client fails clearly.
//!
//! Which requests a socket accepts: [`Request::is_device_request`] on mcd,
//! the others on mcos. Which need root: [`Request::is_privileged`].

mod decode;
#[cfg(test)]
mod fuzz;
pub mod libihk;
pub mod wire;

pub use decode::decode_request;

use serde::{Deserialize, Serialize};

use crate::error::IhkError;
use crate::list::{IkcMap, MemList};
use libihk::{
    DumpInfo, EventType, MemConfKey, MonitorEvent, OsInfo, RusageInfo, TraceInfo, WatchInfo,
};

/// Bumped on any incompatible change of [`Request`] or [`Reply`].
pub const PROTOCOL_VERSION: u32 = 1;

/// What goes on the wire for a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestEnvelope {
    pub v: u32,
    pub req: Request,
}

/// What goes on the wire for a response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok {
        reply: Reply,
        /// Things the administrator should know although the call succeeded
        /// (e.g. "no huge pages on node 0, using 4 KiB pages").
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    Err(IhkError),
}

/// Requests. Device requests go to `mcd<N>`, OS requests to `mcos<N>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    // ---- device (ihkconfig, §1.3.1) ----
    /// Reserve CPUs (Linux ids) for IHK.
    ReserveCpu {
        cpus: Vec<u32>,
    },
    /// Give reserved, unassigned CPUs back to Linux.
    ReleaseCpu {
        cpus: Vec<u32>,
    },
    /// The reserved CPUs, ascending.
    QueryCpu,
    /// Reserve memory per NUMA node.
    ReserveMem {
        mem: MemList,
    },
    /// Give reserved, unassigned memory back to Linux (`all` = everything).
    ReleaseMem {
        mem: MemList,
    },
    /// Reserved memory not assigned to any OS instance, per node.
    QueryMem,
    /// Create an OS instance; replies with its index.
    CreateOs,
    /// Destroy an OS instance (shutting it down first if needed).
    DestroyOs {
        os: u32,
    },
    /// Indices of the OS instances.
    GetOsInstances,
    /// Owner of the device and OS sockets (`mcreboot -o user[:group]`).
    SetOwner {
        uid: u32,
        gid: u32,
    },
    /// Daemon facts (pid, isolation mode, runtime directory).
    DaemonInfo,
    /// Shut down every OS instance, release everything, restore the node
    /// from the journal and exit.
    Quit,
    /// `ihk_reserve_mem_conf`: a setting for the next memory reservation.
    ReserveMemConf {
        key: MemConfKey,
        value: i64,
    },

    // ---- OS instance (ihkosctl, §1.3.2) ----
    OsAssignCpu {
        cpus: Vec<u32>,
    },
    OsReleaseCpu {
        cpus: Vec<u32>,
    },
    OsQueryCpu,
    OsAssignMem {
        mem: MemList,
    },
    OsReleaseMem {
        mem: MemList,
    },
    OsQueryMem,
    OsSetIkcMap {
        map: IkcMap,
    },
    OsGetIkcMap,
    /// Load the kernel image passed as the message's file descriptor.
    OsLoad {
        name: String,
    },
    OsKargs {
        kargs: String,
    },
    /// Boot and wait until RUNNING (or PANIC, or the timeout).
    OsBoot {
        timeout_ms: u64,
    },
    OsShutdown,
    OsGetStatus,
    OsKmsg,
    OsClearKmsg,
    OsQueryFreeMem,
    // ---- libihk and ihkmond (proto/libihk.rs) ----
    /// `ihk_os_get_eventfd`: the reply carries a new eventfd.
    OsGetEventfd {
        kind: EventType,
    },
    /// `ihk_os_freeze` / `ihk_os_thaw` of this instance.
    OsFreeze,
    OsThaw,
    OsGetRusage,
    /// NUMA nodes and page sizes (`ihk_os_get_num_numa_nodes` & co).
    OsInfo,
    /// `ihk_os_makedumpfile` into the file passed as the descriptor.
    OsDump {
        level: i32,
        interactive: bool,
    },
    /// The noise trace of every LWK CPU (`ihkosctl <n> trace`).
    OsTrace,
    /// ihkmond: status, heartbeats, memory and kmsg from `kmsg_from` on.
    OsWatch {
        kmsg_from: Option<u64>,
    },
    /// ihkmond: what it detected during boot number `boot`.
    OsReportEvent {
        boot: u64,
        event: MonitorEvent,
    },
    /// mcexec: claim a process slot of the LWK and get guest memory and
    /// doorbells (reply [`Reply::Attached`] with descriptors). The connection
    /// then stays open for the life of mcexec; its end means "proxy gone".
    /// `local_rank`/`per_node` (mcexec -n) place the process on the rank's
    /// share of the LWK CPUs.
    OsAttach {
        local_rank: Option<u32>,
        per_node: Option<u32>,
    },
    /// mcexec, for its LWK process: map `len` bytes of the file passed as
    /// the message's descriptor, from `offset` (or of SysV segment `shmid`,
    /// then without a descriptor, which the caller must be allowed to
    /// attach), as the share window at guest-physical `gpa` (which the LWK
    /// chose). Replies `Done`; the window stays until the LWK releases it.
    OsShareWindow {
        gpa: u64,
        len: u64,
        offset: u64,
        writable: bool,
        #[serde(default)]
        shmid: Option<i32>,
    },
}

impl Request {
    /// Accepted on the device socket (else on an OS socket).
    pub fn is_device_request(&self) -> bool {
        use Request::*;
        matches!(
            self,
            ReserveCpu { .. }
                | ReleaseCpu { .. }
                | QueryCpu
                | ReserveMem { .. }
                | ReleaseMem { .. }
                | QueryMem
                | CreateOs
                | DestroyOs { .. }
                | GetOsInstances
                | SetOwner { .. }
                | DaemonInfo
                | Quit
                | ReserveMemConf { .. }
        )
    }

    /// Only root may do this (specification: "Only privileged user can
    /// perform this operation"); others get EPERM.
    pub fn is_privileged(&self) -> bool {
        use Request::*;
        !matches!(
            self,
            QueryCpu
                | QueryMem
                | DaemonInfo
                | OsQueryCpu
                | OsQueryMem
                | OsGetStatus
                | OsKmsg
                | OsClearKmsg
                | OsQueryFreeMem
                | OsAttach { .. }
                | OsShareWindow { .. }
                | OsGetRusage
                | OsInfo
        )
    }

    /// Short name for logs and errors.
    pub fn name(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        v.get("op")
            .and_then(|o| o.as_str())
            .unwrap_or("?")
            .to_string()
    }
}

/// Successful results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Done,
    /// CPU ids (ascending for device queries, assignment order for OS ones).
    Cpus(Vec<u32>),
    /// Memory per node: (bytes, node), ascending node.
    Mem(Vec<(u64, u32)>),
    OsIndex(u32),
    OsIndices(Vec<u32>),
    IkcMap(IkcMap),
    /// One of INACTIVE BOOTING RUNNING SHUTDOWN PANIC HUNGUP FREEZING FROZEN.
    Status(String),
    Kmsg(String),
    Info(DaemonInfo),
    /// Reply to [`Request::OsAttach`]; the descriptors come with it.
    Attached(AttachInfo),
    Rusage(RusageInfo),
    OsInfo(OsInfo),
    Dumped(DumpInfo),
    Watch(WatchInfo),
    Trace(TraceInfo),
}

/// What mcexec needs to serve an LWK process. Descriptors sent with the
/// reply, in order: the process doorbell (ioeventfd), the irqfds of the
/// CPUs `cpu_first .. cpu_first + cpu_count`, then one memfd per entry of
/// `regions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachInfo {
    /// Process slot in the offload area.
    pub slot: u32,
    /// LWK CPU the process's main thread starts on.
    pub cpu: u32,
    /// The process's CPU set (its share of the LWK CPUs).
    pub cpu_first: u32,
    pub cpu_count: u32,
    /// LWK CPUs of the instance.
    pub nr_cpus: u32,
    /// Guest-physical address of the offload area.
    pub offload_area_gpa: u64,
    pub regions: Vec<AttachRegion>,
}

/// A guest memory region: `size` bytes at `gpa`, backed by the memfd sent
/// with the reply at `fd_offset`, whose page size is `page_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRegion {
    pub gpa: u64,
    pub size: u64,
    pub fd_offset: u64,
    pub page_size: u64,
}

/// Reply to [`Request::DaemonInfo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub version: String,
    pub isolation: String,
    pub runtime_dir: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list::MemChunk;

    #[test]
    fn requests_round_trip_as_json_lines() {
        let reqs = vec![
            Request::ReserveCpu { cpus: vec![1, 2] },
            Request::ReserveMem {
                mem: MemList(vec![MemChunk::bytes(512 << 20, 0)]),
            },
            Request::OsSetIkcMap {
                map: IkcMap(vec![(1, 0)]),
            },
            Request::OsBoot { timeout_ms: 5000 },
            Request::QueryCpu,
        ];
        for r in reqs {
            let line = serde_json::to_string(&RequestEnvelope {
                v: PROTOCOL_VERSION,
                req: r.clone(),
            })
            .unwrap();
            assert!(!line.contains('\n'));
            let back: RequestEnvelope = serde_json::from_str(&line).unwrap();
            assert_eq!(back.req, r);
        }
        assert_eq!(
            Request::OsKargs {
                kargs: "hidos".into()
            }
            .name(),
            "os_kargs"
        );
    }

    #[test]
    fn privilege_follows_the_spec() {
        assert!(Request::ReserveCpu { cpus: vec![] }.is_privileged());
        assert!(Request::OsBoot { timeout_ms: 1 }.is_privileged());
        assert!(Request::OsGetIkcMap.is_privileged());
        assert!(Request::GetOsInstances.is_privileged());
        assert!(!Request::OsGetStatus.is_privileged());
        assert!(!Request::OsKmsg.is_privileged());
        assert!(!Request::QueryCpu.is_privileged());
        assert!(Request::QueryCpu.is_device_request());
        assert!(!Request::OsQueryCpu.is_device_request());
        assert!(Request::OsFreeze.is_privileged());
        assert!(Request::OsWatch { kmsg_from: None }.is_privileged());
        assert!(!Request::OsGetRusage.is_privileged());
        assert!(Request::ReserveMemConf {
            key: MemConfKey::Timeout,
            value: 1
        }
        .is_device_request());
    }
}
