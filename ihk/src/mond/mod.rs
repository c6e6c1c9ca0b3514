//! ihkmond (§1.3.2.18): forwards each OS instance's kernel messages to
//! syslog and watches for hangs and panics.
//!
//! It may start before ihkd and before any OS instance exists: it looks
//! several times a second for the device and its instances (as the original
//! reacts to udev events), and for each instance asks ihkd for a watch view
//! (status, per-CPU heartbeats and states, allocator memory, kmsg from where
//! it stopped). It opens the sockets only for the request, as the
//! specification expects of it, so `destroy` never waits for it long.
//! Findings go back to ihkd (`os_report_event`), which sets HUNGUP and
//! signals the eventfds of `ihk_os_get_eventfd`.
//!
//! Modules: `syslog` (the syslog client), `hang` (the hang detector),
//! `instance` (the per-instance state).

pub mod hang;
pub mod instance;
pub mod syslog;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::paths::RuntimeDir;
use instance::Watched;
use syslog::Syslog;

/// How often ihkmond looks (kmsg forwarding, hang detection with short
/// intervals, memory threshold).
pub const LOOK_PERIOD: Duration = Duration::from_millis(250);
/// The `-i` default (seconds).
pub const DEFAULT_INTERVAL_SECS: i64 = 600;

/// ihkmond's pid file (locked while it runs) and its log when detached.
pub fn pid_file(dir: &RuntimeDir) -> std::path::PathBuf {
    dir.path().join("ihkmond.pid")
}
pub fn log_file(dir: &RuntimeDir) -> std::path::PathBuf {
    dir.path().join("ihkmond.log")
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Syslog facility code.
    pub facility: u8,
    /// `-k`: forward kmsg.
    pub redirect_kmsg: bool,
    /// `-i`: hang-detection interval (None: `-1`, no detection).
    pub interval: Option<Duration>,
}

/// Run until `stop` is set (SIGTERM/SIGINT).
pub fn run(dir: &RuntimeDir, opts: &Options, stop: &AtomicBool) {
    let mut log = Syslog::new(opts.facility, "ihkmond");
    let mut watched: BTreeMap<u32, Watched> = BTreeMap::new();
    let look = match opts.interval {
        Some(i) => LOOK_PERIOD.min(i / 4).max(Duration::from_millis(10)),
        None => LOOK_PERIOD,
    };
    tracing::info!(
        "ihkmond watching {} (kmsg to syslog: {}, hang detection: {})",
        dir.path().display(),
        if opts.redirect_kmsg { "on" } else { "off" },
        opts.interval.map_or("off".to_string(), |i| format!(
            "every {} s",
            i.as_secs_f64()
        ))
    );
    let mut ihkd_seen = false;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        match Client::device(dir, 0).and_then(|mut c| c.get_os_instances()) {
            Ok(list) => {
                if !ihkd_seen {
                    tracing::info!("ihkd found; OS instances {list:?}");
                    ihkd_seen = true;
                }
                watched.retain(|os, _| list.contains(os));
                for os in list {
                    let w = watched
                        .entry(os)
                        .or_insert_with(|| Watched::new(os, opts.interval));
                    look_at(dir, w, opts, &mut log);
                }
            }
            Err(e) => {
                if ihkd_seen {
                    tracing::info!("ihkd is gone ({}); waiting for it", e.detail);
                    ihkd_seen = false;
                }
                watched.clear();
            }
        }
        let next = started + look;
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
        }
    }
    tracing::info!("ihkmond exiting");
}

fn look_at(dir: &RuntimeDir, w: &mut Watched, opts: &Options, log: &mut Syslog) {
    let r = Client::os(dir, w.os).and_then(|mut c| {
        let view = c.os_watch(w.kmsg_from(opts.redirect_kmsg))?;
        crate::fault::point("ihkmond:watching");
        for e in w.observe(&view, Instant::now(), log) {
            if let Err(err) = c.os_report_event(view.boot, e) {
                tracing::warn!("OS instance {}: reporting {e:?}: {err}", w.os);
                w.not_reported(&e);
            }
        }
        Ok(())
    });
    if let Err(e) = r {
        // The instance went away meanwhile.
        tracing::debug!("OS instance {}: {e}", w.os);
    }
}
