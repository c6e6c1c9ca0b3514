//! mcstop+release: give the node back, step by step, each step checked
//! (openmosix-shutdown.txt's spirit: an ordered exit that accounts for
//! everything and says what it could not do).
//!
//! Steps: no ihkd and no journal -> nothing to do. No ihkd but a journal
//! left by a crashed one -> start ihkd (it replays the journal on start) and
//! continue. Destroy every OS instance (retrying while something holds one
//! open) -> release the reserved CPUs -> release the reserved memory -> ask
//! ihkd to quit (it undoes whatever the journal still holds and exits) ->
//! wait for it to exit -> stop ihkmond -> check that no journal record, socket or pid file
//! is left. Later steps run even when an earlier one failed, so that as much
//! as possible is given back; every failure is reported.

use std::time::Duration;

use super::daemon_proc::{start_ihkd, wait_exit};
use super::ihkmond_proc::stop_ihkmond;
use super::destroy_all_instances;
use crate::client::{self, Client};
use crate::fault;
use crate::journal::Journal;
use crate::list::MemList;
use crate::paths::RuntimeDir;

/// The outcome: empty `failures` means the node is clean.
#[derive(Debug, Default)]
pub struct StopReport {
    pub had_daemon: bool,
    pub replayed_crash_journal: bool,
    pub failures: Vec<String>,
}

fn journal_pending(dir: &RuntimeDir) -> usize {
    let p = dir.journal();
    if !p.exists() {
        return 0;
    }
    // Opening creates nothing new (the file exists) and only reads.
    Journal::open(&p).map(|j| j.pending().len()).unwrap_or(1)
}

/// How long an ihkd that no longer answers may take to finish exiting: a
/// killed ihkd gives its partition's memory back to the kernel before it
/// is gone, and until then the hugepages it held cannot be released.
const DEAD_IHKD_EXIT: Duration = Duration::from_secs(15);

/// With no ihkd answering: wait until the ihkd of the pid file (if it is
/// one: a pid reused by another program is not) has exited. Found by
/// ihk/tests/faults.rs (`IHK_FAULT_STOP=ihkd:attached`, now and then): the
/// journal replay started while the killed ihkd still held the hugepages
/// it had taken, and could not shrink the pool back.
fn wait_dead_ihkd(dir: &RuntimeDir) -> Result<(), String> {
    let Some(pid) = std::fs::read_to_string(dir.pid_file())
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return Ok(());
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "ihkd" && !wait_exit(pid, DEAD_IHKD_EXIT) {
        return Err(format!(
            "ihkd (pid {pid}) runs but does not answer on {}",
            dir.device_socket(0).display()
        ));
    }
    Ok(())
}

/// With no ihkd serving and nothing to undo: the sockets, pid file and
/// empty journal an ihkd killed after its last change left behind (found
/// by ihk/tests/faults.rs, `IHK_FAULT_STOP=ihkd:quit`), so the runtime
/// directory is as a clean stop leaves it. An ihkd that still runs under
/// the pid file's pid but does not answer: nothing is removed.
fn remove_dead_daemon_files(dir: &RuntimeDir) -> Result<(), String> {
    wait_dead_ihkd(dir)?;
    let entries = match std::fs::read_dir(dir.path()) {
        Ok(e) => e,
        Err(_) => return Ok(()),
    };
    let mut failures = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let socket = |p: &str| {
            name.strip_prefix(p)
                .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
        };
        let empty_journal = e.path() == dir.journal() && e.metadata().is_ok_and(|m| m.len() == 0);
        if socket("mcd") || socket("mcos") || e.path() == dir.pid_file() || empty_journal {
            if let Err(err) = std::fs::remove_file(e.path()) {
                failures.push(format!("{}: {err}", e.path().display()));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

pub fn stop_release(dir: &RuntimeDir) -> StopReport {
    let mut report = StopReport::default();
    let fail =
        |r: &mut StopReport, step: &str, why: String| r.failures.push(format!("{step}: {why}"));

    report.had_daemon = client::daemon_running(dir);
    if !report.had_daemon {
        if journal_pending(dir) == 0 {
            if let Err(e) = stop_ihkmond(dir) {
                fail(&mut report, "stopping ihkmond", e.detail);
            }
            if let Err(why) = remove_dead_daemon_files(dir) {
                fail(&mut report, "removing the files of a dead ihkd", why);
            }
            return report;
        }
        // A crashed ihkd left changes behind: a new one restores them,
        // once the old one is gone.
        if let Err(why) = wait_dead_ihkd(dir) {
            fail(&mut report, "waiting for the dead ihkd", why);
            return report;
        }
        report.replayed_crash_journal = true;
        if let Err(e) = start_ihkd(dir) {
            fail(&mut report, "starting ihkd to replay the journal", e.detail);
            return report;
        }
    }

    if let Err(e) = destroy_all_instances(dir) {
        fail(&mut report, "destroying OS instances", e.detail);
    }
    fault::point("mcstop+release:destroyed");

    match Client::device(dir, 0).and_then(|mut c| c.query_cpu()) {
        Ok(cpus) if !cpus.is_empty() => {
            if let Err(e) = Client::device(dir, 0).and_then(|mut c| c.release_cpu(&cpus)) {
                fail(&mut report, "releasing CPUs", e.detail);
            }
            fault::point("mcstop+release:cpus-released");
        }
        Ok(_) => {}
        Err(e) => fail(&mut report, "querying CPUs", e.detail),
    }

    match Client::device(dir, 0).and_then(|mut c| c.query_mem()) {
        Ok(mem) if !mem.is_empty() => {
            let all = MemList::parse("all").expect("static list");
            if let Err(e) = Client::device(dir, 0).and_then(|mut c| c.release_mem(&all)) {
                fail(&mut report, "releasing memory", e.detail);
            }
            fault::point("mcstop+release:mem-released");
        }
        Ok(_) => {}
        Err(e) => fail(&mut report, "querying memory", e.detail),
    }

    match Client::device(dir, 0).and_then(|mut c| Ok((c.daemon_info()?.pid, c.quit()))) {
        Ok((pid, quit)) => {
            // A refused quit (EPERM) leaves ihkd running: nothing to wait for.
            let refused = quit.as_ref().is_err_and(|e| e.errno == libc::EPERM);
            if let Err(e) = quit {
                fail(&mut report, "restoring the node", e.detail);
            }
            if !refused && !wait_exit(pid, Duration::from_secs(15)) {
                fail(
                    &mut report,
                    "stopping ihkd",
                    format!("ihkd (pid {pid}) is still running"),
                );
            }
        }
        Err(e) => fail(&mut report, "stopping ihkd", e.detail),
    }

    // As the script, ihkmond goes after the IHK modules.
    if let Err(e) = stop_ihkmond(dir) {
        fail(&mut report, "stopping ihkmond", e.detail);
    }

    let left = journal_pending(dir);
    if left > 0 {
        fail(
            &mut report,
            "checking the journal",
            format!(
                "{left} change(s) in {} could not be undone",
                dir.journal().display()
            ),
        );
    }
    if client::daemon_running(dir) {
        fail(
            &mut report,
            "checking ihkd",
            format!("an ihkd still serves {}", dir.device_socket(0).display()),
        );
    }
    report
}
