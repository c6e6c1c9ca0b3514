//! ihkosctl: management of one OS instance (specification §1.3.2). A thin
//! layer over `ihk::client`; prints nothing on success except query results,
//! the status and the kernel messages.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ihk::cli::{fail, format_mem, print_warnings};
use ihk::client::Client;
use ihk::list::{format_cpus, CpuList, IkcMap, MemList};
use ihk::paths::RuntimeDir;
use ihk::IhkError;

/// Default wait for `boot` (RUNNING, PANIC or this long).
const DEFAULT_BOOT_TIMEOUT_SECS: u64 = 30;

#[derive(Parser, Debug)]
#[command(
    name = "ihkosctl",
    version,
    about = "Configure, boot, inspect and shut down an IHK OS instance",
    after_help = "Examples:\n  ihkosctl 0 assign cpu 1\n  ihkosctl 0 assign mem 512M@0\n  ihkosctl 0 load mckernel.img\n  ihkosctl 0 kargs \"hidos\"\n  ihkosctl 0 boot\n  ihkosctl 0 get status\n  ihkosctl 0 kmsg\n  ihkosctl 0 trace\n  ihkosctl 0 shutdown"
)]
struct Args {
    /// OS instance index (<runtime dir>/mcos<index>).
    os: u32,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Assign reserved CPUs (`cpu 1-3`; LWK CPUs are numbered in this order)
    /// or reserved memory (`mem 512M@0`, `all`).
    Assign {
        #[command(subcommand)]
        what: Resource,
    },
    /// Give CPUs or memory back to the reserved pool.
    Release {
        #[command(subcommand)]
        what: Resource,
    },
    /// Print the assigned CPUs or memory.
    Query {
        #[command(subcommand)]
        what: Kind,
    },
    /// `set ikc_map <map>`.
    Set {
        #[command(subcommand)]
        what: SetWhat,
    },
    /// `get ikc_map` or `get status`.
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Same as `set ikc_map <map>` (the specification's example form).
    #[command(name = "ikc_map", hide = true)]
    IkcMapShort { map: String },
    /// Load a kernel image (an LWK ELF).
    Load { image: PathBuf },
    /// Set the kernel arguments (must contain `hidos`).
    Kargs { kargs: String },
    /// Boot and wait until RUNNING; on a panic or timeout, print the last
    /// kernel messages and fail.
    Boot {
        /// Seconds to wait for RUNNING.
        #[arg(long, default_value_t = DEFAULT_BOOT_TIMEOUT_SECS)]
        timeout: u64,
    },
    /// Shut the kernel down; its CPUs and memory go back to the reserved pool.
    Shutdown,
    /// Print the kernel message buffer.
    Kmsg,
    /// Print the noise trace: every kernel entry from user mode still in
    /// each LWK CPU's ring (TSC, microseconds in the kernel, cause), a
    /// summary per cause, and the CPU's KVM steal time.
    Trace {
        /// Only entries that took at least this many microseconds.
        #[arg(long, value_name = "us", default_value_t = 0.0)]
        min_us: f64,
    },
    /// Clear the kernel message buffer.
    #[command(name = "clear_kmsg")]
    ClearKmsg,
    /// Print the LWK's free memory per NUMA node.
    #[command(name = "query_free_mem")]
    QueryFreeMem,
    /// Dump the instance's memory as an ELF core that gdb opens with the
    /// LWK image (§1.3.2.17; the same call as ihk_os_makedumpfile).
    Dump {
        /// 0: all memory assigned to the instance; 24: memory the kernel uses.
        #[arg(short = 'd', value_name = "dump_level", default_value_t = 0)]
        level: i32,
        /// Output file (must not exist); default mcdump.YYYYmmddHHMMSS.
        file: Option<PathBuf>,
        /// Headers and registers only (the interactive mode).
        #[arg(short = 'i', long = "interactive")]
        interactive: bool,
    },
}

#[derive(Subcommand, Debug)]
enum Resource {
    Cpu { list: String },
    Mem { list: String },
}

#[derive(Subcommand, Debug)]
enum Kind {
    Cpu,
    Mem,
}

#[derive(Subcommand, Debug)]
enum SetWhat {
    #[command(name = "ikc_map")]
    IkcMap { map: String },
}

#[derive(Subcommand, Debug)]
enum GetWhat {
    #[command(name = "ikc_map")]
    IkcMap,
    Status,
}

const PROG: &str = "ihkosctl";

fn main() {
    let args = Args::parse();
    let dir = RuntimeDir::from_env();
    let what = describe(&args.action);
    let os = args.os;
    let die = |e: IhkError| -> ! { fail(PROG, &what, &e, true) };
    let bad = |e: ihk::list::ListError| -> ! { fail(PROG, &what, &e.into(), true) };
    let mut c = Client::os(&dir, os).unwrap_or_else(|e| die(e));
    let r: Result<(), IhkError> = match &args.action {
        Action::Assign {
            what: Resource::Cpu { list },
        } => {
            let l = CpuList::parse(list).unwrap_or_else(|e| bad(e));
            c.os_assign_cpu(l.ids())
        }
        Action::Assign {
            what: Resource::Mem { list },
        } => {
            let l = MemList::parse(list).unwrap_or_else(|e| bad(e));
            c.os_assign_mem(&l)
        }
        Action::Release {
            what: Resource::Cpu { list },
        } => {
            let l = CpuList::parse(list).unwrap_or_else(|e| bad(e));
            c.os_release_cpu(l.ids())
        }
        Action::Release {
            what: Resource::Mem { list },
        } => {
            let l = MemList::parse(list).unwrap_or_else(|e| bad(e));
            c.os_release_mem(&l)
        }
        Action::Query { what: Kind::Cpu } => {
            c.os_query_cpu().map(|v| println!("{}", format_cpus(&v)))
        }
        Action::Query { what: Kind::Mem } => {
            c.os_query_mem().map(|v| println!("{}", format_mem(&v)))
        }
        Action::Set {
            what: SetWhat::IkcMap { map },
        }
        | Action::IkcMapShort { map } => {
            let m = IkcMap::parse(map).unwrap_or_else(|e| bad(e));
            c.os_set_ikc_map(&m)
        }
        Action::Get {
            what: GetWhat::IkcMap,
        } => c.os_get_ikc_map().map(|m| println!("{m}")),
        Action::Get {
            what: GetWhat::Status,
        } => c.os_get_status().map(|s| println!("{s}")),
        Action::Load { image } => c.os_load(image),
        Action::Kargs { kargs } => c.os_kargs(kargs),
        Action::Boot { timeout } => {
            let t = Duration::from_secs((*timeout).max(1));
            c.os_boot(t)
        }
        Action::Shutdown => c.os_shutdown(),
        Action::Kmsg => c.os_kmsg().map(|k| {
            print!("{k}");
            if !k.is_empty() && !k.ends_with('\n') {
                println!();
            }
        }),
        Action::Trace { min_us } => c.os_trace().map(|t| print!("{}", format_trace(&t, *min_us))),
        Action::ClearKmsg => c.os_clear_kmsg(),
        Action::QueryFreeMem => c
            .os_query_free_mem()
            .map(|v| println!("{}", format_mem(&v))),
        Action::Dump {
            level,
            file,
            interactive,
        } => {
            let path = file.clone().unwrap_or_else(default_dump_name);
            match c.os_makedumpfile(&path, *level, *interactive) {
                // A missing directory, not a missing instance (§1.3.2.17).
                Err(e) if e.errno == libc::ENOENT => {
                    eprintln!("Error: No such file or directory");
                    eprintln!("{PROG}: {what}: {}", e.detail);
                    std::process::exit(e.exit_code());
                }
                r => r.map(|_| ()),
            }
        }
    };
    match r {
        Ok(()) => print_warnings(PROG, c.warnings()),
        Err(e) => die(e),
    }
}

fn describe(a: &Action) -> String {
    match a {
        Action::Assign {
            what: Resource::Cpu { list },
        } => format!("assign cpu {list}"),
        Action::Assign {
            what: Resource::Mem { list },
        } => format!("assign mem {list}"),
        Action::Release {
            what: Resource::Cpu { list },
        } => format!("release cpu {list}"),
        Action::Release {
            what: Resource::Mem { list },
        } => format!("release mem {list}"),
        Action::Query { what: Kind::Cpu } => "query cpu".into(),
        Action::Query { what: Kind::Mem } => "query mem".into(),
        Action::Set {
            what: SetWhat::IkcMap { map },
        }
        | Action::IkcMapShort { map } => format!("set ikc_map {map}"),
        Action::Get {
            what: GetWhat::IkcMap,
        } => "get ikc_map".into(),
        Action::Get {
            what: GetWhat::Status,
        } => "get status".into(),
        Action::Load { image } => format!("load {}", image.display()),
        Action::Kargs { kargs } => format!("kargs \"{kargs}\""),
        Action::Boot { .. } => "boot".into(),
        Action::Shutdown => "shutdown".into(),
        Action::Kmsg => "kmsg".into(),
        Action::Trace { .. } => "trace".into(),
        Action::ClearKmsg => "clear_kmsg".into(),
        Action::QueryFreeMem => "query_free_mem".into(),
        Action::Dump { level, .. } => format!("dump -d {level}"),
    }
}

/// The trace as text: `#` lines (TSC frequency; per CPU its entries since
/// boot, steal time, and per cause count, total and longest time), then
/// one line per entry: LWK CPU, TSC at entry, microseconds in the kernel,
/// cause, system-call number (or 0).
fn format_trace(t: &ihk::proto::libihk::TraceInfo, min_us: f64) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    let us = |ticks: u32| ticks as f64 * 1000.0 / t.tsc_khz.max(1) as f64;
    let mut s = format!("# tsc_khz {}\n", t.tsc_khz);
    for c in &t.cpus {
        let steal = c.steal_ns.map_or("-".to_string(), |n| n.to_string());
        let _ = writeln!(
            s,
            "# cpu {} linux_cpu {} entries {} in_ring {} steal_ns {steal}",
            c.lwk_cpu,
            c.linux_cpu,
            c.entries,
            c.records.len()
        );
        let mut by_cause: BTreeMap<&str, (u64, f64, f64)> = BTreeMap::new();
        for r in &c.records {
            let e = by_cause.entry(ihk_abi::trace::cause_name(r.cause)).or_default();
            e.0 += 1;
            e.1 += us(r.ticks);
            e.2 = e.2.max(us(r.ticks));
        }
        for (cause, (n, total, max)) in by_cause {
            let _ = writeln!(
                s,
                "# cpu {} cause {cause} count {n} total_us {total:.1} max_us {max:.1}",
                c.lwk_cpu
            );
        }
    }
    for c in &t.cpus {
        for r in c.records.iter().filter(|r| us(r.ticks) >= min_us) {
            let _ = writeln!(
                s,
                "{} {} {:.1} {} {}",
                c.lwk_cpu,
                r.tsc,
                us(r.ticks),
                ihk_abi::trace::cause_name(r.cause),
                r.detail
            );
        }
    }
    s
}

/// `mcdump.YYYYmmddHHMMSS` in local time.
fn default_dump_name() -> PathBuf {
    // SAFETY: time and localtime_r write only into our local tm.
    let tm = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    PathBuf::from(format!(
        "mcdump.{:04}{:02}{:02}{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    ))
}
