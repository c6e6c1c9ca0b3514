//! The `os_attach` request of mcexec (owned by the mcexec work).
//!
//! ihkd claims a process slot of the LWK for the calling mcexec
//! (`ihk_vm::Partition::offload_attach`), replies with the guest layout and
//! the descriptors (doorbell, irqfd, memfds), and then keeps the connection
//! open: when it closes (mcexec exited, or was killed, even with SIGKILL)
//! the attachment is dropped, which tells the LWK the proxy is gone.
//!
//! When the OS instance shuts down, [`close_all`] ends its attachments
//! first (mcexec sees the socket close and exits) and waits briefly for
//! those mcexec processes to go, so that they no longer map guest memory
//! when it is released.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::instance::InstanceHandle;
use crate::proto::wire;
use crate::proto::{AttachInfo, AttachRegion, Reply, Response};

/// mcexec pid and a handle on its connection.
type Attached = (u32, UnixStream);
/// Live attachments per OS index.
static ATTACHED: Mutex<Option<HashMap<u32, Vec<Attached>>>> = Mutex::new(None);

/// How long [`close_all`] waits for attached mcexec processes to exit.
const PROXY_EXIT_WAIT: Duration = Duration::from_secs(3);

/// Serve one `os_attach` on `stream` until the connection ends.
pub fn serve(handle: &InstanceHandle, pid: u32, stream: &UnixStream, local_rank: Option<u32>, per_node: Option<u32>) {
    let att = match handle.offload_attach(pid, local_rank, per_node) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!("os_attach from pid {pid} failed: {e}");
            send(stream, &Response::Err(e), &[]);
            return;
        }
    };
    let info = AttachInfo {
        slot: att.slot,
        cpu: att.cpu,
        cpu_first: att.cpu_first,
        cpu_count: att.cpu_count,
        nr_cpus: att.nr_cpus,
        offload_area_gpa: att.offload_area_gpa,
        regions: att
            .regions
            .iter()
            .map(|r| AttachRegion { gpa: r.gpa, size: r.size, fd_offset: r.memfd_offset, page_size: r.page_size })
            .collect(),
    };
    let clone = stream.try_clone();
    if let Ok(c) = clone {
        ATTACHED.lock().unwrap().get_or_insert_with(HashMap::new).entry(handle.index).or_default().push((pid, c));
    }
    tracing::info!("OS {}: mcexec pid {pid} attached to process slot {} on LWK CPU {}", handle.index, att.slot, att.cpu);
    if send(stream, &Response::Ok { reply: Reply::Attached(info), warnings: Vec::new() }, &att.fds()) {
        crate::fault::point("ihkd:attached");
        // Hold the attachment until the connection ends.
        let mut buf = [0u8; 256];
        loop {
            // SAFETY: reading into a local buffer from our socket.
            let n = unsafe { libc::read(stream.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
            if n == 0 || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)) {
                break;
            }
        }
    }
    if let Some(list) = ATTACHED.lock().unwrap().as_mut().and_then(|m| m.get_mut(&handle.index)) {
        list.retain(|(p, _)| *p != pid);
    }
    tracing::info!("OS {}: mcexec pid {pid} detached from process slot {}", handle.index, att.slot);
    drop(att);
}

fn send(stream: &UnixStream, r: &Response, fds: &[i32]) -> bool {
    let text = match serde_json::to_string(r) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("encoding the attach reply: {e}");
            return false;
        }
    };
    wire::send(stream, &text, fds).is_ok()
}

/// End every attachment of OS `os` and wait (up to a few seconds) for
/// those mcexec processes to exit.
pub fn close_all(os: u32) {
    let list = ATTACHED.lock().unwrap().as_mut().and_then(|m| m.remove(&os)).unwrap_or_default();
    if list.is_empty() {
        return;
    }
    let mut pidfds = Vec::new();
    for (pid, s) in &list {
        // SAFETY: pidfd_open on a pid; a stale pid yields an error.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, *pid as libc::pid_t, 0) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor we own.
            pidfds.push((*pid, unsafe { OwnedFd::from_raw_fd(fd as i32) }));
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    let deadline = Instant::now() + PROXY_EXIT_WAIT;
    for (pid, fd) in pidfds {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd: fd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: polling one descriptor we own.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) };
        if r <= 0 {
            tracing::warn!("OS {os}: mcexec pid {pid} did not exit after its OS instance went away");
        }
    }
}
