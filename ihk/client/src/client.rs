//! Client side of the ihkd protocol: the Rust form of the IHK functions of
//! specification §1.2.1–1.2.2. The commands are thin layers over this, and
//! libihk / mcexec use it too.
//!
//! Opening a socket maps to the specification's codes: no daemon (no socket,
//! or nobody listening) is ENOENT; a socket the caller may not open is EPERM,
//! as for a device file without access rights.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{IhkError, IhkResult, EBUSY, ENOENT, EPROTO};
use crate::list::{IkcMap, MemList};
use crate::paths::RuntimeDir;
use crate::proto::wire::{self, Receiver};
use crate::proto::{DaemonInfo, Reply, Request, RequestEnvelope, Response, PROTOCOL_VERSION};

/// A connection to `mcd<N>` or `mcos<N>`.
pub struct Client {
    sock: UnixStream,
    rx: Receiver,
    /// Warnings of the last call.
    warnings: Vec<String>,
    /// Descriptors that came with the last reply.
    received: Vec<std::os::fd::OwnedFd>,
}

// The IHK functions only libihk and ihkmond use (client/libihk.rs).
mod libihk;

/// Connect to a socket, mapping failures to the specification's codes.
fn connect(path: &Path, what: &str) -> IhkResult<UnixStream> {
    match UnixStream::connect(path) {
        Ok(s) => Ok(s),
        Err(e) => Err(match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => IhkError::noent(format!(
                "{what} not found: nothing serves {} (is ihkd running? start it with mcreboot or ihkd)",
                path.display()
            )),
            Some(libc::EACCES) | Some(libc::EPERM) => IhkError::perm(format!(
                "cannot open {}: permission denied (it belongs to another user; ask for mcreboot -o)",
                path.display()
            )),
            _ => IhkError::os(e, format!("connecting to {}", path.display())),
        }),
    }
}

impl Client {
    /// Connect to IHK device `dev` (`/dev/mcd<dev>`).
    pub fn device(dir: &RuntimeDir, dev: u32) -> IhkResult<Client> {
        let sock = connect(&dir.device_socket(dev), &format!("IHK device {dev}"))?;
        Ok(Client::from_stream(sock))
    }

    /// Connect to OS instance `os` (`/dev/mcos<os>`).
    pub fn os(dir: &RuntimeDir, os: u32) -> IhkResult<Client> {
        let path = dir.os_socket(os);
        let sock = match connect(&path, &format!("OS instance {os}")) {
            Err(e) if e.errno == ENOENT => {
                return Err(IhkError::noent(format!(
                    "OS instance {os} does not exist (no {}; see ihkconfig 0 get os_instances)",
                    path.display()
                )))
            }
            r => r?,
        };
        Ok(Client::from_stream(sock))
    }

    pub fn from_stream(sock: UnixStream) -> Client {
        Client {
            sock,
            rx: Receiver::new(),
            warnings: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Give up on a reply after this long (None: wait forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(t)
    }

    /// Warnings the daemon attached to the last successful call.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Send one request (with descriptors) and wait for its reply.
    pub fn call_with_fds(&mut self, req: Request, fds: &[RawFd]) -> IhkResult<Reply> {
        let name = req.name();
        let line = serde_json::to_string(&RequestEnvelope {
            v: PROTOCOL_VERSION,
            req,
        })
        .map_err(|e| IhkError::inval(format!("encoding {name}: {e}")))?;
        wire::send(&self.sock, &line, fds)
            .map_err(|e| IhkError::os(e, format!("sending {name} to ihkd")))?;
        if name == "os_shutdown" {
            // The client (ihkosctl) gone while ihkd shuts the LWK down.
            crate::fault::point("ihkosctl:shutdown-sent");
        }
        let (reply, fds) = self
            .rx
            .recv(&self.sock)
            .map_err(|e| IhkError::os(e, format!("waiting for ihkd's reply to {name}")))?
            .ok_or_else(|| IhkError::io(format!("ihkd closed the connection during {name}")))?;
        self.received = fds;
        match serde_json::from_str::<Response>(&reply) {
            Ok(Response::Ok { reply, warnings }) => {
                self.warnings = warnings;
                Ok(reply)
            }
            Ok(Response::Err(e)) => Err(e),
            Err(e) => Err(IhkError::new(
                EPROTO,
                format!("unreadable reply from ihkd to {name}: {e}"),
            )),
        }
    }

    pub fn call(&mut self, req: Request) -> IhkResult<Reply> {
        self.call_with_fds(req, &[])
    }

    fn done(&mut self, req: Request) -> IhkResult<()> {
        match self.call(req)? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn cpus(&mut self, req: Request) -> IhkResult<Vec<u32>> {
        match self.call(req)? {
            Reply::Cpus(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    fn mem(&mut self, req: Request) -> IhkResult<Vec<(u64, u32)>> {
        match self.call(req)? {
            Reply::Mem(m) => Ok(m),
            other => Err(unexpected(other)),
        }
    }

    // ---- device: ihk_reserve_cpu & co (§1.2.1) ----

    pub fn reserve_cpu(&mut self, cpus: &[u32]) -> IhkResult<()> {
        self.done(Request::ReserveCpu {
            cpus: cpus.to_vec(),
        })
    }
    pub fn release_cpu(&mut self, cpus: &[u32]) -> IhkResult<()> {
        self.done(Request::ReleaseCpu {
            cpus: cpus.to_vec(),
        })
    }
    pub fn query_cpu(&mut self) -> IhkResult<Vec<u32>> {
        self.cpus(Request::QueryCpu)
    }
    pub fn reserve_mem(&mut self, mem: &MemList) -> IhkResult<()> {
        self.done(Request::ReserveMem { mem: mem.clone() })
    }
    pub fn release_mem(&mut self, mem: &MemList) -> IhkResult<()> {
        self.done(Request::ReleaseMem { mem: mem.clone() })
    }
    /// Reserved, unassigned memory: (bytes, node).
    pub fn query_mem(&mut self) -> IhkResult<Vec<(u64, u32)>> {
        self.mem(Request::QueryMem)
    }
    pub fn create_os(&mut self) -> IhkResult<u32> {
        match self.call(Request::CreateOs)? {
            Reply::OsIndex(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }
    pub fn destroy_os(&mut self, os: u32) -> IhkResult<()> {
        self.done(Request::DestroyOs { os })
    }
    pub fn get_os_instances(&mut self) -> IhkResult<Vec<u32>> {
        match self.call(Request::GetOsInstances)? {
            Reply::OsIndices(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }
    pub fn set_owner(&mut self, uid: u32, gid: u32) -> IhkResult<()> {
        self.done(Request::SetOwner { uid, gid })
    }
    pub fn daemon_info(&mut self) -> IhkResult<DaemonInfo> {
        match self.call(Request::DaemonInfo)? {
            Reply::Info(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }
    /// Ask ihkd to release everything, restore the node and exit.
    pub fn quit(&mut self) -> IhkResult<()> {
        self.done(Request::Quit)
    }

    // ---- OS instance: ihk_os_* (§1.2.2) ----

    pub fn os_assign_cpu(&mut self, cpus: &[u32]) -> IhkResult<()> {
        self.done(Request::OsAssignCpu {
            cpus: cpus.to_vec(),
        })
    }
    pub fn os_release_cpu(&mut self, cpus: &[u32]) -> IhkResult<()> {
        self.done(Request::OsReleaseCpu {
            cpus: cpus.to_vec(),
        })
    }
    pub fn os_query_cpu(&mut self) -> IhkResult<Vec<u32>> {
        self.cpus(Request::OsQueryCpu)
    }
    pub fn os_assign_mem(&mut self, mem: &MemList) -> IhkResult<()> {
        self.done(Request::OsAssignMem { mem: mem.clone() })
    }
    pub fn os_release_mem(&mut self, mem: &MemList) -> IhkResult<()> {
        self.done(Request::OsReleaseMem { mem: mem.clone() })
    }
    pub fn os_query_mem(&mut self) -> IhkResult<Vec<(u64, u32)>> {
        self.mem(Request::OsQueryMem)
    }
    pub fn os_set_ikc_map(&mut self, map: &IkcMap) -> IhkResult<()> {
        self.done(Request::OsSetIkcMap { map: map.clone() })
    }
    pub fn os_get_ikc_map(&mut self) -> IhkResult<IkcMap> {
        match self.call(Request::OsGetIkcMap)? {
            Reply::IkcMap(m) => Ok(m),
            other => Err(unexpected(other)),
        }
    }
    /// Load a kernel image: the file is opened here, with the caller's
    /// rights, and passed to ihkd as a descriptor.
    pub fn os_load(&mut self, image: &Path) -> IhkResult<()> {
        let f = File::open(image)
            .map_err(|e| IhkError::os(e, format!("opening kernel image {}", image.display())))?;
        if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(IhkError::inval(format!(
                "{} is not a regular file",
                image.display()
            )));
        }
        let name = std::fs::canonicalize(image).unwrap_or_else(|_| PathBuf::from(image));
        match self.call_with_fds(
            Request::OsLoad {
                name: name.display().to_string(),
            },
            &[f.as_raw_fd()],
        )? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
    pub fn os_kargs(&mut self, kargs: &str) -> IhkResult<()> {
        self.done(Request::OsKargs {
            kargs: kargs.to_string(),
        })
    }
    /// Boot and wait until the LWK runs (or panics, or `timeout` passes).
    pub fn os_boot(&mut self, timeout: Duration) -> IhkResult<()> {
        self.done(Request::OsBoot {
            timeout_ms: timeout.as_millis() as u64,
        })
    }
    pub fn os_shutdown(&mut self) -> IhkResult<()> {
        self.done(Request::OsShutdown)
    }
    /// One of INACTIVE BOOTING RUNNING SHUTDOWN PANIC HUNGUP FREEZING FROZEN.
    pub fn os_get_status(&mut self) -> IhkResult<String> {
        match self.call(Request::OsGetStatus)? {
            Reply::Status(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }
    pub fn os_kmsg(&mut self) -> IhkResult<String> {
        match self.call(Request::OsKmsg)? {
            Reply::Kmsg(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }
    pub fn os_clear_kmsg(&mut self) -> IhkResult<()> {
        self.done(Request::OsClearKmsg)
    }
    /// Free memory of the running LWK: (bytes, node).
    pub fn os_query_free_mem(&mut self) -> IhkResult<Vec<(u64, u32)>> {
        self.mem(Request::OsQueryFreeMem)
    }
}

fn unexpected(r: Reply) -> IhkError {
    IhkError::new(EPROTO, format!("unexpected reply from ihkd: {r:?}"))
}

/// Is an ihkd serving this runtime directory (device 0)?
pub fn daemon_running(dir: &RuntimeDir) -> bool {
    Client::device(dir, 0)
        .and_then(|mut c| c.daemon_info())
        .is_ok()
}

/// Whether `e` means "nobody serves that socket".
pub fn is_not_running(e: &IhkError) -> bool {
    e.errno == ENOENT
}

/// Destroy every OS instance, retrying while something still holds one
/// open (as the scripts retry when they collide with ihkmond).
pub fn destroy_all_instances(dir: &RuntimeDir) -> IhkResult<()> {
    let mut dev = Client::device(dir, 0)?;
    for os in dev.get_os_instances()? {
        let mut tries = 0;
        loop {
            match dev.destroy_os(os) {
                Ok(()) => break,
                Err(e) if e.errno == EBUSY && tries < 4 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
