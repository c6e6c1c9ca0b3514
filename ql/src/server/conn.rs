//! Connections: the accepting thread (same-user peers only) and one reader
//! thread per connection, all feeding the server loop's event channel.

use super::Event;
use crate::proto::{self, ToServer};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::Sender;

/// Accepts connections until the process ends. A peer of another user is
/// refused (the directory is 0700, so this is defence in depth).
pub fn accept_loop(listener: UnixListener, events: Sender<Event>) {
    let me = nix::unistd::getuid().as_raw();
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept: {e}");
                continue;
            }
        };
        match nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials) {
            Ok(c) if c.uid() == me => {}
            Ok(c) => {
                tracing::warn!(
                    "refused a connection from uid {} (pid {})",
                    c.uid(),
                    c.pid()
                );
                continue;
            }
            Err(e) => {
                tracing::warn!("peer credentials: {e}");
                continue;
            }
        }
        if events.send(Event::Accepted(stream)).is_err() {
            return;
        }
    }
}

/// Reads messages from one connection until it closes.
pub fn read_loop(id: u64, stream: UnixStream, events: Sender<Event>) {
    loop {
        match proto::recv::<ToServer>(&stream) {
            Ok(Some((msg, fds))) => {
                if events.send(Event::Message(id, msg, fds)).is_err() {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("connection {id}: {e}");
                break;
            }
        }
    }
    let _ = events.send(Event::Closed(id));
}
