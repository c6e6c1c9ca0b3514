//! ql_mpiexec_start and ql_mpiexec_finalize.
//!
//! Start: form the job key, connect to the job's server (or, under the
//! job's lock, replace a stale socket, bind a new one and start ql_server
//! with it), send the round (argv, environment, directory, and our stdin,
//! stdout, stderr) and exit with the round's status.
//!
//! Finalize: find the resident job(s) of the program (all process counts if
//! `-n` is not given, as in the guide's job script), tell them to end, exit
//! with mpiexec's status; nothing resident is an error.

use crate::key::{self, JobKey};
use crate::options::{EnvEdit, Invocation, OptionError};
use crate::proto::{self, Bytes, RoundSpec, Start, Status, ToClient, ToServer};
use crate::sockdir::{self, SocketDir};
use crate::{ENV_NAME, ENV_SOCKET};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// mpiexec to run (words: command and default options); `mpiexec` if unset.
pub const ENV_MPIEXEC: &str = "QL_MPIEXEC";
/// mcexec to insert before the program when the command line has none.
pub const ENV_MCEXEC: &str = "QL_MCEXEC";
/// ql_server binary (default: next to this command, then PATH).
pub const ENV_SERVER: &str = "QL_SERVER";
/// Seconds a job may stay idle before it finalizes itself (default: never).
pub const ENV_IDLE_TIMEOUT: &str = "QL_IDLE_TIMEOUT";
/// Print what quick launch does (stale sockets, new servers) on stderr.
pub const ENV_VERBOSE: &str = "QL_VERBOSE";

/// Longest path a Unix socket address holds.
const SUN_PATH_MAX: usize = 107;
/// How often a round is retried when its job ended before its turn.
const MAX_ATTEMPTS: usize = 3;

/// A failure of a command, with the message to print.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Options(#[from] OptionError),
    #[error(transparent)]
    Key(#[from] key::KeyError),
    #[error(transparent)]
    Dir(#[from] sockdir::DirError),
    #[error("{0}")]
    Other(String),
}

fn other(msg: String) -> ClientError {
    ClientError::Other(msg)
}

fn verbose() -> bool {
    std::env::var_os(ENV_VERBOSE).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Usage of both commands.
pub fn usage(cmd: &str) -> String {
    format!(
        "usage: {cmd} [mpiexec options] [mcexec [mcexec options]] <program> [args...]\n\
         \n\
         Quick launch keeps an MPI program resident between the runs of a job script.\n\
         ql_mpiexec_start runs a round (the first one launches mpiexec); the program\n\
         calls ql_client() at the end of each round. ql_mpiexec_finalize ends the job\n\
         (all process counts of the program if -n is not given).\n\
         \n\
         mpiexec options of Open MPI and MPICH are accepted (-n/-np, -machinefile/\n\
         -hostfile/-f, -host/-hosts, -env/-genv/-x, -envlist, -envnone, -envall,\n\
         -wdir, and the placement, output and launcher options); a job is one user,\n\
         program, process count and host file/list.\n\
         \n\
         Environment: {ENV_MPIEXEC} (mpiexec command, default 'mpiexec'),\n\
         {ENV_MCEXEC} (insert this mcexec before the program), {} (socket\n\
         directory, default $XDG_RUNTIME_DIR/ql or /tmp/ql-<uid>), {ENV_IDLE_TIMEOUT}\n\
         (seconds before an idle job finalizes itself), {ENV_VERBOSE}=1.",
        sockdir::ENV_DIR
    )
}

fn env_pairs() -> Vec<(OsString, OsString)> {
    std::env::vars_os().collect()
}

fn join_pair(k: &OsStr, v: &OsStr) -> Bytes {
    let mut e = k.as_bytes().to_vec();
    e.push(b'=');
    e.extend_from_slice(v.as_bytes());
    e
}

/// The environment a round's ranks see: ours, changed by the command line's
/// `-env`/`-genv`/`-x`/`-envlist`/`-envnone`/`-envall`, without quick
/// launch's own variables.
pub fn round_env(base: &[(OsString, OsString)], edits: &[EnvEdit]) -> Vec<Bytes> {
    let all: BTreeMap<OsString, OsString> = base.iter().cloned().collect();
    let mut env = all.clone();
    for edit in edits {
        match edit {
            EnvEdit::Set(k, v) => {
                env.insert(k.clone(), v.clone());
            }
            EnvEdit::Only(names) => {
                env.retain(|k, _| names.contains(k));
                for n in names {
                    if let Some(v) = all.get(n) {
                        env.insert(n.clone(), v.clone());
                    }
                }
            }
            EnvEdit::None => env.clear(),
            EnvEdit::All => env = all.clone(),
        }
    }
    env.iter()
        .filter(|(k, _)| k.as_os_str() != ENV_SOCKET && k.as_os_str() != ENV_NAME)
        .map(|(k, v)| join_pair(k, v))
        .collect()
}

fn launcher() -> Result<Vec<OsString>, ClientError> {
    match std::env::var_os(ENV_MPIEXEC) {
        None => Ok(vec!["mpiexec".into()]),
        Some(v) => {
            let words = key::split_words(&v);
            if words.is_empty() {
                return Err(other(format!("{ENV_MPIEXEC} is set but empty; expected an mpiexec command such as 'mpiexec.openmpi'")));
            }
            Ok(words)
        }
    }
}

fn idle_timeout() -> Result<Option<u64>, ClientError> {
    match std::env::var(ENV_IDLE_TIMEOUT) {
        Err(_) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Some)
            .ok_or_else(|| {
                other(format!(
                    "{ENV_IDLE_TIMEOUT}='{v}' is not a positive number of seconds"
                ))
            }),
    }
}

/// Our stdin, stdout and stderr; any that is closed is replaced by
/// /dev/null so the ranks always get three descriptors.
fn own_stdio() -> io::Result<(Vec<RawFd>, Vec<File>)> {
    let mut fds = Vec::new();
    let mut keep = Vec::new();
    for fd in 0..3 {
        // SAFETY: F_GETFD only asks about the descriptor (EBADF if closed).
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            fds.push(fd);
        } else {
            let f = File::options()
                .read(fd == 0)
                .write(fd != 0)
                .open("/dev/null")?;
            fds.push(f.as_raw_fd());
            keep.push(f);
        }
    }
    Ok((fds, keep))
}

fn check_socket_path(sock: &Path) -> Result<(), ClientError> {
    let len = sock.as_os_str().len();
    if len > SUN_PATH_MAX {
        return Err(other(format!(
            "socket path {} is {len} bytes, longer than the {SUN_PATH_MAX} a Unix socket allows; set {} to a shorter directory",
            sock.display(),
            sockdir::ENV_DIR
        )));
    }
    Ok(())
}

/// The job's lock: serialises finding, replacing and starting its server.
struct JobLock {
    _lock: nix::fcntl::Flock<File>,
}

impl JobLock {
    fn take(dir: &SocketDir, name: &str) -> Result<Self, ClientError> {
        let path = dir.lock(name);
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| other(format!("{}: {e}", path.display())))?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| other(format!("locking {}: {e}", path.display())))?;
        Ok(JobLock { _lock: lock })
    }
}

/// Connects to the job's server. `Ok(None)` if there is none; a socket whose
/// server is gone is removed (the caller holds the job's lock).
fn connect_existing(sock: &Path) -> Result<Option<UnixStream>, ClientError> {
    match UnixStream::connect(sock) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            if verbose() {
                eprintln!(
                    "ql: {} is stale (its server is gone); removing it",
                    sock.display()
                );
            }
            std::fs::remove_file(sock)
                .map_err(|e| other(format!("removing stale socket {}: {e}", sock.display())))?;
            Ok(None)
        }
        Err(e) => Err(other(format!("connecting to {}: {e}", sock.display()))),
    }
}

fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV_SERVER).filter(|p| !p.is_empty()) {
        return p.into();
    }
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("ql_server")))
    {
        if sibling.is_file() {
            return sibling;
        }
    }
    PathBuf::from("ql_server")
}

/// Starts ql_server for job `name` with `listener` as its fd 3, in its own
/// session, logging to the job's log file.
fn spawn_server(
    listener: &UnixListener,
    dir: &SocketDir,
    name: &str,
    sock: &Path,
    idle: Option<u64>,
) -> Result<Child, ClientError> {
    let log_path = dir.log(name);
    let log = File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| other(format!("{}: {e}", log_path.display())))?;
    let log2 = log
        .try_clone()
        .map_err(|e| other(format!("{}: {e}", log_path.display())))?;
    let exe = server_binary();
    let mut cmd = Command::new(&exe);
    cmd.arg("--listen-fd")
        .arg("3")
        .arg("--socket")
        .arg(sock)
        .arg("--name")
        .arg(name)
        .arg("--dir")
        .arg(dir.path());
    if let Some(t) = idle {
        cmd.arg("--idle-timeout").arg(t.to_string());
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    let fd = listener.as_raw_fd();
    // SAFETY: runs in the forked child before exec; dup2, fcntl and setsid
    // are async-signal-safe and only change this child's descriptor table
    // and session. The listener (close-on-exec in the parent) becomes fd 3
    // without close-on-exec; stdio is already set up at this point.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) == -1 {
                return Err(io::Error::last_os_error());
            }
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        other(format!(
            "cannot start {}: {e} (set {ENV_SERVER} to its path)",
            exe.display()
        ))
    })?;
    if verbose() {
        eprintln!("ql: started ql_server (pid {}) for job {name}", child.id());
    }
    Ok(child)
}

/// Connects to the job's server, starting one if needed. Returns the
/// connection and, if we started it, the server process.
fn connect_or_launch(
    dir: &SocketDir,
    name: &str,
    idle: Option<u64>,
) -> Result<(UnixStream, Option<Child>), ClientError> {
    let sock = dir.socket(name);
    check_socket_path(&sock)?;
    let _lock = JobLock::take(dir, name)?;
    if let Some(s) = connect_existing(&sock)? {
        return Ok((s, None));
    }
    let listener =
        UnixListener::bind(&sock).map_err(|e| other(format!("binding {}: {e}", sock.display())))?;
    let child = match spawn_server(&listener, dir, name, &sock, idle) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&sock);
            return Err(e);
        }
    };
    drop(listener);
    // The socket is listening already (the server inherited it): this
    // connection waits in its backlog until the server accepts it.
    let s = UnixStream::connect(&sock)
        .map_err(|e| other(format!("connecting to {}: {e}", sock.display())))?;
    Ok((s, Some(child)))
}

/// Waits for the server's answer; if we started the server, notices it
/// dying before it answers.
fn await_reply(
    conn: &UnixStream,
    server: Option<&mut Child>,
    log: &Path,
) -> Result<Option<ToClient>, ClientError> {
    if let Some(child) = server {
        loop {
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(conn),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)) {
                Ok(n) if n > 0 => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(other(format!("waiting for ql_server: {e}"))),
            }
            if let Ok(Some(st)) = child.try_wait() {
                // It may have answered just before exiting.
                let mut fds = [nix::poll::PollFd::new(
                    std::os::fd::AsFd::as_fd(conn),
                    nix::poll::PollFlags::POLLIN,
                )];
                if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap_or(0) > 0 {
                    break;
                }
                return Err(other(format!(
                    "ql_server exited ({st}) before answering; see {}",
                    log.display()
                )));
            }
        }
    }
    match proto::recv::<ToClient>(conn) {
        Ok(Some((msg, _))) => Ok(Some(msg)),
        Ok(None) => Ok(None),
        Err(e) => Err(other(format!("reading ql_server's answer: {e}"))),
    }
}

/// Exit code for `status`, as the shell reports a command's status.
fn exit_code(status: Status) -> i32 {
    status.shell_code()
}

/// ql_mpiexec_start: runs one round; returns the exit code.
pub fn start(args: Vec<OsString>) -> Result<i32, ClientError> {
    let mut inv = Invocation::parse(args)?;
    let cwd = key::current_dir()?;
    let mcexec = std::env::var_os(ENV_MCEXEC).filter(|m| !m.is_empty());
    let key = JobKey::new(&inv, &cwd, mcexec.is_some() || !inv.mcexec.is_empty())?;
    let name = key.name();
    let dir = SocketDir::open(&sockdir::default_path(), true)?.expect("created");
    let wdir = inv
        .wdir
        .as_ref()
        .map(|w| cwd.join(w))
        .unwrap_or_else(|| cwd.clone());
    inv.program = key::launch_word(&inv.program, &wdir);
    let sock = dir.socket(&name);

    let mut launch_env: Vec<Bytes> = env_pairs()
        .iter()
        .filter(|(k, _)| k.as_os_str() != ENV_SOCKET && k.as_os_str() != ENV_NAME)
        .map(|(k, v)| join_pair(k, v))
        .collect();
    launch_env.push(join_pair(OsStr::new(ENV_SOCKET), sock.as_os_str()));
    launch_env.push(join_pair(OsStr::new(ENV_NAME), OsStr::new(&name)));
    let launch: Vec<Bytes> = inv
        .launch_command(&launcher()?, mcexec.as_deref())
        .into_iter()
        .map(OsString::into_vec)
        .collect();
    let round = RoundSpec {
        argv: inv
            .round_argv()
            .into_iter()
            .map(OsString::into_vec)
            .collect(),
        env: round_env(&env_pairs(), &inv.env_edits),
        cwd: wdir.into_os_string().into_vec(),
    };
    let request = ToServer::Start(Start {
        launch,
        launch_env,
        round,
    });
    let (stdio, _keep) = own_stdio().map_err(|e| other(format!("/dev/null: {e}")))?;
    let log = dir.log(&name);
    let idle = idle_timeout()?;

    for _ in 0..MAX_ATTEMPTS {
        let (conn, mut server) = connect_or_launch(&dir, &name, idle)?;
        proto::send(&conn, &request, &stdio).map_err(|e| {
            other(format!(
                "sending the round to ql_server ({}): {e}",
                sock.display()
            ))
        })?;
        match await_reply(&conn, server.as_mut(), &log)? {
            Some(ToClient::Done { status, message }) => {
                if let Some(m) = message {
                    eprintln!("ql_mpiexec_start: {m}");
                }
                return Ok(exit_code(status));
            }
            Some(ToClient::Retry(why)) => {
                if verbose() {
                    eprintln!("ql: {why}; starting over");
                }
                // Let the ending server remove its socket, or remove it
                // ourselves once it is gone.
                std::thread::sleep(Duration::from_millis(20));
            }
            None => {
                return Err(other(format!(
                    "ql_server of job {name} closed the connection without an answer; see {}",
                    log.display()
                )))
            }
        }
    }
    Err(other(format!(
        "job {name} kept ending before its round could start; giving up"
    )))
}

/// ql_mpiexec_finalize: ends the resident job(s); returns the exit code.
pub fn finalize(args: Vec<OsString>) -> Result<i32, ClientError> {
    let inv = Invocation::parse(args)?;
    let cwd = key::current_dir()?;
    let mcexec = std::env::var_os(ENV_MCEXEC).is_some_and(|m| !m.is_empty());
    let key = JobKey::new(&inv, &cwd, mcexec || !inv.mcexec.is_empty())?;
    let dir_path = sockdir::default_path();
    let nothing = || {
        other(format!(
            "no resident quick-launch job for {} ({}) in {}",
            key.program.display(),
            match &key.np {
                Some(n) => format!("-n {n}"),
                None => "any process count".into(),
            },
            dir_path.display()
        ))
    };
    let Some(dir) = SocketDir::open(&dir_path, false)? else {
        return Err(nothing());
    };
    let names = match &key.np {
        Some(_) => vec![key.name()],
        None => dir
            .jobs_with_prefix(&key.prefix)
            .map_err(|e| other(format!("reading {}: {e}", dir.path().display())))?,
    };
    let mut conns = Vec::new();
    for name in names {
        let _lock = JobLock::take(&dir, &name)?;
        if let Some(c) = connect_existing(&dir.socket(&name))? {
            conns.push((name, c));
        }
    }
    if conns.is_empty() {
        return Err(nothing());
    }
    let (stdio, _keep) = own_stdio().map_err(|e| other(format!("/dev/null: {e}")))?;
    for (name, c) in &conns {
        proto::send(c, &ToServer::Finalize, &stdio)
            .map_err(|e| other(format!("finalizing job {name}: {e}")))?;
    }
    let mut code = 0;
    for (name, c) in &conns {
        let this = match await_reply(c, None, &dir.log(name))? {
            Some(ToClient::Done { status, message }) => {
                if let Some(m) = message {
                    eprintln!("ql_mpiexec_finalize: job {name}: {m}");
                }
                exit_code(status)
            }
            Some(ToClient::Retry(why)) => {
                eprintln!(
                    "ql_mpiexec_finalize: job {name} ended before it could be finalized: {why}"
                );
                1
            }
            None => {
                eprintln!(
                    "ql_mpiexec_finalize: ql_server of job {name} closed the connection without an answer; see {}",
                    dir.log(name).display()
                );
                1
            }
        };
        if code == 0 {
            code = this;
        }
    }
    Ok(code)
}

/// Runs a command's logic and turns errors into a message and exit code 1.
pub fn main_with(cmd: &str, run: fn(Vec<OsString>) -> Result<i32, ClientError>) -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(args) {
        Ok(code) => code,
        Err(ClientError::Options(OptionError::Help)) => {
            println!("{}", usage(cmd));
            0
        }
        Err(e @ ClientError::Options(_)) => {
            eprintln!("{cmd}: {e}\n{}", usage(cmd));
            1
        }
        Err(e) => {
            eprintln!("{cmd}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        v.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn round_environment_follows_the_options() {
        let base = pairs(&[("A", "1"), ("B", "2"), ("QL_SOCKET", "/x"), ("C", "3")]);
        let s = |v: Vec<Bytes>| {
            v.into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(s(round_env(&base, &[])), ["A=1", "B=2", "C=3"]);
        assert_eq!(
            s(round_env(
                &base,
                &[
                    EnvEdit::Set("B".into(), "9".into()),
                    EnvEdit::Set("D".into(), "4".into())
                ]
            )),
            ["A=1", "B=9", "C=3", "D=4"]
        );
        assert_eq!(
            s(round_env(
                &base,
                &[EnvEdit::None, EnvEdit::Set("D".into(), "4".into())]
            )),
            ["D=4"]
        );
        assert_eq!(
            s(round_env(&base, &[EnvEdit::Only(vec!["C".into()])])),
            ["C=3"]
        );
        assert_eq!(
            s(round_env(&base, &[EnvEdit::None, EnvEdit::All])),
            ["A=1", "B=2", "C=3"]
        );
    }
}
