//! ihkconfig: resource management of an IHK device (specification §1.3.1).
//! A thin layer over `ihk::client`; prints nothing on success except query
//! results and the index of a created OS instance.

use clap::{Parser, Subcommand};
use ihk::cli::{fail, format_mem, print_warnings};
use ihk::client::Client;
use ihk::list::{format_cpus, CpuList, MemList};
use ihk::paths::RuntimeDir;
use ihk::IhkError;

#[derive(Parser, Debug)]
#[command(
    name = "ihkconfig",
    version,
    about = "Reserve and release CPUs and memory for IHK, create and destroy OS instances",
    after_help = "Examples:\n  ihkconfig 0 reserve cpu 1-3\n  ihkconfig 0 reserve mem 512M@0,1G@1\n  ihkconfig 0 query cpu\n  ihkconfig 0 create\n  ihkconfig 0 release mem all\n\nThe device is served by ihkd in $IHK_RUNTIME_DIR (default /run/ihk)."
)]
struct Args {
    /// IHK device index (0: <runtime dir>/mcd0).
    dev: u32,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Reserve CPUs (`cpu 1,3-5`) or memory (`mem 512M@0,1G@1`, `ALL`).
    Reserve {
        #[command(subcommand)]
        what: Resource,
    },
    /// Release CPUs or memory (`mem all` releases everything).
    Release {
        #[command(subcommand)]
        what: Resource,
    },
    /// Print the reserved CPUs, or the reserved memory not assigned to an OS.
    Query {
        #[command(subcommand)]
        what: Kind,
    },
    /// Create an OS instance and print its index.
    Create,
    /// Destroy an OS instance, releasing its resources to the reserved pool.
    Destroy { os: u32 },
    /// Print OS instance indices (`get os_instances`).
    Get {
        #[command(subcommand)]
        what: GetWhat,
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
enum GetWhat {
    #[command(name = "os_instances")]
    OsInstances,
}

const PROG: &str = "ihkconfig";

fn main() {
    let args = Args::parse();
    let dir = RuntimeDir::from_env();
    let what = describe(&args.action);
    let connect =
        || Client::device(&dir, args.dev).unwrap_or_else(|e| fail(PROG, &what, &e, false));
    let check = |r: Result<(), IhkError>, c: &Client| match r {
        Ok(()) => print_warnings(PROG, c.warnings()),
        Err(e) => fail(PROG, &what, &e, false),
    };
    match &args.action {
        Action::Reserve {
            what: Resource::Cpu { list },
        } => {
            let l = CpuList::parse(list).unwrap_or_else(|e| fail(PROG, &what, &e.into(), false));
            let mut c = connect();
            let r = c.reserve_cpu(l.ids());
            check(r, &c);
        }
        Action::Reserve {
            what: Resource::Mem { list },
        } => {
            let l = MemList::parse(list).unwrap_or_else(|e| fail(PROG, &what, &e.into(), false));
            let mut c = connect();
            let r = c.reserve_mem(&l);
            check(r, &c);
        }
        Action::Release {
            what: Resource::Cpu { list },
        } => {
            let l = CpuList::parse(list).unwrap_or_else(|e| fail(PROG, &what, &e.into(), false));
            let mut c = connect();
            let r = c.release_cpu(l.ids());
            check(r, &c);
        }
        Action::Release {
            what: Resource::Mem { list },
        } => {
            let l = MemList::parse(list).unwrap_or_else(|e| fail(PROG, &what, &e.into(), false));
            let mut c = connect();
            let r = c.release_mem(&l);
            check(r, &c);
        }
        Action::Query { what: Kind::Cpu } => {
            let cpus = connect()
                .query_cpu()
                .unwrap_or_else(|e| fail(PROG, &what, &e, false));
            println!("{}", format_cpus(&cpus));
        }
        Action::Query { what: Kind::Mem } => {
            let mem = connect()
                .query_mem()
                .unwrap_or_else(|e| fail(PROG, &what, &e, false));
            println!("{}", format_mem(&mem));
        }
        Action::Create => {
            let os = connect()
                .create_os()
                .unwrap_or_else(|e| fail(PROG, &what, &e, false));
            println!("{os}");
        }
        Action::Destroy { os } => {
            if let Err(e) = connect().destroy_os(*os) {
                fail(PROG, &what, &e, e.errno == libc::ENOENT);
            }
        }
        Action::Get {
            what: GetWhat::OsInstances,
        } => {
            let v = connect()
                .get_os_instances()
                .unwrap_or_else(|e| fail(PROG, &what, &e, false));
            println!(
                "{}",
                v.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
    }
}

fn describe(a: &Action) -> String {
    match a {
        Action::Reserve {
            what: Resource::Cpu { list },
        } => format!("reserve cpu {list}"),
        Action::Reserve {
            what: Resource::Mem { list },
        } => format!("reserve mem {list}"),
        Action::Release {
            what: Resource::Cpu { list },
        } => format!("release cpu {list}"),
        Action::Release {
            what: Resource::Mem { list },
        } => format!("release mem {list}"),
        Action::Query { what: Kind::Cpu } => "query cpu".into(),
        Action::Query { what: Kind::Mem } => "query mem".into(),
        Action::Create => "create".into(),
        Action::Destroy { os } => format!("destroy {os}"),
        Action::Get { .. } => "get os_instances".into(),
    }
}
