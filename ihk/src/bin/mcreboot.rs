//! mcreboot (also installed as mcreboot.sh): boot McKernel on a partition of
//! this node in one command, following mcreboot.sh's steps and undoing them
//! all when one fails. See `ihk::admin::reboot`.

use std::time::Duration;

use clap::Parser;
use ihk::admin::daemon_proc::default_image;
use ihk::admin::reboot::{reboot, RebootOptions};
use ihk::cli::{fail, print_warnings};
use ihk::list::{CpuList, IkcMap, MemList};
use ihk::paths::{Roots, RuntimeDir};
use ihk::IhkError;

#[derive(Parser, Debug)]
#[command(
    name = "mcreboot",
    version,
    about = "Reserve CPUs and memory, boot the LWK on them and wait until it runs",
    after_help = "Prints nothing unless something goes wrong; exits non-zero, naming the failed step, after \
undoing every earlier step.\n\n\
A running ihkmond of the runtime directory is stopped; -k/-i start a new one (kernel messages to \
syslog, hang detection; IHKMOND names the executable, default: next to ihkd). -q is accepted for \
compatibility: partitions are KVM VMs and need no host IRQ.\n\n\
Environment: IHK_RUNTIME_DIR, IHK_ISOLATION (pin|evict, for a new ihkd), MCKERNEL_IMAGE (the image), \
IHKD (the ihkd executable), MCREBOOT_BOOT_TIMEOUT (seconds, default 30)."
)]
struct Args {
    /// CPUs for McKernel (`1,3-5`); LWK CPUs are numbered in this order.
    /// Default: the second half of NUMA node 0's CPUs.
    #[arg(short = 'c', value_name = "cpulist")]
    cpus: Option<String>,
    /// Memory for McKernel (`<size>@<NUMA>,...`).
    #[arg(short = 'm', value_name = "memlist", default_value = "512M@0")]
    mem: String,
    /// IKC map (`<CPU list>:<Linux CPU>+...`).
    #[arg(short = 'r', value_name = "ikcmap")]
    ikc_map: Option<String>,
    /// Owner of the device files (`user[:group]`); default: the invoking user.
    #[arg(short = 'o', value_name = "user[:group]")]
    owner: Option<String>,
    /// Syslog facility for ihkmond.
    #[arg(short = 'f', value_name = "facility", default_value = "LOG_LOCAL6")]
    facility: String,
    /// Forward kernel messages to /dev/log through ihkmond (non-zero: yes).
    #[arg(
        short = 'k',
        value_name = "0|1",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    redirect_kmsg: i64,
    /// ihkmond's hang-detection interval in seconds (-1: none).
    #[arg(short = 'i', value_name = "seconds", default_value_t = -1, allow_negative_numbers = true)]
    mon_interval: i64,
    /// IRQ number (accepted for compatibility; unused).
    #[arg(short = 'q', value_name = "irq")]
    irq: Option<u32>,
    /// Turbo Boost on (passes `turbo` to the kernel).
    #[arg(short = 't')]
    turbo: bool,
    /// Dump level for panic dumps: 0 or 24.
    #[arg(short = 'd', value_name = "level", default_value_t = 24)]
    dump_level: u32,
    /// Allow more threads/processes than LWK CPUs.
    #[arg(short = 'O')]
    allow_oversubscribe: bool,
    /// Extra kernel arguments appended to the defaults (e.g. `-e "ihk_test_panic=100"`).
    #[arg(short = 'e', value_name = "kargs")]
    extra_kargs: Option<String>,
}

const PROG: &str = "mcreboot";

fn default_cpus(roots: &Roots) -> Result<CpuList, IhkError> {
    let online = ihk::host::topology::online_cpus(roots)?;
    let node0: Vec<u32> = online
        .iter()
        .copied()
        .filter(|&c| ihk::host::topology::cpu_node(roots, c) == 0)
        .collect();
    let half = node0.len() / 2;
    let tail: Vec<u32> = node0[node0.len() - half..].to_vec();
    if tail.is_empty() {
        return Err(IhkError::inval(
            "no available CPUs on NUMA node 0 (give -c)",
        ));
    }
    CpuList::from_ids(tail).map_err(|c| IhkError::inval(format!("CPU {c} twice")))
}

fn resolve_owner(spec: Option<&str>) -> Result<Option<(u32, u32)>, IhkError> {
    use nix::unistd::{getgid, getuid, Group, User};
    let Some(spec) = spec else {
        // The invoking user (the script uses logname): through sudo, the
        // original user; otherwise whoever runs this. Root needs no chown.
        let uid = std::env::var("SUDO_UID")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(getuid().as_raw());
        let gid = std::env::var("SUDO_GID")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(getgid().as_raw());
        return Ok(if uid == 0 { None } else { Some((uid, gid)) });
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = match user.parse::<u32>() {
        Ok(n) => User::from_uid(n.into()).ok().flatten(),
        Err(_) => User::from_name(user).ok().flatten(),
    }
    .ok_or_else(|| IhkError::inval(format!("-o {spec}: no such user '{user}'")))?;
    let gid = match group {
        None => u.gid.as_raw(),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| IhkError::inval(format!("-o {spec}: no such group '{g}'")))?
                .gid
                .as_raw(),
        },
    };
    Ok(Some((u.uid.as_raw(), gid)))
}

fn main() {
    let args = Args::parse();
    let dir = RuntimeDir::from_env();
    let roots = Roots::from_env();
    let opt = "checking the options failed";
    let bad = |e: IhkError| -> ! { fail(PROG, opt, &e, false) };
    let cpus = match &args.cpus {
        Some(s) => CpuList::parse(s).unwrap_or_else(|e| bad(e.into())),
        None => default_cpus(&roots).unwrap_or_else(|e| bad(e)),
    };
    let mem = MemList::parse(&args.mem).unwrap_or_else(|e| bad(e.into()));
    let ikc_map = args
        .ikc_map
        .as_deref()
        .map(|m| IkcMap::parse(m).unwrap_or_else(|e| bad(e.into())));
    let owner = resolve_owner(args.owner.as_deref()).unwrap_or_else(|e| bad(e));
    let timeout = std::env::var("MCREBOOT_BOOT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(30);
    let opts = RebootOptions {
        cpus,
        mem,
        ikc_map,
        owner,
        facility: args.facility,
        redirect_kmsg: args.redirect_kmsg,
        mon_interval: args.mon_interval,
        irq: args.irq,
        turbo: args.turbo,
        dump_level: args.dump_level,
        allow_oversubscribe: args.allow_oversubscribe,
        extra_kargs: args.extra_kargs,
        image: default_image(),
        boot_timeout: Duration::from_secs(timeout.max(1)),
    };
    match reboot(&dir, &roots, &opts) {
        Ok(report) => print_warnings(PROG, &report.warnings),
        Err(e) => {
            for u in &e.undo_failures {
                eprintln!("{PROG}: warning: while undoing: {u}");
            }
            fail(PROG, &format!("{} failed", e.step), &e.error, false);
        }
    }
}
