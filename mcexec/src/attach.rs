//! Attaching to an OS instance: the `os_attach` request on `mcos<N>`.
//!
//! `ihkd` claims a process slot of the LWK's offload area for us and replies
//! with the guest memory layout and, as SCM_RIGHTS descriptors, the
//! process doorbell (an ioeventfd the LWK rings), the irqfds of the LWK
//! CPUs of the process's CPU set, and the memfds of guest memory. The connection stays open
//! for the life of `mcexec`: when it closes (we exit or are killed, even
//! with SIGKILL) `ihkd` tells the LWK the proxy is gone, and the LWK ends
//! the process if it still runs.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use ihk_client::paths::RuntimeDir;
use ihk_client::proto::wire::{self, Receiver};
use ihk_client::proto::{AttachInfo, Reply, Request, RequestEnvelope, Response, PROTOCOL_VERSION};

use crate::guest::RegionDesc;

/// Why attaching failed, worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "no OS instance {os} is running (nothing serves {path}); boot one first, e.g. \
         `mcreboot -c <cpus> -m <memory>` (IHK_RUNTIME_DIR={dir})"
    )]
    NoInstance { os: u32, path: String, dir: String },
    #[error("cannot use OS instance {os}: permission denied on {path} (boot it with `mcreboot -o <your user>`)")]
    Permission { os: u32, path: String },
    #[error("OS instance {os}: {msg}")]
    Refused { os: u32, msg: String },
    #[error("OS instance {os}: talking to ihkd: {msg}")]
    Protocol { os: u32, msg: String },
}

/// An attachment: keep it (and its socket) alive while the program runs.
pub struct Attachment {
    /// The connection whose end tells ihkd we are gone.
    pub sock: UnixStream,
    pub info: AttachInfo,
    pub doorbell: OwnedFd,
    /// irqfds of LWK CPUs `info.cpu_first ..`, in CPU order.
    pub irqfds: Vec<OwnedFd>,
    pub memfds: Vec<OwnedFd>,
}

impl Attachment {
    pub fn regions(&self) -> Vec<RegionDesc> {
        self.info
            .regions
            .iter()
            .map(|r| RegionDesc { gpa: r.gpa, size: r.size, fd_offset: r.fd_offset, page_size: r.page_size })
            .collect()
    }
}

/// `local_rank`/`per_node`: the launcher's node-local rank and `mcexec -n`;
/// with both, ihkd places the process on the rank's share of the LWK CPUs,
/// otherwise on the least loaded LWK CPU.
pub fn attach(
    dir: &RuntimeDir,
    os: u32,
    local_rank: Option<u32>,
    per_node: Option<u32>,
) -> Result<Attachment, AttachError> {
    let path = dir.os_socket(os);
    let shown = path.display().to_string();
    let sock = UnixStream::connect(&path).map_err(|e| match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => AttachError::Permission { os, path: shown.clone() },
        _ => AttachError::NoInstance { os, path: shown.clone(), dir: dir.path().display().to_string() },
    })?;
    let proto = |msg: String| AttachError::Protocol { os, msg };
    let line = serde_json::to_string(&RequestEnvelope { v: PROTOCOL_VERSION, req: Request::OsAttach { local_rank, per_node } })
        .map_err(|e| proto(e.to_string()))?;
    wire::send(&sock, &line, &[]).map_err(|e| proto(format!("sending the attach request: {e}")))?;
    let mut rx = Receiver::new();
    let (reply, fds) = rx
        .recv(&sock)
        .map_err(|e| proto(format!("reading the reply: {e}")))?
        .ok_or_else(|| proto("ihkd closed the connection".into()))?;
    let info = match serde_json::from_str::<Response>(&reply) {
        Ok(Response::Ok { reply: Reply::Attached(info), .. }) => info,
        Ok(Response::Ok { reply, .. }) => return Err(proto(format!("unexpected reply {reply:?}"))),
        Ok(Response::Err(e)) => return Err(AttachError::Refused { os, msg: e.to_string() }),
        Err(e) => return Err(proto(format!("unreadable reply: {e}"))),
    };
    let want = 1 + info.cpu_count as usize + info.regions.len();
    if info.cpu_count == 0 || !(info.cpu_first..info.cpu_first + info.cpu_count).contains(&info.cpu) || fds.len() != want
    {
        return Err(proto(format!(
            "expected {want} descriptors and CPU {} in {}+{} with the reply, got {} descriptors",
            info.cpu,
            info.cpu_first,
            info.cpu_count,
            fds.len()
        )));
    }
    let mut fds = fds.into_iter();
    let doorbell = fds.next().unwrap();
    let irqfds = fds.by_ref().take(info.cpu_count as usize).collect();
    let memfds = fds.collect();
    Ok(Attachment { sock, info, doorbell, irqfds, memfds })
}
