//! The wire protocol between ql_mpiexec_start/finalize, ql_server and the
//! ranks: length-prefixed bincode messages on a Unix stream socket, with
//! file descriptors (a round's stdin, stdout, stderr) passed as SCM_RIGHTS
//! on the message they belong to.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Raw bytes of an argument, environment entry or path (not necessarily
/// UTF-8).
pub type Bytes = Vec<u8>;

/// Largest message accepted (argv and environment of one round).
pub const MAX_MESSAGE: usize = 16 << 20;
/// Most descriptors one message carries.
pub const MAX_FDS: usize = 3;

/// What a round runs: the program's argv, its environment and directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundSpec {
    pub argv: Vec<Bytes>,
    /// `NAME=VALUE` entries.
    pub env: Vec<Bytes>,
    pub cwd: Bytes,
}

/// A ql_mpiexec_start request. Carries the caller's stdin, stdout, stderr.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// The full mpiexec command, used if the job is not resident yet.
    pub launch: Vec<Bytes>,
    /// mpiexec's environment (the caller's, plus the quick-launch variables).
    pub launch_env: Vec<Bytes>,
    /// The round.
    pub round: RoundSpec,
}

/// A rank's introduction, sent once after MPI_Init.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub rank: i32,
    pub size: i32,
    pub pid: i32,
}

/// Messages to ql_server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToServer {
    /// Run a round (fds: stdin, stdout, stderr).
    Start(Start),
    /// End the resident job (fds: stdin, stdout, stderr).
    Finalize,
    /// A rank of the job connected.
    Hello(Hello),
    /// The rank finished its round and waits in ql_client.
    RoundEnd,
}

/// How a round or job ended, as a shell would report mpiexec's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Code(i32),
    Signal(i32),
}

impl Status {
    /// The shell's `$?` for this status.
    pub fn shell_code(self) -> i32 {
        match self {
            Status::Code(c) => c,
            Status::Signal(s) => 128 + s,
        }
    }
}

/// Messages to ql_mpiexec_start / ql_mpiexec_finalize.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToClient {
    /// The round (or the finalization) ended; `message` explains a failure.
    Done {
        status: Status,
        message: Option<String>,
    },
    /// The job ended before this request's turn; start over.
    Retry(String),
}

/// Messages to a rank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToRank {
    /// Run a round (fds: stdin, stdout, stderr). `first` is the round mpiexec
    /// launched: argv and directory are already right.
    Round { first: bool, spec: RoundSpec },
    /// No more rounds: return QL_EXIT (fds: stdin, stdout, stderr).
    Exit,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Sends `msg` with `fds` attached.
pub fn send<T: Serialize>(sock: &UnixStream, msg: &T, fds: &[RawFd]) -> io::Result<()> {
    let body = bincode::serialize(msg).map_err(|e| invalid(format!("encoding message: {e}")))?;
    if body.len() > MAX_MESSAGE {
        return Err(invalid(format!(
            "message of {} bytes exceeds {MAX_MESSAGE}",
            body.len()
        )));
    }
    let header = (body.len() as u32).to_le_bytes();
    let iov = [IoSlice::new(&header), IoSlice::new(&body)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let sent = loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(io::Error::from)?,
        }
    };
    // A stream socket may take less than all; the descriptors went with the
    // first byte, the rest is plain data.
    let total = header.len() + body.len();
    if sent < total {
        let mut rest = Vec::with_capacity(total - sent);
        rest.extend_from_slice(&header[sent.min(header.len())..]);
        rest.extend_from_slice(&body[sent.saturating_sub(header.len())..]);
        (&*sock).write_all(&rest)?;
    }
    Ok(())
}

/// Receives one message and the descriptors attached to it. `Ok(None)` on
/// end of stream before a message starts.
pub fn recv<T: DeserializeOwned>(sock: &UnixStream) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut header = [0u8; 4];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let got = loop {
        let mut iov = [IoSliceMut::new(&mut header)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(m) => {
                for c in m.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these descriptors
                        // in our table for us; nothing else owns them.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                if m.flags.contains(MsgFlags::MSG_CTRUNC) {
                    return Err(invalid("more descriptors than a message may carry".into()));
                }
                break m.bytes;
            }
        }
    };
    if got == 0 {
        return Ok(None);
    }
    (&*sock).read_exact(&mut header[got..])?;
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(invalid(format!(
            "message of {len} bytes exceeds {MAX_MESSAGE}"
        )));
    }
    let mut body = vec![0u8; len];
    (&*sock).read_exact(&mut body)?;
    let msg = bincode::deserialize(&body).map_err(|e| invalid(format!("decoding message: {e}")))?;
    Ok(Some((msg, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_and_descriptors_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let spec = RoundSpec {
            argv: vec![b"./a.out".to_vec(), vec![0xff, 0]],
            env: vec![b"A=1".to_vec()],
            cwd: b"/".to_vec(),
        };
        let msg = ToRank::Round {
            first: false,
            spec: spec.clone(),
        };
        send(&a, &msg, &[w.as_raw_fd(), w.as_raw_fd()]).unwrap();
        send(&a, &ToRank::Exit, &[]).unwrap();
        let (got, fds): (ToRank, _) = recv(&b).unwrap().unwrap();
        assert_eq!(got, msg);
        assert_eq!(fds.len(), 2);
        // The passed descriptor is the pipe's write end.
        nix::unistd::write(fds[0].as_fd(), b"x").unwrap();
        let mut buf = [0u8; 1];
        nix::unistd::read(r.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf, b"x");
        let (got, fds): (ToRank, _) = recv(&b).unwrap().unwrap();
        assert_eq!((got, fds.len()), (ToRank::Exit, 0));
        drop(a);
        assert!(recv::<ToRank>(&b).unwrap().is_none());
    }

    #[test]
    fn large_messages_arrive_whole() {
        let (a, b) = UnixStream::pair().unwrap();
        let env: Vec<Bytes> = (0..20000)
            .map(|i| format!("VAR{i}={}", "x".repeat(40)).into_bytes())
            .collect();
        let msg = ToServer::Start(Start {
            launch: vec![],
            launch_env: env.clone(),
            round: RoundSpec::default(),
        });
        let t = std::thread::spawn(move || send(&a, &msg, &[0]).unwrap());
        let (got, fds): (ToServer, _) = recv(&b).unwrap().unwrap();
        t.join().unwrap();
        assert_eq!(fds.len(), 1);
        match got {
            ToServer::Start(s) => assert_eq!(s.launch_env, env),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oversized_length_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(&u32::MAX.to_le_bytes()).unwrap();
        let e = recv::<ToServer>(&b).unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");
    }
}
