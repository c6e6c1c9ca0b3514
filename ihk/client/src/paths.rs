//! Where things live: the runtime directory and its files, and the `/proc`
//! and `/sys` roots (configurable so that `evict` can be tested on a fake
//! tree).
//!
//! Environment: `IHK_RUNTIME_DIR` (default `/run/ihk`), `IHK_PROC_ROOT` and
//! `IHK_SYS_ROOT` (default `/`: the directories that contain `proc` and
//! `sys`).

use std::path::{Path, PathBuf};

pub const DEFAULT_RUNTIME_DIR: &str = "/run/ihk";

/// A path made absolute against the current directory (ihkd changes to `/`
/// when it daemonizes).
pub fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        return p;
    }
    std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
}

/// The runtime directory of one ihkd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir(pub PathBuf);

impl RuntimeDir {
    /// `$IHK_RUNTIME_DIR`, else `/run/ihk`.
    pub fn from_env() -> Self {
        match std::env::var_os("IHK_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => RuntimeDir(absolute(PathBuf::from(d))),
            _ => RuntimeDir(PathBuf::from(DEFAULT_RUNTIME_DIR)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
    /// Control socket of IHK device `dev` (stands in for `/dev/mcd<dev>`).
    pub fn device_socket(&self, dev: u32) -> PathBuf {
        self.0.join(format!("mcd{dev}"))
    }
    /// Socket of OS instance `os` (stands in for `/dev/mcos<os>`).
    pub fn os_socket(&self, os: u32) -> PathBuf {
        self.0.join(format!("mcos{os}"))
    }
    pub fn pid_file(&self) -> PathBuf {
        self.0.join("ihkd.pid")
    }
    pub fn journal(&self) -> PathBuf {
        self.0.join("journal")
    }
    pub fn log_file(&self) -> PathBuf {
        self.0.join("ihkd.log")
    }
}

/// The `/proc` and `/sys` roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc_root: PathBuf::from("/"),
            sys_root: PathBuf::from("/"),
        }
    }
}

impl Roots {
    pub fn from_env() -> Self {
        let get = |k: &str| match std::env::var_os(k) {
            Some(v) if !v.is_empty() => absolute(PathBuf::from(v)),
            _ => PathBuf::from("/"),
        };
        Roots {
            proc_root: get("IHK_PROC_ROOT"),
            sys_root: get("IHK_SYS_ROOT"),
        }
    }

    /// `<proc root>/proc/<rel>`.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.proc_root.join("proc").join(rel)
    }
    /// `<sys root>/sys/<rel>`.
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sys_root.join("sys").join(rel)
    }
    /// True when both roots are the real ones.
    pub fn is_real(&self) -> bool {
        self.proc_root == Path::new("/") && self.sys_root == Path::new("/")
    }
}
