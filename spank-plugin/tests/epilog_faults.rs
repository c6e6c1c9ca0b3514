//! Fault injection in the job epilogue (issue 20, item 1): `mckernel-epilog`
//! killed (SIGKILL, `IHK_FAULT_STOP=mckernel-epilog:<point>`) right after
//! it took the node lock, after it ended the job's leftover mcexec, and
//! after mcstop+release gave the partition back (before its checks and
//! before it forgets the job's record); then the epilogue runs again, as
//! slurmd's retry or an administrator would, and must leave the node as
//! before the job: no partition record, no ihkd, no socket, no journal
//! record, hugepage pools as before, no process of the job or of the
//! node's runtime directory (none holding guest memory or `/dev/kvm`).
//!
//! No Slurm daemons: the job's partition is booted as the plugin boots it
//! (`lifecycle::acquire`, with the real tools of this build), a leftover
//! proxy of the job is an `mcexec` with the job's `SLURM_JOB_ID`, and the
//! epilogue is the installed program run by hand (`--job`, `--config`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ihk_client::fault::{ENV, LOG_ENV, POINTS};
use mckernel_slurm::config::SiteConfig;
use mckernel_slurm::lifecycle::{self, Acquired};
use mckernel_slurm::lists::{CpuSet, MemList};
use mckernel_slurm::plan::{PartitionSpec, StepInfo};

const JOB: u32 = 4242;

/// target/<profile>, where cargo put the tools of this build.
fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mckernel-epilog")).parent().unwrap().to_path_buf()
}

fn hugepages() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for n in std::fs::read_dir("/sys/devices/system/node").into_iter().flatten().flatten() {
        for s in std::fs::read_dir(n.path().join("hugepages")).into_iter().flatten().flatten() {
            let f = s.path().join("nr_hugepages");
            out.push((f.clone(), std::fs::read_to_string(&f).unwrap_or_default().trim().to_string()));
        }
    }
    out.sort();
    out
}

/// Whether any thread of `pid` runs (a zombie with none left does not).
fn alive(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let field = |n: &str| status.lines().find_map(|l| l.strip_prefix(n)).map(str::trim).unwrap_or("").to_string();
    !(field("State:").starts_with('Z') && field("Threads:") == "1")
}

/// Live processes whose environment names `needle` (`K=V`).
fn processes_with_env(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || !alive(pid) {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else { continue };
        if env.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// One job's node: a site file, the runtime and state directories, and a
/// guard that gives everything back whatever happens.
struct JobNode {
    _lock: mck_tests::PartitionLock,
    dir: tempfile::TempDir,
    site: PathBuf,
    config: SiteConfig,
    proxy: Option<Child>,
}

impl JobNode {
    fn new() -> JobNode {
        let lock = mck_tests::partition_lock();
        let dir = tempfile::Builder::new().prefix("epilog-faults-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = tools_dir();
        let site = dir.path().join("mckernel.toml");
        std::fs::write(
            &site,
            format!(
                "mcreboot = \"{t}/mcreboot\"\nmcstop_release = \"{t}/mcstop-release\"\n\
                 ihkconfig = \"{t}/ihkconfig\"\nihkosctl = \"{t}/ihkosctl\"\nmcexec = \"{t}/mcexec\"\n\
                 runtime_dir = \"{d}/ihk\"\nstate_dir = \"{d}/state\"\nisolation = \"pin\"\n\
                 linux_cpus = \"0\"\nmax_memory_fraction = 0.5\nrelease = \"job\"\n\
                 kill_grace_secs = 3\nboot_timeout_secs = 120\n",
                t = t.display(),
                d = dir.path().display()
            ),
        )
        .unwrap();
        let config = SiteConfig::load(&site).unwrap().for_node(None).unwrap();
        JobNode { _lock: lock, dir, site, config, proxy: None }
    }

    fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("ihk")
    }

    /// The job's partition, booted as the plugin's first step boots it,
    /// and one of its programs left running (`busybox sleep`).
    fn start_job(&mut self) {
        let step = StepInfo { job_id: JOB, step_id: 0, uid: 0, gid: 0, alloc_cores: "0-1".into(), local_tasks: 1 };
        let spec = PartitionSpec {
            cpus: CpuSet::parse("1").unwrap(),
            mem: MemList::parse("256M@0").unwrap(),
            ikc_map: None,
            kargs: String::new(),
            uid: 0,
            gid: 0,
        };
        let r = lifecycle::acquire(&self.config, &step, &spec, std::process::id() as i32);
        assert_eq!(r, Ok(Acquired::Booted));
        let proxy = Command::new(tools_dir().join("mcexec"))
            .args(["/bin/busybox", "sleep", "300"])
            .env("IHK_RUNTIME_DIR", self.runtime_dir())
            .env("SLURM_JOB_ID", JOB.to_string())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.proxy = Some(proxy);
        let deadline = Instant::now() + Duration::from_secs(30);
        while lifecycle::os_status(&self.config).ok().as_deref() != Some("RUNNING")
            || std::fs::read_to_string(self.runtime_dir().join("ihkd.log")).map_or(true, |l| !l.contains("attached"))
        {
            assert!(Instant::now() < deadline, "the job's program did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `mckernel-epilog --job JOB --config site` with `env`.
    fn epilog(&self, env: &[(&str, &str)]) -> std::process::Output {
        eprintln!(
            "before the epilogue: record {}, ihkd {}",
            if self.dir.path().join("state/partition.json").exists() { "present" } else { "absent" },
            if lifecycle::ihkd_answers(&self.config) { "answers" } else { "does not answer" }
        );
        let out = Command::new(env!("CARGO_BIN_EXE_mckernel-epilog"))
            .args(["--job", &JOB.to_string(), "--config"])
            .arg(&self.site)
            .envs(env.iter().copied())
            .env_remove("SLURM_JOB_ID")
            .env_remove("SLURMD_NODENAME")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "$ mckernel-epilog {env:?}\n  -> {:?}\n  stdout: {}\n  stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
        out
    }

    /// Err: what is not as before the job.
    fn check_clean(&mut self, hugepages_before: &[(PathBuf, String)]) -> Result<(), String> {
        let rt = self.runtime_dir();
        if self.dir.path().join("state/partition.json").exists() {
            return Err("the job's partition record is left".into());
        }
        if lifecycle::ihkd_answers(&self.config) {
            return Err("ihkd still answers".into());
        }
        let left: Vec<String> = std::fs::read_dir(&rt)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "ihkd.log" && n != "ihkmond.log")
            .collect();
        if !left.is_empty() {
            return Err(format!("left in the runtime directory: {left:?}"));
        }
        if hugepages() != hugepages_before {
            return Err(format!("hugepage pools changed: {hugepages_before:?} -> {:?}", hugepages()));
        }
        if let Some(mut p) = self.proxy.take() {
            if !mck_tests::wait_or_kill(&mut p, Duration::from_secs(10)) {
                return Err("the job's mcexec survived the epilogue".into());
            }
        }
        let procs = processes_with_env(&format!("IHK_RUNTIME_DIR={}", rt.display()));
        if !procs.is_empty() {
            return Err(format!("processes of the runtime directory left: {procs:?}"));
        }
        let job = processes_with_env(&format!("SLURM_JOB_ID={JOB}"));
        if !job.is_empty() {
            return Err(format!("processes of job {JOB} left: {job:?}"));
        }
        Ok(())
    }
}

impl Drop for JobNode {
    fn drop(&mut self) {
        if let Some(mut p) = self.proxy.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = Command::new(tools_dir().join("mcstop-release"))
            .env("IHK_RUNTIME_DIR", self.runtime_dir())
            .stdin(Stdio::null())
            .output();
    }
}

/// Kill the epilogue at `point`, run it again, check the node.
fn inject(point: &str) -> Result<(), String> {
    let mut node = JobNode::new();
    let t0 = Instant::now();
    let before = hugepages();
    node.start_job();
    eprintln!("job started after {:?} (partition lock held)", t0.elapsed());
    let log = node.dir.path().join("fault.log");
    let log_s = log.display().to_string();
    let out = node.epilog(&[(ENV, point), (LOG_ENV, &log_s)]);
    if out.status.signal() != Some(libc::SIGKILL) {
        return Err(format!("the epilogue was not killed: {:?}", out.status));
    }
    if !std::fs::read_to_string(&log).unwrap_or_default().lines().any(|l| l.split(' ').next() == Some(point)) {
        return Err(format!("the epilogue did not reach {point}"));
    }
    let out = node.epilog(&[]);
    if !out.status.success() {
        return Err(format!("the second epilogue failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    eprintln!("second epilogue done after {:?}", t0.elapsed());
    node.check_clean(&before)?;
    // And a third finds nothing to do.
    let out = node.epilog(&[]);
    if !out.status.success() || !out.stdout.is_empty() {
        return Err(format!("a third epilogue did something: {:?} {}", out.status, String::from_utf8_lossy(&out.stdout)));
    }
    eprintln!("{point}: {:?} with the partition lock", t0.elapsed());
    Ok(())
}

#[test]
fn an_epilogue_killed_at_every_step_then_run_again_leaves_the_node_as_before() {
    let test = "an_epilogue_killed_at_every_step_then_run_again_leaves_the_node_as_before";
    if !mck_tests::can_boot_partitions(test) {
        return;
    }
    let points: Vec<&str> = POINTS.iter().copied().filter(|p| p.starts_with("mckernel-epilog:")).collect();
    assert_eq!(points.len(), 3);
    let mut failures = Vec::new();
    for p in &points {
        match inject(p) {
            Ok(()) => eprintln!("fault {p}: node restored"),
            Err(e) => {
                eprintln!("fault {p}: FAILED: {e}");
                failures.push(format!("{p}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} points failed:\n{}", failures.len(), points.len(), failures.join("\n"));
}
