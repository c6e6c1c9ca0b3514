//! ihkmond's state for one OS instance: where its kmsg forwarding stands,
//! the hang detector, and which events were already reported for the
//! current boot.

use std::time::{Duration, Instant};

use ihk_vm::CpuState;

use super::hang::HangDetector;
use super::syslog::{Syslog, LOG_ERR, LOG_INFO, LOG_WARNING};
use crate::proto::libihk::{MonitorEvent, WatchInfo};

/// Memory threshold of event type 0: usage above (assigned - 2 MiB).
pub const MEMORY_MARGIN: u64 = 2 << 20;
/// A partial kmsg line is sent anyway after this many looks.
const PARTIAL_LINE_LOOKS: u32 = 8;

pub struct Watched {
    pub os: u32,
    boot: Option<u64>,
    kmsg_pos: u64,
    partial: String,
    partial_looks: u32,
    hang: Option<HangDetector>,
    hang_reported: bool,
    panic_reported: bool,
    memory_over: bool,
}

impl Watched {
    pub fn new(os: u32, interval: Option<Duration>) -> Self {
        Watched {
            os,
            boot: None,
            kmsg_pos: 0,
            partial: String::new(),
            partial_looks: 0,
            hang: interval.map(HangDetector::new),
            hang_reported: false,
            panic_reported: false,
            memory_over: false,
        }
    }

    fn prefix(&self) -> String {
        if self.os == 0 {
            String::new()
        } else {
            format!("mcos{}: ", self.os)
        }
    }

    /// The position to ask kmsg from (None: kmsg is not forwarded).
    pub fn kmsg_from(&self, forward: bool) -> Option<u64> {
        forward.then_some(self.kmsg_pos)
    }

    /// Act on one observation: forward kmsg, detect. Returns the events to
    /// report to ihkd about boot `w.boot` (each once per boot; memory at
    /// each upward crossing); [`Watched::not_reported`] takes one back when
    /// the report failed, so the next look retries it.
    pub fn observe(&mut self, w: &WatchInfo, now: Instant, log: &mut Syslog) -> Vec<MonitorEvent> {
        let mut events = Vec::new();
        if self.boot != Some(w.boot) {
            // A new boot (or the first look): its kmsg starts at 0.
            self.boot = Some(w.boot);
            self.kmsg_pos = 0;
            self.partial.clear();
            self.hang_reported = false;
            self.panic_reported = false;
            self.memory_over = false;
            if let Some(h) = self.hang.as_mut() {
                h.reset();
            }
            if w.kmsg.is_some() {
                // The view was read from the old position: ask again.
                return events;
            }
        }
        if let Some(k) = &w.kmsg {
            self.forward(k.text.as_str(), k.lost, log);
            self.kmsg_pos = k.next;
        }
        match w.status.as_str() {
            "PANIC" if !self.panic_reported => {
                log.log(
                    LOG_ERR,
                    &format!("{}OS instance {} panicked", self.prefix(), self.os),
                );
                events.push(MonitorEvent::Panic);
                self.panic_reported = true;
            }
            "RUNNING" | "FREEZING" | "FROZEN" => {
                let period = Duration::from_micros(w.heartbeat_period_us);
                let cpus: Vec<(u32, u64, CpuState)> = w
                    .cpus
                    .iter()
                    .map(|c| (c.lwk_cpu, c.heartbeat, CpuState::from_u32(c.state)))
                    .collect();
                let hung = match self.hang.as_mut() {
                    Some(h) if !cpus.is_empty() && w.heartbeat_period_us > 0 => {
                        h.observe(now, period, &cpus)
                    }
                    _ => None,
                };
                if let (Some(cpu), false) = (hung, self.hang_reported) {
                    log.log(
                        LOG_ERR,
                        &format!(
                            "{}OS instance {} hung up: LWK CPU {cpu} is busy in the kernel and its heartbeat stopped",
                            self.prefix(),
                            self.os
                        ),
                    );
                    events.push(MonitorEvent::Hangup { lwk_cpu: cpu });
                    self.hang_reported = true;
                }
            }
            _ => {}
        }
        if let Some((assigned, free)) = w.memory {
            let over = assigned.saturating_sub(free) > assigned.saturating_sub(MEMORY_MARGIN);
            if over && !self.memory_over {
                log.log(
                    LOG_WARNING,
                    &format!(
                        "{}OS instance {}: memory in use exceeds the assigned {} bytes minus 2 MiB",
                        self.prefix(),
                        self.os,
                        assigned
                    ),
                );
                events.push(MonitorEvent::MemoryThreshold);
            }
            self.memory_over = over;
        }
        events
    }

    /// Reporting `e` failed: look for it again next time.
    pub fn not_reported(&mut self, e: &MonitorEvent) {
        match e {
            MonitorEvent::Panic => self.panic_reported = false,
            MonitorEvent::Hangup { .. } => self.hang_reported = false,
            MonitorEvent::MemoryThreshold => self.memory_over = false,
        }
    }


    fn forward(&mut self, text: &str, lost: u64, log: &mut Syslog) {
        if lost > 0 {
            log.log(
                LOG_WARNING,
                &format!(
                    "{}{lost} bytes of kernel messages were overwritten before ihkmond read them",
                    self.prefix()
                ),
            );
        }
        self.partial.push_str(text);
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if !line.is_empty() {
                log.log(LOG_INFO, &format!("{}{line}", self.prefix()));
            }
        }
        if self.partial.is_empty() {
            self.partial_looks = 0;
        } else {
            self.partial_looks += 1;
            if self.partial_looks >= PARTIAL_LINE_LOOKS {
                let line = std::mem::take(&mut self.partial);
                log.log(LOG_INFO, &format!("{}{line}", self.prefix()));
                self.partial_looks = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::libihk::{CpuWatch, KmsgPiece};
    use std::os::unix::net::UnixDatagram;

    fn sink() -> (tempfile::TempDir, UnixDatagram, Syslog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        (dir, server, Syslog::to_path(&path, 22, "ihkmond"))
    }

    fn received(server: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = server.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            out.push(m.split_once("]: ").unwrap().1.to_string());
        }
        out
    }

    fn view(
        boot: u64,
        status: &str,
        kmsg: Option<(&str, u64)>,
        memory: Option<(u64, u64)>,
    ) -> WatchInfo {
        WatchInfo {
            boot,
            status: status.into(),
            heartbeat_period_us: 100_000,
            cpus: vec![CpuWatch {
                lwk_cpu: 0,
                linux_cpu: 1,
                heartbeat: 7,
                state: CpuState::RunningKernel as u32,
            }],
            kmsg: kmsg.map(|(t, next)| KmsgPiece {
                text: t.into(),
                next,
                lost: 0,
            }),
            memory,
        }
    }

    #[test]
    fn kmsg_lines_are_forwarded_once_and_whole() {
        let (_d, server, mut log) = sink();
        let mut w = Watched::new(0, None);
        let t = Instant::now();
        // First look at a boot: read again from 0.
        assert!(w
            .observe(&view(1, "RUNNING", Some(("x", 1)), None), t, &mut log)
            .is_empty());
        assert_eq!(w.kmsg_from(true), Some(0));
        w.observe(&view(1, "RUNNING", Some(("one\ntw", 7)), None), t, &mut log);
        assert_eq!(w.kmsg_from(true), Some(7));
        w.observe(&view(1, "RUNNING", Some(("o\n", 9)), None), t, &mut log);
        assert_eq!(received(&server), vec!["one", "two"]);
        // A new boot starts over at 0.
        w.observe(&view(2, "RUNNING", Some(("", 9)), None), t, &mut log);
        assert_eq!(w.kmsg_from(true), Some(0));
        assert_eq!(w.kmsg_from(false), None);
    }

    #[test]
    fn events_are_reported_once_per_boot_and_memory_per_crossing() {
        let (_d, server, mut log) = sink();
        let mut w = Watched::new(3, Some(Duration::from_secs(1)));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        const M: u64 = 1 << 20;
        assert!(w
            .observe(
                &view(1, "RUNNING", None, Some((64 * M, 10 * M))),
                at(0),
                &mut log
            )
            .is_empty());
        // Heartbeat 7 forever, busy in the kernel: a hang after 2 s.
        assert!(w
            .observe(&view(1, "RUNNING", None, None), at(1000), &mut log)
            .is_empty());
        let e = w.observe(&view(1, "RUNNING", None, None), at(2100), &mut log);
        assert_eq!(e, vec![MonitorEvent::Hangup { lwk_cpu: 0 }]);
        assert!(w
            .observe(&view(1, "RUNNING", None, None), at(2300), &mut log)
            .is_empty());
        // A failed report is retried.
        w.not_reported(&e[0]);
        assert_eq!(
            w.observe(&view(1, "RUNNING", None, None), at(2400), &mut log),
            e
        );
        // Memory: over the threshold once, again only after going below.
        let over = Some((64 * M, M));
        assert_eq!(
            w.observe(&view(1, "HUNGUP", None, over), at(2500), &mut log),
            vec![MonitorEvent::MemoryThreshold]
        );
        assert!(w
            .observe(&view(1, "HUNGUP", None, over), at(2600), &mut log)
            .is_empty());
        assert!(w
            .observe(
                &view(1, "HUNGUP", None, Some((64 * M, 3 * M))),
                at(2700),
                &mut log
            )
            .is_empty());
        assert_eq!(
            w.observe(&view(1, "HUNGUP", None, over), at(2800), &mut log),
            vec![MonitorEvent::MemoryThreshold]
        );
        // A panic, once.
        assert_eq!(
            w.observe(&view(1, "PANIC", None, None), at(2900), &mut log),
            vec![MonitorEvent::Panic]
        );
        assert!(w
            .observe(&view(1, "PANIC", None, None), at(3000), &mut log)
            .is_empty());
        let msgs = received(&server);
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("mcos3: OS instance 3 hung up: LWK CPU 0")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("panicked")), "{msgs:?}");
    }
}
