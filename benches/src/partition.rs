//! The harness's own partition: booted with `mcreboot` in `pin` isolation
//! and its own IHK_RUNTIME_DIR, watched with `ihkosctl 0 get status`, and
//! always shut down with `mcstop+release`, also on failure (the guard's
//! Drop) and at start when a crashed earlier run left one behind.

use crate::runner::{run_command, run_command_with, show, Mcexec};
use crate::tools::Tools;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BOOT_LIMIT: Duration = Duration::from_secs(180);
const RUNNING_LIMIT: Duration = Duration::from_secs(60);
const STOP_LIMIT: Duration = Duration::from_secs(120);

/// The tools plus the environment that names our partition.
#[derive(Debug, Clone)]
pub struct Node {
    pub tools: Tools,
    pub runtime_dir: PathBuf,
}

impl Node {
    pub fn new(tools: Tools, runtime_dir: &Path) -> Node {
        Node {
            tools,
            runtime_dir: runtime_dir.to_path_buf(),
        }
    }

    pub fn env(&self) -> Vec<(String, OsString)> {
        vec![
            (
                "IHK_RUNTIME_DIR".into(),
                self.runtime_dir.clone().into_os_string(),
            ),
            ("IHK_ISOLATION".into(), "pin".into()),
        ]
    }

    fn command(&self, tool: &Path) -> Command {
        let mut c = Command::new(tool);
        c.envs(self.env());
        c
    }

    /// How the LWK side runs programs on this node; Err says why it cannot.
    pub fn mcexec(&self, args: &[String]) -> std::result::Result<Mcexec, String> {
        let path = self.tools.mcexec.clone()?;
        Ok(Mcexec {
            path,
            args: args.to_vec(),
            env: self.env(),
        })
    }

    /// `ihkosctl 0 <args>`: its standard output.
    fn ihkosctl(&self, args: &[&str]) -> Result<String> {
        let mut c = self.command(&self.tools.ihkosctl);
        c.arg("0").args(args);
        let shown = show(&c);
        let f = run_command_with(c, Duration::from_secs(20), true, false).context(shown)?;
        Ok(f.stdout)
    }

    /// `ihkosctl 0 get status`, trimmed (RUNNING, BOOTING, ...).
    pub fn status(&self) -> Result<String> {
        Ok(self.ihkosctl(&["get", "status"])?.trim().to_string())
    }

    /// `ihkosctl 0 kmsg`: the LWK's kernel log.
    pub fn kmsg(&self) -> Result<String> {
        self.ihkosctl(&["kmsg"])
    }

    /// `ihkosctl 0 trace`: the LWK's noise trace and steal time.
    pub fn trace(&self) -> Result<String> {
        self.ihkosctl(&["trace"])
    }

    /// Whether an earlier run left state in our runtime directory.
    pub fn has_leftovers(&self) -> bool {
        ["ihkd.pid", "mcd0", "mcos0", "journal"]
            .iter()
            .any(|f| self.runtime_dir.join(f).exists())
    }

    /// `mcstop+release` for our runtime directory.
    pub fn stop_release(&self) -> Result<()> {
        let c = self.command(&self.tools.mcstop_release);
        let shown = show(&c);
        run_command_with(c, STOP_LIMIT, true, false).with_context(|| shown)?;
        Ok(())
    }

    /// Boots `mcreboot -c <cpus> -m <mem>` and waits for RUNNING; returns
    /// the guard and the time from starting mcreboot to RUNNING.
    pub fn boot(&self, cpus: &str, mem: &str) -> Result<(Partition<'_>, Duration)> {
        self.boot_with(cpus, mem, &[])
    }

    /// As [`Node::boot`], with more mcreboot options (`-O`).
    pub fn boot_with(
        &self,
        cpus: &str,
        mem: &str,
        extra: &[&str],
    ) -> Result<(Partition<'_>, Duration)> {
        std::fs::create_dir_all(&self.runtime_dir)
            .with_context(|| format!("creating {}", self.runtime_dir.display()))?;
        // The guard exists before mcreboot runs: a half-done boot is undone too.
        let guard = Partition {
            node: self,
            down: false,
        };
        let mut c = self.command(&self.tools.mcreboot);
        c.args(["-c", cpus, "-m", mem]).args(extra);
        let shown = show(&c);
        let start = Instant::now();
        run_command(c, BOOT_LIMIT, true).with_context(|| shown.clone())?;
        loop {
            let status = self.status()?;
            match status.as_str() {
                "RUNNING" => return Ok((guard, start.elapsed())),
                "PANIC" | "HUNGUP" | "SHUTDOWN" | "INACTIVE"
                    if start.elapsed() > Duration::from_secs(2) =>
                {
                    bail!("after `{shown}` the OS status is {status}, expected RUNNING")
                }
                _ if start.elapsed() > RUNNING_LIMIT => {
                    bail!("after `{shown}` the OS status is still {status} after {RUNNING_LIMIT:?}")
                }
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}

/// A booted partition; shut down and released when dropped.
pub struct Partition<'a> {
    node: &'a Node,
    down: bool,
}

impl Partition<'_> {
    /// Shuts down and releases, reporting failure.
    pub fn shutdown(mut self) -> Result<()> {
        self.down = true;
        self.node.stop_release()
    }
}

impl Drop for Partition<'_> {
    fn drop(&mut self) {
        if !self.down {
            self.down = true;
            if let Err(e) = self.node.stop_release() {
                eprintln!("mck-bench: WARNING: shutting down the partition failed: {e:#}");
            }
        }
    }
}
