//! A real one-node Slurm cluster on loopback for the tests: munged with its
//! own key, slurmctld and slurmd in the foreground with a generated
//! slurm.conf, all in a temporary directory, on free 127.0.0.1 ports, with
//! the plugin in plugstack.conf and the epilogue as `Epilog=`. Nothing of a
//! system Slurm or munge is read or touched. The daemons are this process's
//! children; Drop cancels every job, waits for the node to drain its jobs,
//! and ends the daemons by pid.

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Serializes the tests of this binary: one node, one partition at a time.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Why a test cannot run here (printed, and the test returns).
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (slurmd, munged and the LWK run as root)".into());
    }
    for bin in [
        "/usr/sbin/munged",
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/bin/srun",
    ] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install munge, slurmctld, slurmd and slurm-client (scripts/setup-deps.sh)"
        );
    }
    None
}

/// Whether a test that boots partitions through Slurm can run here (root,
/// Slurm's daemons, /dev/kvm); if not it skips, or fails under CI=true
/// (mck_tests::cannot_run).
pub fn can_boot_partitions(test: &str) -> bool {
    if let Some(why) = skip_reason() {
        return mck_tests::cannot_run(test, &why);
    }
    mck_tests::can_boot_partitions(test)
}

/// The cargo profile directory holding this test's build (target/debug).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// The plugin as cargo built it for these tests: `deps/` holds the copy
/// built with this test binary (the one in the profile directory is only
/// refreshed by `cargo build`).
pub fn plugin_so() -> PathBuf {
    let so = profile_dir().join("deps/libspank_mckernel.so");
    assert!(so.exists(), "{} was not built", so.display());
    so
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn mem_total_mb() -> u64 {
    let text = fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("MemTotal")
        / 1024
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    client: Client,
    pub site: PathBuf,
    pub node: String,
    daemons: Vec<(&'static str, Child)>,
    /// mcstop+release, for a partition the epilogue could not remove.
    mcstop: Option<PathBuf>,
}

/// Temporary directories of this suite are named `<tmp>/spank-mckernel-*`.
const DIR_PREFIX: &str = "spank-mckernel-";


/// Slurm's client commands for one cluster (its slurm.conf), run in its
/// directory.
pub struct Client {
    pub conf: PathBuf,
    pub cwd: PathBuf,
}

impl Client {
    /// A Slurm client command with this cluster's configuration.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        // Jobs work (and sbatch writes slurm-<id>.out) in the cluster's directory.
        c.env("SLURM_CONF", &self.conf)
            .env_remove("SLURM_JOB_ID")
            .current_dir(&self.cwd)
            .stdin(Stdio::null());
        c
    }

    /// `srun <args>` with a time limit; returns its output.
    pub fn srun(&self, args: &[&str]) -> Output {
        let mut c = self.cmd("/usr/bin/timeout");
        c.args(["120", "/usr/bin/srun"]).args(args);
        c.output().expect("srun")
    }

    /// Ids of jobs slurmctld still knows as not finished.
    pub fn jobs(&self) -> Vec<String> {
        let o = self
            .cmd("/usr/bin/squeue")
            .args(["-h", "-o", "%i"])
            .output()
            .expect("squeue");
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// `sbatch --parsable <args>`: the job id.
    pub fn sbatch(&self, args: &[&str]) -> String {
        let o = self
            .cmd("/usr/bin/sbatch")
            .arg("--parsable")
            .args(args)
            .output()
            .expect("sbatch");
        assert!(
            o.status.success(),
            "sbatch failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// Job state from scontrol (PENDING, RUNNING, COMPLETED, FAILED, ...).
    pub fn job_state(&self, id: &str) -> String {
        let o = self
            .cmd("/usr/bin/scontrol")
            .args(["show", "job", id])
            .output()
            .expect("scontrol");
        let text = String::from_utf8_lossy(&o.stdout);
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
            .unwrap_or("GONE")
            .to_string()
    }

    pub fn scontrol_job(&self, id: &str) -> String {
        let o = self
            .cmd("/usr/bin/scontrol")
            .args(["show", "job", id])
            .output()
            .expect("scontrol");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }


    /// The id of the last job slurmctld accepted (for srun, which prints none).
    pub fn last_job(&self) -> String {
        let o = self
            .cmd("/usr/bin/scontrol")
            .args(["show", "jobs", "-o"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("JobId="))
                    .map(String::from)
            })
            .filter_map(|id| id.parse::<u32>().ok())
            .max()
            .map(|n| n.to_string())
            .unwrap_or_default()
    }
}

impl std::ops::Deref for Cluster {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Cluster {
    /// Starts munged, slurmctld and slurmd with `site_toml` as the plugin's
    /// site configuration; returns when the node is idle.
    /// `site_toml` gets the cluster directory (for state and runtime paths).
    pub fn start(site_toml: impl FnOnce(&Path) -> String) -> Cluster {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_crashed_runs);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("tempdir");
        let d = dir.path().to_path_buf();
        fs::write(d.join("owner.pid"), std::process::id().to_string()).unwrap();
        // Jobs of other users must reach munge's socket and slurm.conf.
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["munge", "spool", "state", "log", "run"] {
            fs::create_dir_all(d.join(sub)).unwrap();
            fs::set_permissions(d.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let key = d.join("munge/munge.key");
        let bytes: Vec<u8> = (0..1024)
            .map(|i| {
                (i as u8)
                    .wrapping_mul(31)
                    .wrapping_add(std::process::id() as u8)
            })
            .collect();
        fs::write(&key, bytes).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();

        let site = d.join("mckernel.toml");
        fs::write(&site, site_toml(&d)).unwrap();
        let epilog = d.join("epilog.sh");
        fs::write(
            &epilog,
            format!(
                "#!/bin/sh\nexec {} --config {}\n",
                env!("CARGO_BIN_EXE_mckernel-epilog"),
                site.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&epilog, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            d.join("plugstack.conf"),
            format!(
                "required {} config={}\n",
                plugin_so().display(),
                site.display()
            ),
        )
        .unwrap();

        let node = nix::unistd::gethostname()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let conf = d.join("slurm.conf");
        let p = |s: &str| d.join(s).display().to_string();
        fs::write(
            &conf,
            format!(
                "ClusterName=spanktest\n\
                 SlurmctldHost={node}(127.0.0.1)\n\
                 SlurmctldPort={ctld}\n\
                 SlurmdPort={slurmd}\n\
                 AuthType=auth/munge\n\
                 CredType=cred/munge\n\
                 AuthInfo=socket={munge}\n\
                 SlurmUser=root\n\
                 SlurmdUser=root\n\
                 StateSaveLocation={state}\n\
                 SlurmdSpoolDir={spool}\n\
                 SlurmctldPidFile={ctldpid}\n\
                 SlurmdPidFile={slurmdpid}\n\
                 SlurmctldLogFile={ctldlog}\n\
                 SlurmdLogFile={slurmdlog}\n\
                 SlurmdDebug=debug\n\
                 ProctrackType=proctrack/linuxproc\n\
                 TaskPlugin=task/none\n\
                 SelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_CPU\n\
                 MpiDefault=none\n\
                 SwitchType=switch/none\n\
                 JobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\n\
                 JobCompType=jobcomp/none\n\
                 MailProg=/bin/true\n\
                 ReturnToService=2\n\
                 KillWait=5\n\
                 MessageTimeout=30\n\
                 PlugStackConfig={plugstack}\n\
                 Epilog={epilog}\n\
                 NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN\n\
                 PartitionName=lwk Nodes={node} Default=YES MaxTime=INFINITE OverSubscribe=EXCLUSIVE State=UP\n",
                ctld = free_port(),
                slurmd = free_port(),
                munge = p("munge/munge.socket"),
                state = p("state"),
                spool = p("spool"),
                ctldpid = p("run/slurmctld.pid"),
                slurmdpid = p("run/slurmd.pid"),
                ctldlog = p("log/slurmctld.log"),
                slurmdlog = p("log/slurmd.log"),
                plugstack = p("plugstack.conf"),
                epilog = epilog.display(),
                mem = mem_total_mb() / 2,
            ),
        )
        .unwrap();

        let mut cluster = Cluster {
            client: Client {
                conf,
                cwd: d.clone(),
            },
            dir,
            site,
            node: node.clone(),
            daemons: Vec::new(),
            mcstop: None,
        };
        let log = |name: &str| Stdio::from(fs::File::create(d.join("log").join(name)).unwrap());
        cluster.spawn(
            "munged",
            Command::new("/usr/sbin/munged")
                .args(["--foreground", "--force", "--num-threads=2"])
                .arg(format!("--socket={}", p("munge/munge.socket")))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--pid-file={}", p("munge/munged.pid")))
                .arg(format!("--log-file={}", p("log/munged.log")))
                .arg(format!("--seed-file={}", p("munge/munged.seed")))
                .stdout(log("munged.out"))
                .stderr(log("munged.err")),
        );
        cluster.wait_for("munge socket", Duration::from_secs(10), |c| {
            c.dir.path().join("munge/munge.socket").exists()
        });
        cluster.spawn(
            "slurmctld",
            Command::new("/usr/sbin/slurmctld")
                .args(["-D", "-i", "-f"])
                .arg(&cluster.conf)
                .stdout(log("slurmctld.out"))
                .stderr(log("slurmctld.err")),
        );
        cluster.spawn(
            "slurmd",
            Command::new("/usr/sbin/slurmd")
                .args(["-D", "-N", &node, "-f"])
                .arg(&cluster.conf)
                .stdout(log("slurmd.out"))
                .stderr(log("slurmd.err")),
        );
        cluster.wait_idle(Duration::from_secs(60));
        cluster
    }

    /// Drop runs this `mcstop+release` (with the site's runtime directory
    /// `<dir>/ihk`) if a partition is still there after the jobs ended.
    pub fn release_with(&mut self, mcstop: &Path) {
        self.mcstop = Some(mcstop.to_path_buf());
        let _ = fs::write(
            self.dir.path().join("mcstop.path"),
            mcstop.as_os_str().as_encoded_bytes(),
        );
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push((name, child));
    }

    fn wait_for(&mut self, what: &str, limit: Duration, mut ok: impl FnMut(&mut Cluster) -> bool) {
        let deadline = Instant::now() + limit;
        while !ok(self) {
            for (name, child) in &mut self.daemons {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{name} exited ({status}) while waiting for {what}\n{}",
                        self_logs(self.dir.path())
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n{}",
                    self_logs(self.dir.path())
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The node's state as sinfo prints it (idle, alloc, drain, ...).
    pub fn node_state(&self) -> String {
        let o = self
            .cmd("/usr/bin/sinfo")
            .args(["-h", "-N", "-o", "%T"])
            .output()
            .expect("sinfo");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn drain_reason(&self) -> String {
        let o = self
            .cmd("/usr/bin/sinfo")
            .args(["-h", "-R", "-o", "%E"])
            .output()
            .expect("sinfo");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn wait_idle(&mut self, limit: Duration) {
        self.wait_for("the node to be idle", limit, |c| c.node_state() == "idle");
    }

    /// Waits until the node is idle again after jobs, and fails with the
    /// reason if it was drained.
    pub fn wait_idle_after_jobs(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let state = self.node_state();
            if state == "idle" && self.jobs().is_empty() {
                return;
            }
            if state.contains("drain") {
                panic!(
                    "the node was drained: {}\n{}",
                    self.drain_reason(),
                    self.slurmd_log_errors()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "node state {state} after 120 s\n{}",
                    self.slurmd_log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn slurmd_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log/slurmd.log")).unwrap_or_default()
    }

    /// The plugin's lines and Slurm's errors from the slurmd log.
    pub fn slurmd_log_errors(&self) -> String {
        self.slurmd_log()
            .lines()
            .filter(|l| l.contains("mckernel") || l.contains("error"))
            .filter(|l| !l.contains("appending plugin option"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn slurmd_log_tail(&self, lines: usize) -> String {
        let log = self.slurmd_log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

fn self_logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in [
        "munged.err",
        "slurmctld.err",
        "slurmd.err",
        "slurmctld.log",
        "slurmd.log",
    ] {
        let text = fs::read_to_string(dir.join("log").join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!(
            "--- {name}\n{}\n",
            lines[lines.len().saturating_sub(15)..].join("\n")
        ));
    }
    out
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Cancel every job and let the epilogue run before the daemons go.
        let _ = self
            .cmd("/usr/bin/scancel")
            .args(["--user", "root"])
            .output();
        let _ = self.cmd("/usr/bin/scancel").arg("--state=RUNNING").output();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && (!self.jobs().is_empty() || self.node_state().contains("comp"))
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        // Whatever the jobs left (their environment names this cluster's
        // slurm.conf): tasks, mcexec proxies of a dead slurmstepd.
        for pid in processes_with_env(&format!("SLURM_CONF={}", self.conf.display())) {
            eprintln!("killing leftover job process {pid}");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for (_, child) in self.daemons.iter_mut().rev() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        for (name, child) in self.daemons.iter_mut().rev() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("{name} ignored SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        release_partition(self.dir.path(), self.mcstop.as_deref());
    }
}

/// A partition still served in `<dir>/ihk` is shut down and released.
fn release_partition(dir: &Path, mcstop: Option<&Path>) {
    let runtime = dir.join("ihk");
    if !runtime.join("mcd0").exists() && !runtime.join("journal").exists() {
        return;
    }
    let Some(mcstop) = mcstop else {
        eprintln!(
            "a partition is left in {} and no mcstop+release is known",
            runtime.display()
        );
        return;
    };
    eprintln!("releasing the partition left in {}", runtime.display());
    match Command::new(mcstop)
        .env("IHK_RUNTIME_DIR", &runtime)
        .status()
    {
        Ok(s) if s.success() => {}
        other => eprintln!("{} failed: {other:?}", mcstop.display()),
    }
}

/// Pids of processes whose environment holds `var` (e.g. `SLURM_CONF=...`).
fn processes_with_env(var: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == var.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// A run of this suite that was killed (its owner pid is gone) left its
/// directory, and maybe its daemons and a partition: end the daemons it
/// recorded (checking their command line names that directory), release the
/// partition with the tools it recorded, remove the directory.
fn sweep_crashed_runs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        if !e.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let owner = fs::read_to_string(dir.join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        match owner {
            Some(pid) if !Path::new(&format!("/proc/{pid}")).exists() => {}
            _ => continue,
        }
        eprintln!("cleaning up after a crashed test run in {}", dir.display());
        if dir.join("cluster.sh.dir").exists() {
            let tools = std::env::var_os("MCKERNEL_TEST_TOOLS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(profile_dir);
            let o = script_in(&dir, "down", &tools, "", 0);
            eprintln!("{}{}", stdout(&o), stderr(&o));
            let _ = fs::remove_dir_all(&dir);
            continue;
        }
        let conf = dir.join("slurm.conf");
        for pid in processes_with_env(&format!("SLURM_CONF={}", conf.display())) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for pidfile in ["run/slurmd.pid", "run/slurmctld.pid", "munge/munged.pid"] {
            let Some(pid) = fs::read_to_string(dir.join(pidfile))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            else {
                continue;
            };
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&*dir.to_string_lossy()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let mcstop = fs::read_to_string(dir.join("mcstop.path"))
            .ok()
            .map(PathBuf::from);
        release_partition(&dir, mcstop.as_deref());
        let _ = fs::remove_dir_all(&dir);
    }
}

// ---- Shared by the test binaries: tools, waiting, processes of a job.

/// The IHK tools as cargo built them (mcreboot finds ihkd and
/// mckernel.img next to itself).
pub struct Tools {
    pub dir: PathBuf,
}

impl Tools {
    /// `MCKERNEL_TEST_TOOLS_DIR` may name another directory with the same
    /// files (for example a release build).
    pub fn find() -> Tools {
        let dir = std::env::var_os("MCKERNEL_TEST_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(profile_dir);
        for name in [
            "mcreboot",
            "mcstop-release",
            "ihkconfig",
            "ihkosctl",
            "ihkd",
            "mcexec",
            "mckernel.img",
        ] {
            assert!(
                dir.join(name).exists(),
                "{} is missing: build the whole workspace first (cargo build --workspace, as scripts/test.sh does)",
                dir.join(name).display()
            );
        }
        Tools { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Pids of processes running `exe` with `SLURM_JOB_ID=<job>`.
pub fn job_processes(exe: &Path, job: &str) -> Vec<i32> {
    mckernel_slurm::procs::job_mcexecs(Path::new("/proc"), exe, job.parse().expect("a job id"))
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

pub fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn wait_job_end(c: &Client, job: &str, limit: Duration) {
    wait_for(&format!("job {job} to end"), limit, || {
        matches!(
            c.job_state(job).as_str(),
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "GONE"
        )
    });
}


// ---- A cluster of several nodes, started by scripts/cluster.sh.

/// The repository's scripts/cluster.sh.
fn cluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster.sh")
}

/// `scripts/cluster.sh up` in a temporary directory, with the tools of this
/// cargo profile and the plugin built with this test; `down` on drop. The
/// partition lock is held from before `up` until after `down`: the nodes'
/// partitions exist only in between.
pub struct Nodes {
    pub dir: tempfile::TempDir,
    client: Client,
    pub names: Vec<String>,
    pub tools: Tools,
    _partitions: mck_tests::PartitionLock,
}

impl std::ops::Deref for Nodes {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Nodes {
    /// `site_extra`: lines added to the site file (mckernel.toml).
    pub fn up(count: usize, site_extra: &str) -> Nodes {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_crashed_runs);
        let tools = Tools::find();
        let partitions = mck_tests::partition_lock();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("tempdir");
        fs::write(dir.path().join("owner.pid"), std::process::id().to_string()).unwrap();
        fs::write(dir.path().join("cluster.sh.dir"), "").unwrap();
        let nodes = Nodes {
            client: Client {
                conf: dir.path().join("slurm.conf"),
                cwd: dir.path().to_path_buf(),
            },
            names: (1..=count).map(|i| format!("n{i}")).collect(),
            tools,
            dir,
            _partitions: partitions,
        };
        let o = nodes.script("up", site_extra);
        assert!(
            o.status.success(),
            "cluster.sh up failed:\n{}\n{}",
            stdout(&o),
            stderr(&o)
        );
        nodes
    }

    fn script(&self, what: &str, site_extra: &str) -> Output {
        script_in(self.dir.path(), what, &self.tools.dir, site_extra, self.names.len())
    }

    /// A path under the node's directory: `nodes/<node>/<rel>`.
    pub fn node_path(&self, node: &str, rel: &str) -> PathBuf {
        self.dir.path().join("nodes").join(node).join(rel)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn slurmd_log(&self, node: &str) -> String {
        fs::read_to_string(self.node_path(node, "slurmd.log")).unwrap_or_default()
    }

    /// (node, state) as sinfo prints them: idle, alloc, drain, ...
    pub fn states(&self) -> Vec<(String, String)> {
        let o = self
            .cmd("/usr/bin/sinfo")
            .args(["-h", "-N", "-o", "%N %T"])
            .output()
            .expect("sinfo");
        let mut v: Vec<(String, String)> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, s)| (n.to_string(), s.trim().to_string()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The reason a node is down or drained for (sinfo -R), if it is.
    pub fn reason(&self, node: &str) -> Option<String> {
        let o = self
            .cmd("/usr/bin/sinfo")
            .args(["-h", "-R", "-N", "-o", "%N|%E"])
            .output()
            .expect("sinfo");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once('|'))
            .find(|(n, _)| *n == node)
            .map(|(_, r)| r.trim().to_string())
    }

    /// The plugin's lines and Slurm's errors from every node's log.
    pub fn logs(&self) -> String {
        self.names
            .iter()
            .map(|n| {
                let log = self.slurmd_log(n);
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("mckernel") || l.contains("error"))
                    .filter(|l| !l.contains("appending plugin option"))
                    .collect();
                format!("--- {n}\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every node is idle with no job left; fails with the
    /// reason if one was drained.
    pub fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let states = self.states();
            if states.len() == self.names.len()
                && states.iter().all(|(_, s)| s == "idle")
                && self.jobs().is_empty()
            {
                return;
            }
            if let Some((n, _)) = states.iter().find(|(_, s)| s.contains("drain")) {
                panic!(
                    "{n} was drained: {}\n{}",
                    self.reason(n).unwrap_or_default(),
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nodes {states:?} after 120 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every node given back: idle, no partition record, no ihkd, nothing
    /// reserved, no mcexec of `job`.
    pub fn assert_clean(&self, job: Option<&str>) {
        self.wait_idle();
        for n in &self.names {
            let record = self.node_path(n, "state/partition.json");
            assert!(
                !record.exists(),
                "{n}: partition record left: {}",
                fs::read_to_string(&record).unwrap_or_default()
            );
            assert!(!self.node_path(n, "ihk/mcd0").exists(), "{n}: ihkd's socket is still there");
            assert!(!self.node_path(n, "ihk/ihkd.pid").exists(), "{n}: ihkd's pid file is still there");
            let q = Command::new(self.tools.path("ihkconfig"))
                .args(["0", "query", "cpu"])
                .env("IHK_RUNTIME_DIR", self.node_path(n, "ihk"))
                .output()
                .unwrap();
            assert!(stdout(&q).is_empty(), "{n}: ihkconfig 0 query cpu: {}", stdout(&q));
        }
        if let Some(job) = job {
            let left = job_processes(&self.tools.path("mcexec"), job);
            assert!(left.is_empty(), "mcexec of job {job} left: {left:?}");
        }
    }

    /// Pids of processes of `exe` (full path) whose environment says they
    /// run for `job` on `node`.
    pub fn job_processes_on(&self, exe: &Path, job: &str, node: &str) -> Vec<i32> {
        let node_var = format!("SLURMD_NODENAME={node}");
        job_processes(exe, job)
            .into_iter()
            .filter(|pid| env_has(*pid, &node_var))
            .collect()
    }

    /// The slurmstepd of `job`'s step on `node`: the parent of its mcexec
    /// there (slurmstepd's own environment is overwritten by its process
    /// title, so it does not say which node it serves).
    pub fn slurmstepd_of(&self, job: &str, node: &str) -> Option<i32> {
        let mcexec = self.job_processes_on(&self.tools.path("mcexec"), job, node);
        let stat = fs::read_to_string(format!("/proc/{}/stat", mcexec.first()?)).ok()?;
        let ppid: i32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        let cmd = fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmd)
            .starts_with("slurmstepd")
            .then_some(ppid)
    }
}

fn env_has(pid: i32, var: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|v| v == var.as_bytes()))
        .unwrap_or(false)
}

fn script_in(dir: &Path, what: &str, tools: &Path, site_extra: &str, nodes: usize) -> Output {
    Command::new(cluster_script())
        .arg(what)
        .env("MCK_CLUSTER_DIR", dir)
        .env("MCK_CLUSTER_NODES", nodes.to_string())
        .env("MCK_TOOLS_DIR", tools)
        .env("MCK_SPANK_PLUGIN", plugin_so())
        .env("MCK_CLUSTER_SITE_EXTRA", site_extra)
        .env_remove("SLURM_CONF")
        .stdin(Stdio::null())
        .output()
        .expect("scripts/cluster.sh")
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let o = self.script("down", "");
        if !o.status.success() {
            eprintln!("cluster.sh down failed:\n{}\n{}", stdout(&o), stderr(&o));
        }
    }
}
