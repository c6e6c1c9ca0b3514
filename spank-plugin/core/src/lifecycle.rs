//! The life of a job's partition on one node, under the node lock:
//! [`acquire`] (first step boots, later and concurrent steps reuse),
//! [`step_end`] (forget the step; with `release = "step"`, the last one
//! shuts the partition down) and [`cleanup_job`] (the epilogue).
//!
//! Shutting down follows openmosix-shutdown.txt: an ordered sequence, every
//! guest process accounted for before the partition goes (the job's mcexec
//! proxies end first), every step checked, and a failure reported rather
//! than hidden: the record stays on disk marked dirty, so the next attempt
//! retries and no new job boots on a node that is not as before.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use ihk_client::paths::RuntimeDir;

use crate::baseline::Baseline;
use crate::command;
use crate::config::{Release, SiteConfig};
use crate::plan::{PartitionSpec, StepInfo};
use crate::procs;
use crate::state::{NodeLock, NodeRecord, Phase, StateDir, StepRef};

/// What [`acquire`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// This step booted the partition.
    Booted,
    /// The job's partition was already running.
    Reused,
}

/// What a cleanup did and what it could not do.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub actions: Vec<String>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn lock(config: &SiteConfig) -> Result<(StateDir, NodeLock), String> {
    let state = StateDir::new(&config.state_dir);
    let lock = state
        .lock(Duration::from_secs(config.lock_timeout_secs))
        .map_err(|e| e.to_string())?;
    Ok((state, lock))
}

/// Makes sure the job's partition runs on this node with `spec`, booting it
/// if this is the job's first step here. On a boot failure nothing stays
/// reserved (or the node is marked dirty and the error says what is left).
pub fn acquire(
    config: &SiteConfig,
    step: &StepInfo,
    spec: &PartitionSpec,
    stepd_pid: i32,
) -> Result<Acquired, String> {
    let (state, lock) = lock(config)?;
    let mut boots = 0;
    match state.load(&lock).map_err(|e| e.to_string())? {
        Some(mut rec) if rec.job_id == step.job_id => match rec.phase {
            Phase::Running => {
                if rec.spec != *spec {
                    return Err(format!(
                        "job {}'s partition on this node was booted with {}; this step asks for {}: \
                         every step of a job must ask for the same partition",
                        step.job_id,
                        rec.spec.describe(),
                        spec.describe()
                    ));
                }
                let status = os_status(config)?;
                if status != "RUNNING" {
                    return Err(format!(
                        "job {}'s LWK partition on this node is {status}, not RUNNING{}",
                        step.job_id,
                        kmsg_tail(config)
                    ));
                }
                rec.steps = rec.live_steps();
                rec.steps.push(StepRef { step_id: step.step_id, stepd_pid });
                state.store(&lock, &rec).map_err(|e| e.to_string())?;
                return Ok(Acquired::Reused);
            }
            Phase::Booting => {
                // We hold the lock, so the step that was booting is gone.
                let report = teardown(config, step.job_id, Some(&rec));
                if !report.clean() {
                    mark_dirty(&state, &lock, rec, &report);
                    return Err(format!(
                        "an earlier boot of job {}'s partition was interrupted and could not be undone: {}",
                        step.job_id,
                        report.problems.join("; ")
                    ));
                }
                boots = rec.boots;
                state.remove(&lock).map_err(|e| e.to_string())?;
            }
            Phase::Dirty => {
                return Err(format!(
                    "job {}'s earlier partition on this node was not cleaned up: {}",
                    step.job_id,
                    rec.problems.join("; ")
                ))
            }
        },
        Some(rec) => {
            return Err(format!(
                "the LWK partition of this node belongs to job {} ({}); a node hosts one McKernel job at a time",
                rec.job_id,
                match rec.phase {
                    Phase::Dirty => format!("not cleaned up: {}", rec.problems.join("; ")),
                    _ => "still running".to_string(),
                }
            ))
        }
        None => {}
    }
    check_no_foreign_partition(config)?;
    let baseline = Baseline::capture(config)?;
    let mut rec = NodeRecord {
        job_id: step.job_id,
        phase: Phase::Booting,
        spec: spec.clone(),
        baseline,
        steps: vec![StepRef {
            step_id: step.step_id,
            stepd_pid,
        }],
        boots: boots + 1,
        problems: vec![],
    };
    state.store(&lock, &rec).map_err(|e| e.to_string())?;
    let tools = config.tools();
    let failure = match command::run(
        config,
        &tools.mcreboot,
        &spec.mcreboot_args(),
        Duration::from_secs(config.boot_timeout_secs),
    ) {
        Ok(o) if o.success() => None,
        Ok(o) => Some(format!(
            "mcreboot {} failed ({})",
            spec.mcreboot_args().join(" "),
            o.describe()
        )),
        Err(e) => Some(e),
    };
    match failure {
        None => {
            rec.phase = Phase::Running;
            state.store(&lock, &rec).map_err(|e| e.to_string())?;
            Ok(Acquired::Booted)
        }
        Some(reason) => {
            let report = teardown(config, step.job_id, Some(&rec));
            if report.clean() {
                state.remove(&lock).map_err(|e| e.to_string())?;
                Err(format!(
                    "booting the LWK failed: {reason}; nothing is left reserved"
                ))
            } else {
                let problems = report.problems.join("; ");
                mark_dirty(&state, &lock, rec, &report);
                Err(format!(
                    "booting the LWK failed: {reason}; undoing it left: {problems}"
                ))
            }
        }
    }
}

/// The step ended: forget it, and with `release = "step"` shut the
/// partition down when no other step of the job uses it.
pub fn step_end(
    config: &SiteConfig,
    job_id: u32,
    step_id: u32,
    stepd_pid: i32,
) -> Result<Option<Report>, String> {
    let (state, lock) = lock(config)?;
    let Some(mut rec) = state.load(&lock).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if rec.job_id != job_id || rec.phase != Phase::Running {
        return Ok(None);
    }
    rec.steps
        .retain(|s| !(s.step_id == step_id && s.stepd_pid == stepd_pid));
    rec.steps = rec.live_steps();
    if config.release == Release::Step && rec.steps.is_empty() {
        let report = teardown(config, job_id, Some(&rec));
        if report.clean() {
            state.remove(&lock).map_err(|e| e.to_string())?;
        } else {
            mark_dirty(&state, &lock, rec, &report);
        }
        return Ok(Some(report));
    }
    state.store(&lock, &rec).map_err(|e| e.to_string())?;
    Ok(None)
}

/// The epilogue: ends the job's leftover mcexec processes and, if the job
/// owns the node's partition, shuts it down and checks the node. Idempotent:
/// a second run finds nothing to do; a run after a failed one retries.
pub fn cleanup_job(config: &SiteConfig, job_id: u32) -> Report {
    let (state, lock) = match lock(config) {
        Ok(l) => l,
        Err(e) => {
            return Report {
                actions: vec![],
                problems: vec![e],
            }
        }
    };
    ihk_client::fault::point("mckernel-epilog:locked");
    let rec = match state.load(&lock) {
        Ok(r) => r,
        Err(e) => {
            return Report {
                actions: vec![],
                problems: vec![e.to_string()],
            }
        }
    };
    match rec {
        Some(rec) if rec.job_id == job_id => {
            let report = teardown(config, job_id, Some(&rec));
            if report.clean() {
                if let Err(e) = state.remove(&lock) {
                    return Report {
                        problems: vec![e.to_string()],
                        ..report
                    };
                }
            } else {
                mark_dirty(&state, &lock, rec, &report);
            }
            report
        }
        _ => teardown(config, job_id, None),
    }
}

fn mark_dirty(state: &StateDir, lock: &NodeLock, mut rec: NodeRecord, report: &Report) {
    rec.phase = Phase::Dirty;
    rec.problems = report.problems.clone();
    // If even this fails the caller's error still reports the problems.
    let _ = state.store(lock, &rec);
}

/// The ordered shutdown. `rec` is the job's record when it owns the
/// partition; without one only the job's leftover proxies are ended.
fn teardown(config: &SiteConfig, job_id: u32, rec: Option<&NodeRecord>) -> Report {
    let mut report = Report::default();
    let tools = config.tools();

    // 1. Every guest process accounted for: the job's proxies end first.
    let pids = procs::job_mcexecs(&config.sys_path("/proc"), &tools.mcexec, job_id);
    if !pids.is_empty() {
        let left = procs::terminate(&pids, Duration::from_secs(config.kill_grace_secs));
        report.actions.push(format!(
            "ended leftover mcexec processes {pids:?} of job {job_id}"
        ));
        if !left.is_empty() {
            report.problems.push(format!(
                "mcexec processes {left:?} of job {job_id} survived SIGKILL"
            ));
        }
    }
    ihk_client::fault::point("mckernel-epilog:proxies-ended");
    let Some(rec) = rec else { return report };

    // 2. Shut the partition down, release CPUs and memory, replay the
    //    journal, stop ihkd: mcstop+release does all of it, also after a
    //    crash of ihkd (it replays the journal the dead daemon left).
    match command::run(
        config,
        &tools.mcstop_release,
        &[],
        Duration::from_secs(config.shutdown_timeout_secs),
    ) {
        Ok(o) if o.success() => report
            .actions
            .push(format!("shut down job {job_id}'s LWK partition")),
        Ok(o) => report
            .problems
            .push(format!("mcstop+release failed ({})", o.describe())),
        Err(e) => report.problems.push(e),
    }
    ihk_client::fault::point("mckernel-epilog:released");

    // 3. Check the node is as before.
    if ihkd_answers(config) {
        report.problems.push(format!(
            "ihkd still runs (its control socket {} answers)",
            runtime_dir(config).device_socket(0).display()
        ));
    }
    let journal = runtime_dir(config).journal();
    if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
        report.problems.push(format!(
            "the reservation journal {} was not replayed",
            journal.display()
        ));
    }
    match Baseline::capture(config) {
        Ok(now) => report.problems.extend(rec.baseline.differences(&now)),
        Err(e) => report.problems.push(format!("cannot check the node: {e}")),
    }
    let left = procs::job_mcexecs(&config.sys_path("/proc"), &tools.mcexec, job_id);
    if !left.is_empty() && pids.is_empty() {
        report.problems.push(format!(
            "mcexec processes {left:?} of job {job_id} appeared during the cleanup"
        ));
    }
    report
}

/// Whether an ihkd serves this node's runtime directory.
pub fn ihkd_answers(config: &SiteConfig) -> bool {
    UnixStream::connect(runtime_dir(config).device_socket(0)).is_ok()
}

/// The node's ihkd runtime directory (its sockets and journal, as
/// `ihk-client` lays them out).
fn runtime_dir(config: &SiteConfig) -> RuntimeDir {
    RuntimeDir(config.runtime_dir.clone())
}

/// A node partition that Slurm did not start must not be taken over.
fn check_no_foreign_partition(config: &SiteConfig) -> Result<(), String> {
    if !ihkd_answers(config) {
        return Ok(());
    }
    let tools = config.tools();
    let o = command::run(
        config,
        &tools.ihkconfig,
        &["0".into(), "query".into(), "cpu".into()],
        Duration::from_secs(30),
    )?;
    if !o.success() {
        return Err(format!(
            "cannot ask the node's ihkd what it holds: ihkconfig 0 query cpu: {}",
            o.describe()
        ));
    }
    if !o.output.is_empty() {
        return Err(format!(
            "this node already has an IHK partition that Slurm did not start (reserved CPUs {}); \
             an administrator must release it (mcstop+release)",
            o.output
        ));
    }
    Ok(())
}

/// `ihkosctl 0 get status`: RUNNING, PANIC, ...
pub fn os_status(config: &SiteConfig) -> Result<String, String> {
    let tools = config.tools();
    let o = command::run(
        config,
        &tools.ihkosctl,
        &["0".into(), "get".into(), "status".into()],
        Duration::from_secs(30),
    )?;
    if !o.success() {
        return Err(format!(
            "cannot read the LWK status: ihkosctl 0 get status: {}",
            o.describe()
        ));
    }
    Ok(o.output.lines().last().unwrap_or("").trim().to_string())
}

/// The end of the LWK's kernel messages, for an error message.
fn kmsg_tail(config: &SiteConfig) -> String {
    let tools = config.tools();
    match command::run(
        config,
        &tools.ihkosctl,
        &["0".into(), "kmsg".into()],
        Duration::from_secs(30),
    ) {
        Ok(o) if o.success() && !o.output.is_empty() => {
            let lines: Vec<&str> = o.output.lines().collect();
            let tail = &lines[lines.len().saturating_sub(5)..];
            format!("; its last kernel messages: {}", tail.join(" | "))
        }
        _ => String::new(),
    }
}

/// The lifecycle's decisions (boot once, reuse, refuse, undo, retry) with
/// stand-in tools: shell scripts that keep their "partition" as a file in
/// the runtime directory and log every call. The real tools are exercised by
/// the plugin's Slurm tests (spank-plugin/tests/slurm.rs).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Isolation;
    use crate::lists::{CpuSet, MemList};
    use std::os::unix::fs::PermissionsExt;

    struct Node {
        _dir: tempfile::TempDir,
        config: SiteConfig,
    }

    impl Node {
        fn new() -> Node {
            let dir = tempfile::tempdir().unwrap();
            let sbin = dir.path().join("prefix/sbin");
            std::fs::create_dir_all(&sbin).unwrap();
            let script = |name: &str, body: &str| {
                let p = sbin.join(name);
                std::fs::write(
                    &p,
                    format!("#!/bin/sh\nR=\"$IHK_RUNTIME_DIR\"\nmkdir -p \"$R\"\n{body}\n"),
                )
                .unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            };
            script(
                "mcreboot",
                r#"echo "$IHK_ISOLATION $*" >> "$R/boots"
                   [ -e "$R/boot-delay" ] && sleep 1
                   if [ -e "$R/fail-boot" ]; then echo "error: booting" >&2; echo RUNNING > "$R/os0"; exit 1; fi
                   echo RUNNING > "$R/os0""#,
            );
            script(
                "mcstop+release",
                r#"echo stop >> "$R/stops"
                   if [ -e "$R/fail-stop" ]; then echo "error: releasing memory" >&2; exit 1; fi
                   rm -f "$R/os0""#,
            );
            script(
                "ihkosctl",
                r#"case "$*" in
                     "0 get status") [ -e "$R/os0" ] || { echo "Error: OS instance not found" >&2; exit 1; }; cat "$R/os0";;
                     "0 kmsg") echo "IHK/McKernel booted."; echo "panic: test";;
                     *) exit 2;;
                   esac"#,
            );
            script("ihkconfig", "exit 0");
            // A node of its own: the machine's hugepage pools may change
            // under a test when other programs use them.
            let sys = dir.path().join("root");
            let pool = sys.join("sys/kernel/mm/hugepages/hugepages-2048kB");
            std::fs::create_dir_all(&pool).unwrap();
            std::fs::write(pool.join("nr_hugepages"), "0\n").unwrap();
            std::fs::create_dir_all(sys.join("sys/devices/system/cpu")).unwrap();
            std::fs::write(sys.join("sys/devices/system/cpu/online"), "0-1\n").unwrap();
            let config = SiteConfig {
                prefix: dir.path().join("prefix"),
                runtime_dir: dir.path().join("rt"),
                state_dir: dir.path().join("state"),
                isolation: Isolation::Pin,
                kill_grace_secs: 1,
                lock_timeout_secs: 30,
                sys_root: sys,
                ..SiteConfig::default()
            };
            Node { _dir: dir, config }
        }

        fn rt(&self, name: &str) -> std::path::PathBuf {
            self.config.runtime_dir.join(name)
        }

        fn lines(&self, name: &str) -> usize {
            std::fs::read_to_string(self.rt(name))
                .map(|s| s.lines().count())
                .unwrap_or(0)
        }

        fn touch(&self, name: &str) {
            std::fs::create_dir_all(&self.config.runtime_dir).unwrap();
            std::fs::write(self.rt(name), "").unwrap();
        }

        fn record(&self) -> Option<NodeRecord> {
            let state = StateDir::new(&self.config.state_dir);
            let lock = state.lock(Duration::from_secs(5)).unwrap();
            state.load(&lock).unwrap()
        }
    }

    fn spec() -> PartitionSpec {
        PartitionSpec {
            cpus: CpuSet::parse("1").unwrap(),
            mem: MemList::parse("512M@0").unwrap(),
            ikc_map: None,
            kargs: String::new(),
            uid: 1000,
            gid: 1000,
        }
    }

    fn step(job_id: u32, step_id: u32) -> StepInfo {
        StepInfo {
            job_id,
            step_id,
            uid: 1000,
            gid: 1000,
            alloc_cores: "0-1".into(),
            local_tasks: 1,
        }
    }

    /// A live "slurmstepd" pid: the test process.
    fn me() -> i32 {
        std::process::id() as i32
    }

    #[test]
    fn first_step_boots_later_steps_reuse_epilogue_is_idempotent() {
        let n = Node::new();
        assert_eq!(
            acquire(&n.config, &step(5, 0), &spec(), me()).unwrap(),
            Acquired::Booted
        );
        assert_eq!(
            acquire(&n.config, &step(5, 1), &spec(), me()).unwrap(),
            Acquired::Reused
        );
        assert_eq!(
            acquire(&n.config, &step(5, 2), &spec(), me()).unwrap(),
            Acquired::Reused
        );
        assert_eq!(n.lines("boots"), 1);
        assert_eq!(
            std::fs::read_to_string(n.rt("boots")).unwrap().trim(),
            "pin -c 1 -m 512M@0 -o 1000:1000"
        );
        let rec = n.record().unwrap();
        assert_eq!(
            (rec.job_id, rec.phase, rec.boots, rec.steps.len()),
            (5, Phase::Running, 1, 3)
        );

        let report = cleanup_job(&n.config, 5);
        assert!(report.clean(), "{:?}", report.problems);
        assert!(!n.rt("os0").exists());
        assert_eq!(n.record(), None);
        let again = cleanup_job(&n.config, 5);
        assert!(again.clean() && again.actions.is_empty(), "{again:?}");
        assert_eq!(
            n.lines("stops"),
            1,
            "a second epilogue must not touch the node"
        );
    }

    #[test]
    fn concurrent_steps_boot_once() {
        let n = Node::new();
        n.touch("boot-delay");
        let results: Vec<Acquired> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    let c = n.config.clone();
                    s.spawn(move || acquire(&c, &step(9, i), &spec(), me()).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| **r == Acquired::Booted).count(),
            1,
            "{results:?}"
        );
        assert_eq!(n.lines("boots"), 1);
        let report = cleanup_job(&n.config, 9);
        assert!(report.clean(), "{report:?}");
    }

    #[test]
    fn a_failed_boot_leaves_nothing_reserved() {
        let n = Node::new();
        n.touch("fail-boot");
        let e = acquire(&n.config, &step(5, 0), &spec(), me()).unwrap_err();
        assert!(
            e.contains("booting the LWK failed: mcreboot -c 1 -m 512M@0 -o 1000:1000 failed"),
            "{e}"
        );
        assert!(
            e.contains("error: booting") && e.contains("nothing is left reserved"),
            "{e}"
        );
        assert!(
            !n.rt("os0").exists(),
            "the half-booted partition was not undone"
        );
        assert_eq!(n.record(), None);
    }

    #[test]
    fn one_job_per_node_and_one_partition_per_job() {
        let n = Node::new();
        acquire(&n.config, &step(5, 0), &spec(), me()).unwrap();
        let e = acquire(&n.config, &step(6, 0), &spec(), me()).unwrap_err();
        assert!(e.contains("belongs to job 5 (still running)"), "{e}");
        let mut other = spec();
        other.mem = MemList::parse("1G@0").unwrap();
        let e = acquire(&n.config, &step(5, 1), &other, me()).unwrap_err();
        assert!(
            e.contains("every step of a job must ask for the same partition"),
            "{e}"
        );
        // The other job's epilogue leaves job 5's partition alone.
        assert!(cleanup_job(&n.config, 6).clean());
        assert!(n.rt("os0").exists());
        assert!(cleanup_job(&n.config, 5).clean());
    }

    #[test]
    fn a_failed_cleanup_marks_the_node_dirty_and_is_retried() {
        let n = Node::new();
        acquire(&n.config, &step(5, 0), &spec(), me()).unwrap();
        n.touch("fail-stop");
        let report = cleanup_job(&n.config, 5);
        assert!(!report.clean());
        assert!(
            report.problems[0]
                .contains("mcstop+release failed (exit status 1: error: releasing memory)"),
            "{report:?}"
        );
        assert_eq!(n.record().unwrap().phase, Phase::Dirty);
        let e = acquire(&n.config, &step(6, 0), &spec(), me()).unwrap_err();
        assert!(e.contains("not cleaned up: mcstop+release failed"), "{e}");
        std::fs::remove_file(n.rt("fail-stop")).unwrap();
        assert!(cleanup_job(&n.config, 5).clean());
        assert_eq!(n.record(), None);
        assert_eq!(n.lines("stops"), 2);
    }

    #[test]
    fn a_node_not_as_before_is_reported() {
        let n = Node::new();
        acquire(&n.config, &step(5, 0), &spec(), me()).unwrap();
        let pool = n
            .config
            .sys_path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
        std::fs::write(&pool, "256\n").unwrap();
        let report = cleanup_job(&n.config, 5);
        assert_eq!(
            report.problems,
            ["/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages is 256, was 0 before the job"]
        );
        assert_eq!(n.record().unwrap().phase, Phase::Dirty);
        std::fs::write(&pool, "0\n").unwrap();
        let report = cleanup_job(&n.config, 5);
        assert!(report.clean(), "{report:?}");
    }

    #[test]
    fn a_crashed_partition_is_not_reused() {
        let n = Node::new();
        acquire(&n.config, &step(5, 0), &spec(), me()).unwrap();
        std::fs::write(n.rt("os0"), "PANIC\n").unwrap();
        let e = acquire(&n.config, &step(5, 1), &spec(), me()).unwrap_err();
        assert!(e.contains("is PANIC, not RUNNING; its last kernel messages: IHK/McKernel booted. | panic: test"), "{e}");
        assert!(cleanup_job(&n.config, 5).clean());
    }

    #[test]
    fn an_interrupted_boot_is_undone_by_the_next_step() {
        let n = Node::new();
        acquire(&n.config, &step(5, 0), &spec(), me()).unwrap();
        let state = StateDir::new(&n.config.state_dir);
        {
            let lock = state.lock(Duration::from_secs(1)).unwrap();
            let mut rec = state.load(&lock).unwrap().unwrap();
            rec.phase = Phase::Booting;
            state.store(&lock, &rec).unwrap();
        }
        assert_eq!(
            acquire(&n.config, &step(5, 1), &spec(), me()).unwrap(),
            Acquired::Booted
        );
        assert_eq!((n.lines("stops"), n.lines("boots")), (1, 2));
        assert_eq!(n.record().unwrap().boots, 2);
        assert!(cleanup_job(&n.config, 5).clean());
    }

    #[test]
    fn release_at_the_end_of_the_last_step() {
        let mut n = Node::new();
        n.config.release = Release::Step;
        acquire(&n.config, &step(5, 0), &spec(), me()).unwrap();
        acquire(&n.config, &step(5, 1), &spec(), me()).unwrap();
        assert!(
            step_end(&n.config, 5, 0, me()).unwrap().is_none(),
            "step 1 still uses it"
        );
        assert!(n.rt("os0").exists());
        let report = step_end(&n.config, 5, 1, me())
            .unwrap()
            .expect("last step shuts down");
        assert!(report.clean(), "{report:?}");
        assert!(!n.rt("os0").exists());
        assert_eq!(n.record(), None);
        // The next step boots again; the epilogue finds it.
        assert_eq!(
            acquire(&n.config, &step(5, 2), &spec(), me()).unwrap(),
            Acquired::Booted
        );
        assert!(cleanup_job(&n.config, 5).clean());
        assert_eq!(n.lines("stops"), 2);
    }

    #[test]
    fn steps_of_dead_slurmstepds_are_forgotten() {
        let mut n = Node::new();
        n.config.release = Release::Step;
        acquire(&n.config, &step(5, 0), &spec(), 0x7fff_fff0).unwrap();
        acquire(&n.config, &step(5, 1), &spec(), me()).unwrap();
        // Step 0's slurmstepd was killed; step 1's end is the last one.
        assert!(step_end(&n.config, 5, 1, me()).unwrap().is_some());
        assert!(!n.rt("os0").exists());
    }
}
