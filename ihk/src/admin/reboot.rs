//! mcreboot: boot an LWK partition in mckernel-operations.rst's step order,
//! undoing every completed step in reverse when a later one fails (the
//! script's `error_exit`), so that a failed boot leaves the node as it was.
//!
//! Steps: check the options (nothing changes before they are all valid) ->
//! stop a running ihkmond, start one when -k/-i ask for it -> start ihkd if it is not running
//! (the insmod of ihk.ko + ihk-smp-x86.ko) -> destroy existing OS instances
//! (their resources go back to the reserved pool) -> reserve memory ->
//! reserve CPUs (with a running ihkd, only what is not reserved yet) ->
//! create the OS instance -> assign CPUs -> set the IKC map -> assign memory
//! -> load the image -> kernel arguments "hidos [turbo] dump_level=N
//! [allow_oversubscribe]" -> boot (wait for RUNNING) -> chown the sockets
//! (a failure there is only a warning, as in the script).
//!
//! With a running ihkd the script destroys the instances after reserving;
//! here they are destroyed first, so that what they held counts as reserved
//! when deciding what is missing (with a fresh ihkd there is nothing to
//! destroy, so the order is the script's).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::daemon_proc::{start_ihkd, stop_ihkd};
use super::ihkmond_proc::{ihkmond_path, start_ihkmond, stop_ihkmond};
use super::destroy_all_instances;
use crate::client::{self, Client};
use crate::error::{IhkError, IhkResult};
use crate::fault;
use crate::host::topology;
use crate::list::{format_cpus, CpuList, IkcMap, MemChunk, MemList, MemSize};
use crate::paths::{Roots, RuntimeDir};

/// Syslog facilities ihkmond accepts (`-f`).
pub const FACILITIES: &[&str] = &[
    "LOG_KERN",
    "LOG_USER",
    "LOG_MAIL",
    "LOG_DAEMON",
    "LOG_AUTH",
    "LOG_SYSLOG",
    "LOG_LPR",
    "LOG_NEWS",
    "LOG_UUCP",
    "LOG_CRON",
    "LOG_AUTHPRIV",
    "LOG_FTP",
    "LOG_LOCAL0",
    "LOG_LOCAL1",
    "LOG_LOCAL2",
    "LOG_LOCAL3",
    "LOG_LOCAL4",
    "LOG_LOCAL5",
    "LOG_LOCAL6",
    "LOG_LOCAL7",
];

/// What to boot.
#[derive(Debug, Clone)]
pub struct RebootOptions {
    pub cpus: CpuList,
    pub mem: MemList,
    pub ikc_map: Option<IkcMap>,
    /// Socket owner (`-o`); `None` leaves them to root.
    pub owner: Option<(u32, u32)>,
    pub facility: String,
    /// `-k`: forward kmsg to syslog (non-zero) through ihkmond.
    pub redirect_kmsg: i64,
    /// `-i`: ihkmond's hang-detection interval in seconds, -1 for none.
    pub mon_interval: i64,
    /// `-q`: accepted for compatibility; partitions need no host IRQ.
    pub irq: Option<u32>,
    pub turbo: bool,
    pub dump_level: u32,
    pub allow_oversubscribe: bool,
    /// `-e`: further kernel arguments, appended as given (space separated).
    pub extra_kargs: Option<String>,
    pub image: PathBuf,
    pub boot_timeout: Duration,
}

impl RebootOptions {
    /// The kernel arguments mcreboot.sh passes.
    pub fn kargs(&self) -> String {
        let mut k = String::from("hidos");
        if self.turbo {
            k.push_str(" turbo");
        }
        k.push_str(&format!(" dump_level={}", self.dump_level));
        if self.allow_oversubscribe {
            k.push_str(" allow_oversubscribe");
        }
        if let Some(extra) = self.extra_kargs.as_deref().map(str::trim) {
            if !extra.is_empty() {
                k.push(' ');
                k.push_str(extra);
            }
        }
        k
    }

    /// Whether ihkmond is wanted (as in the script).
    pub fn wants_ihkmond(&self) -> bool {
        self.redirect_kmsg != 0 || self.mon_interval != -1
    }
}

/// A failed reboot: the step, its error, and undo steps that went wrong.
#[derive(Debug)]
pub struct RebootError {
    pub step: &'static str,
    pub error: IhkError,
    pub undo_failures: Vec<String>,
}

/// What a successful reboot did.
#[derive(Debug, Default)]
pub struct RebootReport {
    pub os: u32,
    pub started_ihkd: bool,
    pub warnings: Vec<String>,
}

/// Check what can be checked without changing anything: CPUs and NUMA
/// nodes exist, the values of -k/-i/-d/-f, the image is readable.
pub fn check_options(opts: &RebootOptions, roots: &Roots) -> IhkResult<()> {
    if opts.cpus.is_empty() {
        return Err(IhkError::inval("no CPUs given (-c)"));
    }
    let online = topology::online_cpus(roots)?;
    for &c in opts.cpus.ids() {
        if !online.contains(&c) {
            return Err(IhkError::inval(format!(
                "CPU {c} does not exist; this node's CPUs are {}",
                format_cpus(&online)
            )));
        }
    }
    let nodes = topology::numa_nodes(roots)?;
    for c in opts.mem.chunks() {
        if !nodes.contains(&c.node()) {
            return Err(IhkError::inval(format!(
                "NUMA node {} does not exist; this node's NUMA nodes are {}",
                c.node(),
                format_cpus(&nodes)
            )));
        }
    }
    if let Some(m) = &opts.ikc_map {
        for &(src, dst) in &m.0 {
            if !opts.cpus.contains(src) {
                return Err(IhkError::inval(format!(
                    "-r maps CPU {src}, which is not in -c {}",
                    opts.cpus
                )));
            }
            if !online.contains(&dst) || opts.cpus.contains(dst) {
                return Err(IhkError::inval(format!(
                    "-r sends IKC to CPU {dst}, which is not a Linux CPU"
                )));
            }
        }
    }
    if opts.dump_level != 0 && opts.dump_level != 24 {
        return Err(IhkError::inval(format!(
            "-d {}: dump level must be 0 or 24",
            opts.dump_level
        )));
    }
    if opts.mon_interval < -1 || opts.mon_interval == 0 {
        return Err(IhkError::inval(format!(
            "-i {}: expected -1 or a positive number of seconds",
            opts.mon_interval
        )));
    }
    if !FACILITIES.contains(&opts.facility.as_str()) {
        return Err(IhkError::inval(format!(
            "-f {}: unknown syslog facility (expected one of {})",
            opts.facility,
            FACILITIES.join(", ")
        )));
    }
    std::fs::File::open(&opts.image)
        .map_err(|e| IhkError::os(e, format!("kernel image {}", opts.image.display())))?;
    Ok(())
}

/// Completed steps, undone in reverse on failure.
enum Done {
    Ihkmond,
    Ihkd,
    MemReserved(BTreeMap<u32, u64>),
    CpusReserved(Vec<u32>),
    OsCreated,
}

/// Boot the partition. `dir` is the runtime directory of the ihkd to use.
pub fn reboot(
    dir: &RuntimeDir,
    roots: &Roots,
    opts: &RebootOptions,
) -> Result<RebootReport, RebootError> {
    let mut done: Vec<Done> = Vec::new();
    let mut report = RebootReport::default();
    match run_steps(dir, roots, opts, &mut done, &mut report) {
        Ok(()) => Ok(report),
        Err((step, error)) => {
            let undo_failures = undo(dir, done);
            Err(RebootError {
                step,
                error,
                undo_failures,
            })
        }
    }
}

type StepResult = Result<(), (&'static str, IhkError)>;

fn run_steps(
    dir: &RuntimeDir,
    roots: &Roots,
    opts: &RebootOptions,
    done: &mut Vec<Done>,
    report: &mut RebootReport,
) -> StepResult {
    let step = |name: &'static str| move |e: IhkError| (name, e);

    check_options(opts, roots).map_err(step("checking the options"))?;

    // As the script: an ihkmond already running goes, a new one starts
    // when -k/-i ask for it (admin/ihkmond_proc.rs).
    stop_ihkmond(dir).map_err(step("stopping ihkmond"))?;
    if opts.wants_ihkmond() {
        let exe = ihkmond_path();
        if exe.is_file() {
            start_ihkmond(dir, &opts.facility, opts.redirect_kmsg, opts.mon_interval)
                .map_err(step("starting ihkmond"))?;
            done.push(Done::Ihkmond);
        } else {
            report.warnings.push(format!(
                "ihkmond is not installed ({}): kernel messages are not forwarded to syslog and hangs are not detected",
                exe.display()
            ));
        }
    }

    let running = client::daemon_running(dir);
    if !running {
        start_ihkd(dir).map_err(step("starting ihkd"))?;
        done.push(Done::Ihkd);
        report.started_ihkd = true;
        fault::point("mcreboot:ihkd-started");
    }
    let dev = || Client::device(dir, 0);

    destroy_all_instances(dir).map_err(step("destroying existing OS instances"))?;

    // Memory: everything asked for (fresh ihkd) or what is missing.
    let free: BTreeMap<u32, u64> = dev()
        .and_then(|mut c| c.query_mem())
        .map_err(step("querying reserved memory"))?
        .into_iter()
        .map(|(b, n)| (n, b))
        .collect();
    let mut to_reserve: Vec<MemChunk> = Vec::new();
    let mut wanted: BTreeMap<u32, u64> = BTreeMap::new();
    for c in opts.mem.chunks() {
        match c.size {
            MemSize::Bytes(b) => *wanted.entry(c.node()).or_insert(0) += b,
            MemSize::All => {
                if free.get(&c.node()).copied().unwrap_or(0) == 0 {
                    to_reserve.push(MemChunk {
                        size: MemSize::All,
                        numa: Some(c.node()),
                    });
                }
            }
        }
    }
    for (&n, &b) in &wanted {
        let have = free.get(&n).copied().unwrap_or(0);
        if b > have {
            to_reserve.push(MemChunk::bytes(b - have, n));
        }
    }
    if !to_reserve.is_empty() {
        let mut c = dev().map_err(step("reserving memory"))?;
        c.reserve_mem(&MemList(to_reserve))
            .map_err(step("reserving memory"))?;
        report.warnings.extend(c.warnings().iter().cloned());
        let after: BTreeMap<u32, u64> = c
            .query_mem()
            .map_err(step("querying reserved memory"))?
            .into_iter()
            .map(|(b, n)| (n, b))
            .collect();
        let added = after
            .iter()
            .map(|(&n, &b)| (n, b.saturating_sub(free.get(&n).copied().unwrap_or(0))))
            .filter(|&(_, b)| b > 0)
            .collect();
        done.push(Done::MemReserved(added));
        fault::point("mcreboot:mem-reserved");
    }

    let reserved = dev()
        .and_then(|mut c| c.query_cpu())
        .map_err(step("querying reserved CPUs"))?;
    let missing: Vec<u32> = opts
        .cpus
        .ids()
        .iter()
        .copied()
        .filter(|c| !reserved.contains(c))
        .collect();
    if !missing.is_empty() {
        let mut c = dev().map_err(step("reserving CPUs"))?;
        c.reserve_cpu(&missing).map_err(step("reserving CPUs"))?;
        report.warnings.extend(c.warnings().iter().cloned());
        done.push(Done::CpusReserved(missing));
        fault::point("mcreboot:cpus-reserved");
    }

    let os = dev()
        .and_then(|mut c| c.create_os())
        .map_err(step("creating the OS instance"))?;
    done.push(Done::OsCreated);
    report.os = os;
    fault::point("mcreboot:os-created");
    let osc = || Client::os(dir, os);

    osc()
        .and_then(|mut c| c.os_assign_cpu(opts.cpus.ids()))
        .map_err(step("assigning CPUs"))?;
    fault::point("mcreboot:cpus-assigned");
    if let Some(map) = &opts.ikc_map {
        osc()
            .and_then(|mut c| c.os_set_ikc_map(map))
            .map_err(step("setting the IKC map"))?;
    }
    osc()
        .and_then(|mut c| c.os_assign_mem(&opts.mem))
        .map_err(step("assigning memory"))?;
    fault::point("mcreboot:mem-assigned");
    osc()
        .and_then(|mut c| c.os_load(&opts.image))
        .map_err(step("loading the kernel image"))?;
    fault::point("mcreboot:image-loaded");
    osc()
        .and_then(|mut c| c.os_kargs(&opts.kargs()))
        .map_err(step("setting the kernel arguments"))?;
    osc()
        .and_then(|mut c| c.os_boot(opts.boot_timeout))
        .map_err(step("booting"))?;
    fault::point("mcreboot:booted");

    if let Some((uid, gid)) = opts.owner {
        if let Err(e) = dev().and_then(|mut c| c.set_owner(uid, gid)) {
            report
                .warnings
                .push(format!("failed to chown the device files: {}", e.detail));
        }
    }
    Ok(())
}

/// Undo completed steps newest first; returns what went wrong.
fn undo(dir: &RuntimeDir, mut done: Vec<Done>) -> Vec<String> {
    let mut failures = Vec::new();
    while let Some(d) = done.pop() {
        let r: IhkResult<()> = match d {
            Done::OsCreated => destroy_all_instances(dir),
            Done::CpusReserved(cpus) => {
                Client::device(dir, 0).and_then(|mut c| c.release_cpu(&cpus))
            }
            Done::MemReserved(added) => {
                let list = MemList(added.iter().map(|(&n, &b)| MemChunk::bytes(b, n)).collect());
                Client::device(dir, 0).and_then(|mut c| c.release_mem(&list))
            }
            Done::Ihkd => stop_ihkd(dir),
            Done::Ihkmond => stop_ihkmond(dir).map(|_| ()),
        };
        if let Err(e) = r {
            failures.push(e.detail);
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(extra: Option<&str>) -> RebootOptions {
        RebootOptions {
            cpus: CpuList::parse("1").unwrap(),
            mem: MemList::parse("512M@0").unwrap(),
            ikc_map: None,
            owner: None,
            facility: "LOG_LOCAL6".into(),
            redirect_kmsg: 0,
            mon_interval: -1,
            irq: None,
            turbo: true,
            dump_level: 24,
            allow_oversubscribe: true,
            extra_kargs: extra.map(String::from),
            image: PathBuf::from("/nonexistent"),
            boot_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn kargs_follow_the_script_and_append_extra_arguments() {
        assert_eq!(opts(None).kargs(), "hidos turbo dump_level=24 allow_oversubscribe");
        assert_eq!(
            opts(Some("  ihk_test_panic=100 foo=bar ")).kargs(),
            "hidos turbo dump_level=24 allow_oversubscribe ihk_test_panic=100 foo=bar"
        );
        assert_eq!(opts(Some("")).kargs(), "hidos turbo dump_level=24 allow_oversubscribe");
    }
}
