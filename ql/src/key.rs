//! The job key: which resident job a command line belongs to.
//!
//! A job is identified by (user, program, process count, hosts). The user is
//! the socket directory (one per uid, 0700); the rest is hashed into the job
//! name `<program base name>-<hash of program path, hosts, mcexec>-<count>`,
//! so `ql_mpiexec_finalize` without `-n` can find every count of one program
//! by prefix. The program is resolved the way mpiexec finds it (a path
//! relative to the working directory, else `PATH`, else the working
//! directory) and canonicalised, so `./a.out` and `/abs/a.out` are one job.
//! The host file counts by path and content: a changed host file is a new job.
//! Running through mcexec (on the LWK) or not makes two jobs; mpiexec's and
//! mcexec's other options do not count (they are the first round's launch
//! configuration, as the guide's finalize lines show by omitting them).

use crate::options::Invocation;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest program base name kept in the job name.
const BASE_MAX: usize = 24;

/// Why no key could be formed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("host file {0}: {1}")]
    HostFile(PathBuf, io::Error),
    #[error("working directory: {0}")]
    Cwd(io::Error),
}

/// The identity of a resident job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobKey {
    /// The program, resolved (absolute if found locally).
    pub program: PathBuf,
    /// Process count as given, if any.
    pub np: Option<String>,
    /// `<base>-<hash>-`: every process count of this program and host set.
    pub prefix: String,
}

/// 64-bit FNV-1a: small, stable across builds and Rust versions (the name
/// must be the same for every ql_mpiexec_start of a job script).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// Hashes a length-prefixed field, so field boundaries count.
    fn field(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }
}

/// Where mpiexec would find `program`: see the module comment.
pub fn resolve_program(program: &Path, cwd: &Path) -> PathBuf {
    let candidate = if program.as_os_str().as_bytes().contains(&b'/') {
        Some(cwd.join(program))
    } else {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| cwd.join(dir).join(program))
            .find(|p| p.is_file())
            .or_else(|| Some(cwd.join(program)))
    };
    candidate
        .and_then(|c| c.canonicalize().ok())
        .unwrap_or_else(|| program.to_owned())
}

/// The program word to give mpiexec: as given, except that a bare name found
/// only in the working directory becomes `./name` (Open MPI looks there,
/// MPICH does not), so the guide's `ql_mpiexec_start ... p1.out` works with
/// both.
pub fn launch_word(program: &std::ffi::OsStr, wdir: &Path) -> OsString {
    let bytes = program.as_bytes();
    if bytes.contains(&b'/') {
        return program.to_owned();
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| wdir.join(d).join(program).is_file()))
        .unwrap_or(false);
    if !on_path && wdir.join(program).is_file() {
        let mut w = OsString::from("./");
        w.push(program);
        return w;
    }
    program.to_owned()
}

fn sanitize_base(program: &Path) -> String {
    let base = program
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut s: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(BASE_MAX)
        .collect();
    if s.is_empty() {
        s.push_str("job");
    }
    s
}

impl JobKey {
    /// Forms the key of `inv`, run from `cwd`; `through_mcexec` if the
    /// program runs under mcexec (on the command line or QL_MCEXEC).
    pub fn new(inv: &Invocation, cwd: &Path, through_mcexec: bool) -> Result<Self, KeyError> {
        let wdir = inv
            .wdir
            .as_ref()
            .map(|w| cwd.join(w))
            .unwrap_or_else(|| cwd.to_owned());
        let program = resolve_program(Path::new(&inv.program), &wdir);
        let mut h = Fnv::new();
        h.field(program.as_os_str().as_bytes());
        match &inv.hostfile {
            Some(f) => {
                let path = cwd.join(f);
                let content = std::fs::read(&path).map_err(|e| KeyError::HostFile(f.clone(), e))?;
                let canon = path.canonicalize().unwrap_or(path);
                h.field(canon.as_os_str().as_bytes());
                h.field(&content);
            }
            None => h.field(b""),
        }
        h.field(inv.hosts.as_deref().unwrap_or("").as_bytes());
        h.field(if through_mcexec { b"mcexec" } else { b"" });
        let prefix = format!("{}-{:016x}-", sanitize_base(&program), h.0);
        Ok(JobKey {
            program,
            np: inv.np.clone(),
            prefix,
        })
    }

    /// The job name: the prefix and the process count (`d` when mpiexec's
    /// default count is used).
    pub fn name(&self) -> String {
        format!("{}{}", self.prefix, self.np.as_deref().unwrap_or("d"))
    }
}

/// The current directory, as the ranks of a round should see it.
pub fn current_dir() -> Result<PathBuf, KeyError> {
    std::env::current_dir().map_err(KeyError::Cwd)
}

/// Words of a whitespace-separated command (QL_MPIEXEC).
pub fn split_words(s: &std::ffi::OsStr) -> Vec<OsString> {
    s.as_bytes()
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| std::ffi::OsStr::from_bytes(w).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str, cwd: &Path) -> Result<JobKey, KeyError> {
        let i = inv(s);
        let m = !i.mcexec.is_empty();
        JobKey::new(&i, cwd, m)
    }

    fn inv(s: &str) -> Invocation {
        Invocation::parse(s.split_whitespace().map(OsString::from)).unwrap()
    }

    #[test]
    fn same_job_same_name_different_jobs_differ() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("p1.out"), b"").unwrap();
        std::fs::write(d.join("p2.out"), b"").unwrap();
        std::fs::write(d.join("list1"), b"localhost slots=2\n").unwrap();
        std::fs::write(d.join("list2"), b"localhost slots=2\n").unwrap();
        let k = |s: &str| key(s, d).unwrap();

        let a = k("-n 2 -machinefile ./list1 ./p1.out a1");
        // Other arguments, other spelling of the same program: same job.
        assert_eq!(a.name(), k("-np 2 -machinefile list1 p1.out other").name());
        assert_eq!(
            a.name(),
            k(&format!("-n 2 -machinefile ./list1 {}/p1.out", d.display())).name()
        );
        assert!(a.name().starts_with("p1.out-"), "{}", a.name());
        assert!(a.name().ends_with("-2"));
        // Another program, count, host file or mcexec: another job.
        assert_ne!(a.name(), k("-n 2 -machinefile ./list1 ./p2.out a1").name());
        assert_ne!(a.name(), k("-n 4 -machinefile ./list1 ./p1.out a1").name());
        assert_ne!(a.name(), k("-n 2 -machinefile ./list2 ./p1.out a1").name());
        assert_ne!(
            a.name(),
            k("-n 2 -machinefile ./list1 mcexec ./p1.out a1").name()
        );
        // mcexec's options, like mpiexec's, do not count.
        assert_eq!(
            k("-n 2 -machinefile ./list1 mcexec -n 2 ./p1.out").name(),
            k("-n 2 -machinefile ./list1 mcexec ./p1.out").name()
        );
        assert_eq!(
            a.name(),
            k("-n 2 -machinefile ./list1 --bind-to core ./p1.out a1").name()
        );
        // Finalize without -n finds it by prefix.
        let f = k("-machinefile ./list1 ./p1.out a1");
        assert!(a.name().starts_with(&f.prefix));
        assert_eq!(f.name(), format!("{}d", f.prefix));
    }

    #[test]
    fn missing_host_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let e = key("-machinefile ./nope ./a.out", tmp.path()).unwrap_err();
        assert!(e.to_string().starts_with("host file ./nope:"), "{e}");
    }

    #[test]
    fn fnv_is_stable() {
        // FNV-1a 64 test vectors: job names must not change between builds.
        let h = |b: &[u8]| {
            let mut f = Fnv::new();
            f.bytes(b);
            f.0
        };
        assert_eq!(h(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(h(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
