//! A syslog client (what glibc's `syslog()` does, without its global
//! state): messages in the BSD format `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`
//! to the local syslog socket, `/dev/log` unless `IHKMOND_SYSLOG_SOCKET`
//! names another (tests). A datagram socket is tried first, then a stream
//! socket (each message then ends with a newline). When the socket cannot
//! be reached the message is dropped and the next one tries again.

use std::io::Write;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;

/// Syslog facilities by the names `-f` accepts, with their codes.
pub const FACILITIES: &[(&str, u8)] = &[
    ("LOG_KERN", 0),
    ("LOG_USER", 1),
    ("LOG_MAIL", 2),
    ("LOG_DAEMON", 3),
    ("LOG_AUTH", 4),
    ("LOG_SYSLOG", 5),
    ("LOG_LPR", 6),
    ("LOG_NEWS", 7),
    ("LOG_UUCP", 8),
    ("LOG_CRON", 9),
    ("LOG_AUTHPRIV", 10),
    ("LOG_FTP", 11),
    ("LOG_LOCAL0", 16),
    ("LOG_LOCAL1", 17),
    ("LOG_LOCAL2", 18),
    ("LOG_LOCAL3", 19),
    ("LOG_LOCAL4", 20),
    ("LOG_LOCAL5", 21),
    ("LOG_LOCAL6", 22),
    ("LOG_LOCAL7", 23),
];

/// Severities used.
pub const LOG_ERR: u8 = 3;
pub const LOG_WARNING: u8 = 4;
pub const LOG_INFO: u8 = 6;

/// The facility code of `name` (`LOG_LOCAL6`, also `local6`).
pub fn facility_code(name: &str) -> Option<u8> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("LOG_") {
        upper
    } else {
        format!("LOG_{upper}")
    };
    FACILITIES.iter().find(|(n, _)| *n == full).map(|&(_, c)| c)
}

enum Conn {
    Dgram(UnixDatagram),
    Stream(UnixStream),
}

pub struct Syslog {
    path: PathBuf,
    facility: u8,
    tag: String,
    conn: Option<Conn>,
    /// Whether the last attempt failed (to warn once per outage).
    failing: bool,
}

impl Syslog {
    pub fn new(facility: u8, tag: &str) -> Syslog {
        let path = std::env::var_os("IHKMOND_SYSLOG_SOCKET")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/dev/log"));
        Syslog {
            path,
            facility,
            tag: tag.to_string(),
            conn: None,
            failing: false,
        }
    }

    /// A client of the socket at `path` (instead of the environment's).
    pub fn to_path(path: &std::path::Path, facility: u8, tag: &str) -> Syslog {
        Syslog {
            path: path.to_path_buf(),
            ..Syslog::new(facility, tag)
        }
    }

    fn connect(&self) -> std::io::Result<Conn> {
        let d = UnixDatagram::unbound()?;
        match d.connect(&self.path) {
            Ok(()) => Ok(Conn::Dgram(d)),
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                Ok(Conn::Stream(UnixStream::connect(&self.path)?))
            }
            Err(e) => Err(e),
        }
    }

    /// Send one message at `severity`.
    pub fn log(&mut self, severity: u8, msg: &str) {
        let line = format(self.facility, severity, &self.tag, std::process::id(), msg);
        for attempt in 0..2 {
            if self.conn.is_none() {
                match self.connect() {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => {
                        self.outage(&e);
                        return;
                    }
                }
            }
            let sent = match self.conn.as_mut().unwrap() {
                Conn::Dgram(d) => d.send(line.as_bytes()).map(|_| ()),
                Conn::Stream(s) => s.write_all(format!("{line}\n").as_bytes()),
            };
            match sent {
                Ok(()) => {
                    if self.failing {
                        tracing::info!("syslog socket {} reachable again", self.path.display());
                    }
                    self.failing = false;
                    return;
                }
                // The syslog daemon restarted: reconnect once.
                Err(e) if attempt == 0 => {
                    tracing::debug!("syslog send: {e}; reconnecting");
                    self.conn = None;
                }
                Err(e) => {
                    self.conn = None;
                    self.outage(&e);
                }
            }
        }
    }

    fn outage(&mut self, e: &std::io::Error) {
        if !self.failing {
            tracing::warn!(
                "cannot send to the syslog socket {}: {e} (messages are dropped until it works)",
                self.path.display()
            );
        }
        self.failing = true;
    }
}

/// `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG` with the local time.
pub fn format(facility: u8, severity: u8, tag: &str, pid: u32, msg: &str) -> String {
    let pri = facility as u32 * 8 + severity as u32;
    format!("<{pri}>{} {tag}[{pid}]: {msg}", timestamp())
}

fn timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: time and localtime_r write only into our local tm.
    let tm = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities_and_format() {
        assert_eq!(facility_code("LOG_LOCAL6"), Some(22));
        assert_eq!(facility_code("local0"), Some(16));
        assert_eq!(facility_code("LOG_NOPE"), None);
        let m = format(22, LOG_INFO, "ihkmond", 42, "hello");
        assert!(m.starts_with("<182>"), "{m}");
        assert!(m.ends_with(" ihkmond[42]: hello"), "{m}");
    }

    #[test]
    fn messages_reach_a_datagram_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut s = Syslog::to_path(&path, 22, "ihkmond");
        s.log(LOG_INFO, "one line");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            got.starts_with("<182>") && got.ends_with(": one line"),
            "{got}"
        );
    }
}
