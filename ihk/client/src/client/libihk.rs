//! Client methods for the IHK functions that only libihk and ihkmond use:
//! `ihk_reserve_mem_conf`, `ihk_os_get_eventfd`, `ihk_os_freeze/thaw`,
//! `ihk_os_get_rusage`, NUMA nodes and page sizes, `ihk_os_makedumpfile`,
//! and ihkmond's watch and reports.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{unexpected, Client};
use crate::error::{IhkError, IhkResult, EPROTO};
use crate::proto::libihk::{
    DumpInfo, EventType, MemConfKey, MonitorEvent, OsInfo, RusageInfo, TraceInfo, WatchInfo,
};
use crate::proto::{Reply, Request};

impl Client {
    /// A setting for the next memory reservation (device socket).
    pub fn reserve_mem_conf(&mut self, key: MemConfKey, value: i64) -> IhkResult<()> {
        self.done(Request::ReserveMemConf { key, value })
    }

    /// A new eventfd signalled on `kind` events of this instance.
    pub fn os_get_eventfd(&mut self, kind: EventType) -> IhkResult<OwnedFd> {
        self.done(Request::OsGetEventfd { kind })?;
        if self.received.is_empty() {
            return Err(IhkError::new(EPROTO, "ihkd sent no eventfd with its reply"));
        }
        Ok(self.received.remove(0))
    }

    /// Start freezing the instance (returns at once).
    pub fn os_freeze(&mut self) -> IhkResult<()> {
        self.done(Request::OsFreeze)
    }

    pub fn os_thaw(&mut self) -> IhkResult<()> {
        self.done(Request::OsThaw)
    }

    pub fn os_get_rusage(&mut self) -> IhkResult<RusageInfo> {
        match self.call(Request::OsGetRusage)? {
            Reply::Rusage(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// NUMA nodes and page sizes of the instance.
    pub fn os_info(&mut self) -> IhkResult<OsInfo> {
        match self.call(Request::OsInfo)? {
            Reply::OsInfo(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }

    /// Dump into an open file (ihkd writes it through the descriptor).
    pub fn os_dump(&mut self, file: &File, level: i32, interactive: bool) -> IhkResult<DumpInfo> {
        match self.call_with_fds(Request::OsDump { level, interactive }, &[file.as_raw_fd()])? {
            Reply::Dumped(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// `ihk_os_makedumpfile`: create `path` with the caller's rights (a new
    /// file: an existing one is EEXIST, a missing directory ENOENT, one we
    /// may not write EACCES), dump into it, and remove it again when the
    /// dump fails.
    pub fn os_makedumpfile(
        &mut self,
        path: &Path,
        level: i32,
        interactive: bool,
    ) -> IhkResult<DumpInfo> {
        if path.as_os_str().is_empty() {
            return Err(IhkError::noent("no dump file name given"));
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| IhkError::os(e, format!("creating {}", path.display())))?;
        let r = self.os_dump(&file, level, interactive);
        if r.is_err() {
            let _ = std::fs::remove_file(path);
        }
        r
    }

    /// ihkmond's periodic view (kmsg from `kmsg_from` on, when given).
    pub fn os_watch(&mut self, kmsg_from: Option<u64>) -> IhkResult<WatchInfo> {
        match self.call(Request::OsWatch { kmsg_from })? {
            Reply::Watch(w) => Ok(w),
            other => Err(unexpected(other)),
        }
    }

    /// The noise trace of every LWK CPU (`ihkosctl <n> trace`).
    pub fn os_trace(&mut self) -> IhkResult<TraceInfo> {
        match self.call(Request::OsTrace)? {
            Reply::Trace(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    /// ihkmond: report what it detected during boot `boot`.
    pub fn os_report_event(&mut self, boot: u64, event: MonitorEvent) -> IhkResult<()> {
        self.done(Request::OsReportEvent { boot, event })
    }
}
