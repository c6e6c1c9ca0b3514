//! The per-user directory holding quick-launch sockets, lock, pid and log
//! files: `$QL_SOCKET_DIR`, else `$XDG_RUNTIME_DIR/ql`, else `/tmp/ql-<uid>`.
//! It must be a real directory (not a symlink) owned by the user with mode
//! 0700, so that no other user can reach or replace a server's socket.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable overriding the directory.
pub const ENV_DIR: &str = "QL_SOCKET_DIR";

/// Why the directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("socket directory {0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("socket directory {path} is not a directory (a symlink or file is in the way); remove it or set {ENV_DIR}")]
    NotDir { path: PathBuf },
    #[error("socket directory {path} is owned by uid {owner}, expected {uid} (the current user); set {ENV_DIR} to a directory of your own")]
    Owner { path: PathBuf, owner: u32, uid: u32 },
    #[error("socket directory {path} has mode {mode:04o}, expected 0700 (owner only); run 'chmod 700 {}'", path.display())]
    Mode { path: PathBuf, mode: u32 },
}

/// A validated per-user socket directory.
#[derive(Clone, Debug)]
pub struct SocketDir {
    path: PathBuf,
}

/// The directory quick launch uses for the current user, from the
/// environment (not created).
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV_DIR).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let uid = nix::unistd::getuid().as_raw();
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        let run = PathBuf::from(run);
        // Only a runtime directory that really is the user's.
        if fs::symlink_metadata(&run)
            .map(|m| m.is_dir() && m.uid() == uid)
            .unwrap_or(false)
        {
            return run.join("ql");
        }
    }
    PathBuf::from(format!("/tmp/ql-{uid}"))
}

impl SocketDir {
    /// Opens the directory, creating it with mode 0700 if `create` and it
    /// does not exist. `Ok(None)` if it does not exist and `create` is false.
    pub fn open(path: &Path, create: bool) -> Result<Option<Self>, DirError> {
        let err = |e| DirError::Io(path.to_owned(), e);
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(err)?;
                }
                match fs::DirBuilder::new().mode(0o700).create(path) {
                    Ok(()) => {}
                    // Someone (a concurrent start of ours) created it first.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(err(e)),
                }
                // The umask may have narrowed it further; make it exactly 0700.
                fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(err)?;
            }
            Err(e) => return Err(err(e)),
            Ok(_) => {}
        }
        let meta = fs::symlink_metadata(path).map_err(err)?;
        let uid = nix::unistd::getuid().as_raw();
        if !meta.is_dir() {
            return Err(DirError::NotDir {
                path: path.to_owned(),
            });
        }
        if meta.uid() != uid {
            return Err(DirError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
                uid,
            });
        }
        if meta.mode() & 0o777 != 0o700 {
            return Err(DirError::Mode {
                path: path.to_owned(),
                mode: meta.mode() & 0o7777,
            });
        }
        Ok(Some(SocketDir {
            path: path.to_owned(),
        }))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The server socket of job `name`.
    pub fn socket(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.sock"))
    }

    /// The lock serialising the start of job `name`'s server.
    pub fn lock(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.lock"))
    }

    /// The server's log (its stderr, and mpiexec's output between rounds).
    pub fn log(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.log"))
    }

    /// The processes of job `name` (server, mpiexec, ranks), one per line.
    pub fn pids(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.pids"))
    }

    /// Names of jobs whose socket file exists and whose name starts with
    /// `prefix`.
    pub fn jobs_with_prefix(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.path)? {
            let file = entry?.file_name();
            let Some(file) = file.to_str() else { continue };
            if let Some(name) = file.strip_suffix(".sock") {
                if name.starts_with(prefix) {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_with_0700_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("ql");
        assert!(SocketDir::open(&p, false).unwrap().is_none());
        let d = SocketDir::open(&p, true).unwrap().unwrap();
        assert_eq!(fs::metadata(d.path()).unwrap().mode() & 0o777, 0o700);
        assert!(d.socket("j").ends_with("j.sock"));

        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        let e = SocketDir::open(&p, true).unwrap_err();
        assert!(matches!(e, DirError::Mode { mode: 0o755, .. }), "{e}");
        assert!(e.to_string().contains("expected 0700"));
    }

    #[test]
    fn symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::DirBuilder::new().mode(0o700).create(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            SocketDir::open(&link, true),
            Err(DirError::NotDir { .. })
        ));
    }

    #[test]
    fn lists_jobs_by_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let d = SocketDir::open(&tmp.path().join("q"), true)
            .unwrap()
            .unwrap();
        for f in ["a-1-2.sock", "a-1-4.sock", "a-2-2.sock", "a-1-2.lock"] {
            fs::write(d.path().join(f), b"").unwrap();
        }
        assert_eq!(d.jobs_with_prefix("a-1-").unwrap(), vec!["a-1-2", "a-1-4"]);
    }
}
