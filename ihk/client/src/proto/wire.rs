//! Newline-framed JSON messages with optional file descriptors over a Unix
//! stream socket.
//!
//! A sender writes one message with a single `sendmsg`, descriptors attached
//! (SCM_RIGHTS); the receiver reads with `recvmsg` into a buffer and keeps
//! the descriptors that arrived with the bytes of the current line.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Largest line accepted (a kmsg reply is the biggest message).
const MAX_LINE: usize = 16 << 20;
/// Most descriptors accepted with one message.
const MAX_FDS: usize = 16;

/// Write `line` (without newline) and `fds` as one message.
pub fn send(sock: &UnixStream, line: &str, fds: &[RawFd]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let mut off = 0;
    while off < buf.len() {
        let iov = [io::IoSlice::new(&buf[off..])];
        let cmsg_storage;
        let cmsgs: &[ControlMessage] = if off == 0 && !fds.is_empty() {
            cmsg_storage = [ControlMessage::ScmRights(fds)];
            &cmsg_storage
        } else {
            &[]
        };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => off += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(())
}

/// Reads lines (and their descriptors) from one stream.
pub struct Receiver {
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    pub fn new() -> Self {
        Receiver {
            buf: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// The next line and the descriptors received with it; `Ok(None)` at a
    /// clean end of stream.
    pub fn recv(&mut self, sock: &UnixStream) -> io::Result<Option<(String, Vec<OwnedFd>)>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8(line[..line.len() - 1].to_vec()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "message is not UTF-8")
                })?;
                return Ok(Some((text, std::mem::take(&mut self.fds))));
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "message too long",
                ));
            }
            let mut chunk = [0u8; 64 * 1024];
            let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
            let (n, fds) = {
                let mut iov = [io::IoSliceMut::new(&mut chunk)];
                let msg = match recvmsg::<()>(
                    sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Ok(m) => m,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(io::Error::from(e)),
                };
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(list) = c {
                        for fd in list {
                            // SAFETY: the kernel just installed `fd` in our
                            // table for us; nothing else owns it.
                            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
                (msg.bytes, fds)
            };
            self.fds.extend(fds);
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-message",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn lines_and_descriptors_arrive_together() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"image bytes").unwrap();
        f.rewind().unwrap();
        send(&a, "{\"x\":1}", &[f.as_raw_fd()]).unwrap();
        send(&a, "second", &[]).unwrap();
        drop(a);
        let mut r = Receiver::new();
        let (l1, fds1) = r.recv(&b).unwrap().unwrap();
        assert_eq!(l1, "{\"x\":1}");
        assert_eq!(fds1.len(), 1);
        let mut got = String::new();
        std::fs::File::from(fds1.into_iter().next().unwrap())
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "image bytes");
        let (l2, fds2) = r.recv(&b).unwrap().unwrap();
        assert_eq!(l2, "second");
        assert!(fds2.is_empty());
        assert!(r.recv(&b).unwrap().is_none());
    }
}
