//! Dispatch of the requests only libihk and ihkmond send (the privilege
//! and socket-kind checks have been made by `server`).

use std::os::fd::OwnedFd;
use std::sync::Mutex;

use super::instance::{ops, InstanceHandle};
use super::state::State;
use crate::error::{IhkError, IhkResult, ENOENT};
use crate::proto::{Reply, Request};

pub fn dispatch(
    state: &Mutex<State>,
    handle: Option<&InstanceHandle>,
    os: u32,
    req: Request,
    fd: Option<OwnedFd>,
    out_fds: &mut Vec<OwnedFd>,
) -> IhkResult<Reply> {
    let h = || handle.ok_or_else(|| IhkError::new(ENOENT, "no OS instance"));
    match req {
        Request::ReserveMemConf { key, value } => {
            state.lock().unwrap().mem_conf.set(key, value)?;
            tracing::info!("next memory reservation: {key:?} = {value}");
            Ok(Reply::Done)
        }
        Request::OsGetEventfd { kind } => {
            out_fds.push(ops::get_eventfd(h()?, kind)?);
            Ok(Reply::Done)
        }
        Request::OsFreeze => ops::freeze(h()?).map(|_| Reply::Done),
        Request::OsThaw => ops::thaw(h()?).map(|_| Reply::Done),
        Request::OsGetRusage => ops::rusage(h()?).map(Reply::Rusage),
        Request::OsTrace => ops::trace(h()?).map(Reply::Trace),
        Request::OsInfo => state.lock().unwrap().os_info(os).map(Reply::OsInfo),
        Request::OsDump { level, interactive } => {
            let fd =
                fd.ok_or_else(|| IhkError::inval("os_dump: no dump file descriptor was passed"))?;
            ops::dump(h()?, std::fs::File::from(fd), level, interactive).map(Reply::Dumped)
        }
        Request::OsWatch { kmsg_from } => Ok(Reply::Watch(ops::watch(h()?, kmsg_from))),
        Request::OsReportEvent { boot, event } => {
            ops::report(h()?, boot, event).map(|_| Reply::Done)
        }
        other => Err(IhkError::inval(format!(
            "{} is not handled here (internal dispatch error)",
            other.name()
        ))),
    }
}
