//! Test harness for the quick-launch integration tests: one private work
//! directory and socket directory per test, real MPI compilers and mpiexec,
//! every command run with a deadline, and a guard that ends every process a
//! test's jobs started (by pid, from the job's pid file) even on failure.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long any one command may take.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// One MPI implementation as Debian installs it.
pub struct Mpi {
    pub name: &'static str,
    pub mpicc: &'static str,
    pub mpif90: &'static str,
    pub mpiexec: &'static str,
    /// Host file line for two slots on this host.
    pub hostline: &'static str,
    /// Option setting a rank environment variable (NAME=VALUE follows).
    pub env_opt: &'static str,
}

pub static OPENMPI: Mpi = Mpi {
    name: "Open MPI",
    mpicc: "mpicc.openmpi",
    mpif90: "mpif90.openmpi",
    // Two slots on two CPUs; several jobs at once need oversubscription.
    mpiexec: "mpiexec.openmpi --oversubscribe",
    hostline: "localhost slots=2",
    env_opt: "-x",
};

pub static MPICH: Mpi = Mpi {
    name: "MPICH",
    mpicc: "mpicc.mpich",
    mpif90: "mpif90.mpich",
    mpiexec: "mpiexec.mpich",
    hostline: "localhost:2",
    env_opt: "-genv",
};

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

impl Mpi {
    /// Whether compilers and mpiexec are installed.
    pub fn available(&self) -> bool {
        let exec = self.mpiexec.split_whitespace().next().unwrap();
        on_path(self.mpicc) && on_path(self.mpif90) && on_path(exec)
    }
}

/// MPI jobs run one test at a time: 2 CPUs, and Open MPI busy-polls.
static SERIAL: Mutex<()> = Mutex::new(());

/// Built binaries of this package.
pub fn bin(name: &str) -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_ql_server"));
    server.parent().unwrap().join(name)
}

/// Directory of the current libqlmpi.so: `deps/` of the profile directory,
/// which `cargo test` and `cargo bench` rebuild (only `cargo build` also
/// copies it up next to the binaries).
pub fn lib_dir() -> PathBuf {
    let d = bin("ql_server").parent().unwrap().join("deps");
    assert!(
        d.join("libqlmpi.so").is_file(),
        "libqlmpi.so not built in {}",
        d.display()
    );
    d
}

/// The crate's source directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's examples/ql.
pub fn examples_dir() -> PathBuf {
    crate_dir().parent().unwrap().join("examples/ql")
}

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Lines of stdout containing `pat`.
    pub fn count(&self, pat: &str) -> usize {
        self.stdout.lines().filter(|l| l.contains(pat)).count()
    }
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        self
    }
}

/// Runs `cmd` to completion within DEADLINE; on timeout kills it (it is our
/// child) and panics with what it printed.
pub fn run(mut cmd: Command) -> Out {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_spawned(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}")),
    )
}

/// Waits for a spawned command (stdout/stderr piped) within DEADLINE.
pub fn run_spawned(mut child: std::process::Child) -> Out {
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "command did not finish in {DEADLINE:?}: stdout {:?} stderr {:?}",
                t1.join(),
                t2.join()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Out {
        code: status.code(),
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    }
}

/// Whether `pid` is a live process (zombies count as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn exe(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn pgrp(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Waits until none of `pids` is alive; false on timeout.
pub fn wait_gone(pids: &[i32], within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pids.iter().all(|p| !alive(*p))
}

/// A job's processes as its server recorded them.
#[derive(Debug, Default, Clone)]
pub struct JobPids {
    pub server: Option<i32>,
    pub mpiexec: Option<i32>,
    pub ranks: Vec<i32>,
}

impl JobPids {
    pub fn all(&self) -> Vec<i32> {
        self.server
            .iter()
            .chain(self.mpiexec.iter())
            .chain(self.ranks.iter())
            .copied()
            .collect()
    }
}

/// One test's world: work directory (programs, host files), private socket
/// directory, the chosen MPI, and the lock that runs MPI tests one at a time.
pub struct Session {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub mpi: &'static Mpi,
    _serial: MutexGuard<'static, ()>,
}

impl Session {
    /// A session, or None (with a message) if this MPI is not installed.
    pub fn new(mpi: &'static Mpi) -> Option<Session> {
        if !mpi.available() {
            eprintln!(
                "SKIP: {} is not installed ({} / {} / {})",
                mpi.name, mpi.mpicc, mpi.mpif90, mpi.mpiexec
            );
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::Builder::new().prefix("qltest").tempdir().unwrap();
        let sock = dir.path().join("sock");
        for f in ["hosts", "hosts_a", "hosts_b"] {
            std::fs::write(dir.path().join(f), format!("{}\n", mpi.hostline)).unwrap();
        }
        Some(Session {
            dir,
            sock,
            mpi,
            _serial: serial,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn compile(&self, compiler: &str, src: &Path, out: &str) -> PathBuf {
        let exe = self.path().join(out);
        let lib = lib_dir();
        let mut cmd = Command::new(compiler);
        cmd.arg(src)
            .arg(format!("-I{}", crate_dir().join("include").display()))
            .arg(format!("-L{}", lib.display()))
            .arg("-lqlmpi")
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-o")
            .arg(&exe)
            .current_dir(self.path());
        run(cmd).assert_ok();
        exe
    }

    /// Compiles C `src` with this MPI, linked with libqlmpi.
    pub fn compile_c(&self, src: &Path, out: &str) -> PathBuf {
        self.compile(self.mpi.mpicc, src, out)
    }

    /// Compiles Fortran `src` with this MPI, linked with libqlmpi.
    pub fn compile_f90(&self, src: &Path, out: &str) -> PathBuf {
        self.compile(self.mpi.mpif90, src, out)
    }

    /// The test probe program (tests/programs/probe.c).
    pub fn probe(&self, out: &str) -> PathBuf {
        self.compile_c(&crate_dir().join("tests/programs/probe.c"), out)
    }

    /// A command with the session's environment, run in the work directory.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let path = format!(
            "{}:{}",
            bin("ql_server").parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.current_dir(self.path())
            .env("PATH", path)
            .env("QL_SOCKET_DIR", &self.sock)
            .env("QL_MPIEXEC", self.mpi.mpiexec)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            // Open MPI's shared-memory segments in the session's directory,
            // not /dev/shm: a rank killed on purpose cannot leave one behind.
            .env("OMPI_MCA_btl_vader_backing_directory", self.path())
            .env_remove("QL_MCEXEC")
            .env_remove("QL_SOCKET")
            .env_remove("QL_VERBOSE")
            // cargo's LD_LIBRARY_PATH would put its stale copy of
            // libqlmpi.so before the programs' run path.
            .env_remove("LD_LIBRARY_PATH");
        cmd
    }

    /// ql_mpiexec_start with `args`.
    pub fn start(&self, args: &[&str]) -> Out {
        let mut c = self.command(bin("ql_mpiexec_start"));
        c.args(args);
        run(c)
    }

    /// ql_mpiexec_finalize with `args`.
    pub fn finalize(&self, args: &[&str]) -> Out {
        let mut c = self.command(bin("ql_mpiexec_finalize"));
        c.args(args);
        run(c)
    }

    /// Names of the jobs with a socket in the socket directory.
    pub fn sockets(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.sock) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".sock")
                    .map(String::from)
            })
            .collect();
        v.sort();
        v
    }

    /// Processes of every job, from the pid files.
    pub fn jobs(&self) -> Vec<JobPids> {
        let Ok(rd) = std::fs::read_dir(&self.sock) else {
            return Vec::new();
        };
        let mut jobs = Vec::new();
        for e in rd.flatten() {
            if e.path().extension().and_then(|x| x.to_str()) != Some("pids") {
                continue;
            }
            let mut j = JobPids::default();
            for line in std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
            {
                let w: Vec<&str> = line.split_whitespace().collect();
                match w.as_slice() {
                    ["server", p] => j.server = p.parse().ok(),
                    ["mpiexec", p] => j.mpiexec = p.parse().ok(),
                    ["rank", _, p] => j.ranks.extend(p.parse::<i32>().ok()),
                    _ => {}
                }
            }
            jobs.push(j);
        }
        jobs
    }

    /// Ends every process of every job of this session: SIGTERM to the
    /// servers (which stop their mpiexec), then SIGKILL to what is left.
    /// Each pid is checked to still be the process we mean.
    pub fn cleanup(&self) {
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        let jobs = self.jobs();
        for j in &jobs {
            if let Some(s) = j
                .server
                .filter(|p| alive(*p) && cmdline(*p).contains("ql_server"))
            {
                let _ = kill(Pid::from_raw(s), Signal::SIGTERM);
            }
        }
        let all: Vec<i32> = jobs.iter().flat_map(JobPids::all).collect();
        if wait_gone(&all, Duration::from_secs(8)) {
            return;
        }
        let workdir = self.path().to_string_lossy().into_owned();
        for j in &jobs {
            if let Some(s) = j
                .server
                .filter(|p| alive(*p) && cmdline(*p).contains("ql_server"))
            {
                let _ = kill(Pid::from_raw(s), Signal::SIGKILL);
            }
            if let Some(m) = j.mpiexec {
                // mpiexec leads its own process group: end the whole group.
                let members: Vec<i32> = std::fs::read_dir("/proc")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|p| pgrp(*p) == Some(m) && alive(*p))
                    .collect();
                if members
                    .iter()
                    .any(|p| *p == m && cmdline(m).contains("mpiexec"))
                    || members.iter().any(|p| exe(*p).starts_with(&workdir))
                {
                    let _ = killpg(Pid::from_raw(m), Signal::SIGKILL);
                }
            }
            for r in &j.ranks {
                if alive(*r) && exe(*r).starts_with(&workdir) {
                    let _ = kill(Pid::from_raw(*r), Signal::SIGKILL);
                }
            }
        }
        wait_gone(&all, Duration::from_secs(5));
    }

    /// Writes an executable script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cleanup();
    }
}
