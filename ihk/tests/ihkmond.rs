//! ihkmond as an operator relies on it: kernel messages arrive in syslog (a
//! syslog socket this test provides), a hang the LWK makes on purpose
//! (`ihk_test_hang`) is seen as HUNGUP through an `ihk_os_get_eventfd`
//! eventfd within 3 s with `-i 1`, a panic (`ihk_test_panic`) is reported
//! the same way, and `mcreboot -k/-i` start it while `mcstop+release`
//! stops it.

mod common;
use common::*;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ihk::client::Client;
use ihk::paths::RuntimeDir;
use ihk::proto::libihk::EventType;

const IHKMOND: &str = env!("CARGO_BIN_EXE_ihkmond");

/// A syslog socket: a thread receives every message (ihkmond must never
/// wait for us) until the sink is dropped.
struct SyslogSink {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyslogSink {
    fn bind(path: &Path) -> SyslogSink {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while !s.load(Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    l.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
        SyslogSink {
            lines,
            stop,
            thread: Some(thread),
        }
    }

    /// Wait until a message contains `text`; returns it.
    fn wait_for(&self, text: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return Some(l.clone());
            }
            if Instant::now() > deadline {
                eprintln!("syslog so far:\n{}", self.lines.lock().unwrap().join("\n"));
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Wait until the eventfd counts an event; the time it took, or None.
fn wait_event(fd: &OwnedFd, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one descriptor we own.
    let r = unsafe { libc::poll(&mut p, 1, within.as_millis() as i32) };
    (r == 1).then(|| start.elapsed())
}

fn ihkmond_pid(node: &Node) -> Option<u32> {
    std::fs::read_to_string(node.runtime_dir().join("ihkmond.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A node with ihkd, ihkmond -k 1 -i 1 (sending to our socket), and an
/// instance configured on CPU 1 with `kargs`, not booted yet.
fn prepared(kargs: &str) -> (Node, SyslogSink, RuntimeDir) {
    let mut node = Node::new();
    let log = node.runtime_dir().join("syslog.sock");
    let sink = SyslogSink::bind(&log);
    node.env
        .push(("IHKMOND_SYSLOG_SOCKET".into(), log.display().to_string()));
    node.start_ihkd("pin");
    // ihkmond detaches and returns once it runs.
    node.ok(IHKMOND, &["-k", "1", "-i", "1", "-f", "LOG_LOCAL6"]);
    assert!(ihkmond_pid(&node).is_some_and(process_alive));
    node.ihkconfig(&["reserve", "cpu", "1"]);
    node.ihkconfig(&["reserve", "mem", "64M"]);
    node.ihkconfig(&["create"]);
    node.ihkosctl(0, &["assign", "cpu", "1"]);
    node.ihkosctl(0, &["assign", "mem", "all"]);
    node.ihkosctl(0, &["load", image().to_str().unwrap()]);
    node.ihkosctl(0, &["kargs", kargs]);
    let dir = RuntimeDir(node.runtime_dir().to_path_buf());
    (node, sink, dir)
}

fn finish(mut node: Node, sink: SyslogSink) {
    let pid = ihkmond_pid(&node).expect("ihkmond runs");
    node.ok(MCSTOP, &[]);
    assert!(!process_alive(pid), "mcstop+release stopped ihkmond");
    node.reap_ihkd();
    drop(sink);
    let _ = std::fs::remove_file(node.runtime_dir().join("syslog.sock"));
    let _ = std::fs::remove_file(node.runtime_dir().join("ihkmond.log"));
    node.assert_clean();
}

#[test]
fn a_hang_is_hungup_through_the_eventfd_within_3s() {
    if !can_run("a_hang_is_hungup_through_the_eventfd_within_3s") {
        return;
    }
    let (node, sink, dir) = prepared("hidos ihk_test_hang=1500");
    // The scheduler's eventfd, taken before the job starts.
    let ev = Client::os(&dir, 0)
        .unwrap()
        .os_get_eventfd(EventType::Status)
        .unwrap();
    node.ihkosctl(0, &["boot"]);
    let hang_at = Instant::now() + Duration::from_millis(1500);
    // Kernel messages reach syslog, the boot log first.
    assert!(sink
        .wait_for("IHK/McKernel booted.", Duration::from_secs(5))
        .is_some());
    assert!(sink
        .wait_for("ihk_test_hang: CPU 0 hangs now", Duration::from_secs(5))
        .is_some());
    let fired = wait_event(&ev, Duration::from_secs(8)).expect("the eventfd fired");
    let after_hang = Instant::now().saturating_duration_since(hang_at);
    eprintln!("HUNGUP signalled {after_hang:?} after the hang (eventfd wait {fired:?})");
    assert!(
        after_hang <= Duration::from_secs(3),
        "{after_hang:?} after the hang"
    );
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "HUNGUP");
    let line = sink.wait_for("hung up", Duration::from_secs(2)).unwrap();
    assert!(
        line.starts_with("<179>"),
        "LOG_LOCAL6 (22) * 8 + LOG_ERR (3): {line}"
    );
    finish(node, sink);
}

#[test]
fn a_panic_is_reported_through_the_eventfd() {
    if !can_run("a_panic_is_reported_through_the_eventfd") {
        return;
    }
    let (node, sink, dir) = prepared("hidos ihk_test_panic=1000");
    let ev = Client::os(&dir, 0)
        .unwrap()
        .os_get_eventfd(EventType::Status)
        .unwrap();
    node.ihkosctl(0, &["boot"]);
    let panic_at = Instant::now() + Duration::from_millis(1000);
    wait_event(&ev, Duration::from_secs(6)).expect("the eventfd fired");
    let after = Instant::now().saturating_duration_since(panic_at);
    assert!(after <= Duration::from_secs(3), "{after:?} after the panic");
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "PANIC");
    assert!(sink
        .wait_for(
            "Kernel panic - not syncing: ihk_test_panic",
            Duration::from_secs(3)
        )
        .is_some());
    assert!(sink.wait_for("panicked", Duration::from_secs(3)).is_some());
    finish(node, sink);
}

#[test]
fn mcreboot_starts_ihkmond_and_mcstop_release_stops_it() {
    if !can_run("mcreboot_starts_ihkmond_and_mcstop_release_stops_it") {
        return;
    }
    let mut node = Node::new();
    let log = node.runtime_dir().join("syslog.sock");
    let sink = SyslogSink::bind(&log);
    node.env
        .push(("IHKMOND_SYSLOG_SOCKET".into(), log.display().to_string()));
    node.env.push(("IHKMOND".into(), IHKMOND.into()));
    node.ok(MCREBOOT, &["-c", "1", "-m", "64M", "-k", "1", "-i", "600"]);
    let pid = ihkmond_pid(&node).expect("mcreboot started ihkmond");
    assert!(process_alive(pid));
    let line = sink
        .wait_for("IHK/McKernel booted.", Duration::from_secs(5))
        .expect("kmsg in syslog");
    assert!(line.contains("ihkmond["), "{line}");
    // A second mcreboot replaces it (as the script's kill + start).
    node.ok(MCREBOOT, &["-c", "1", "-m", "64M", "-k", "0", "-i", "-1"]);
    assert!(!process_alive(pid), "the old ihkmond is gone");
    assert_eq!(ihkmond_pid(&node), None, "-k 0 -i -1: no ihkmond");
    node.ok(MCREBOOT, &["-c", "1", "-m", "64M", "-k", "1"]);
    let pid = ihkmond_pid(&node).expect("ihkmond again");
    node.ok(MCSTOP, &[]);
    assert!(!process_alive(pid), "mcstop+release stopped ihkmond");
    drop(sink);
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(node.runtime_dir().join("ihkmond.log"));
    node.assert_clean();
}

#[test]
fn bad_options_are_refused() {
    let out = std::process::Command::new(IHKMOND)
        .args(["-i", "0", "--foreground"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-i 0"));
    let out = std::process::Command::new(IHKMOND)
        .args(["-f", "LOG_NOPE", "--foreground"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown syslog facility"));
}
