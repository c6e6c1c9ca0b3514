//! `cargo bench -p mcexec --bench offload`: median round trip of an
//! offloaded call (`fcntl(fd, F_GETFL)` on a host file, ARCHITECTURE.md §5)
//! and of a local one (`getpid`) in the LWK, next to native Linux
//! `getppid`, measured in the same run. Prints numbers and ratios; asserts
//! nothing about time. Needs root and /dev/kvm (boots `mcreboot -c 1 -m 512M`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn parse(out: &[u8]) -> BTreeMap<String, f64> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

fn main() {
    if !common::can_run("the offload benchmark") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/programs/syscall_bench.c");
    let exe = tmp.path().join("syscall_bench");
    match Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&exe).arg(&src).status() {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("skipping the offload benchmark: gcc -static failed ({other:?})");
            return;
        }
    }
    let native = Command::new(&exe).arg("20000").output().expect("running the benchmark on Linux");
    let native = parse(&native.stdout);
    let p = common::Partition::boot("512M", &[]);
    // Fewer calls per batch on the LWK: where the host runs guest kernel
    // code in an instruction emulator every call costs much more.
    let lwk = p.mcexec_command(&[exe.to_str().unwrap(), "200"]).output().expect("running under mcexec");
    common::log(&exe, &["200"], &lwk);
    let lwk = parse(&lwk.stdout);
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    let linux_getppid = get(&native, "getppid");
    println!("native Linux getppid:             {:>10.0} ns", linux_getppid);
    for (k, label) in [("fcntl_getfl", "LWK offloaded fcntl(F_GETFL):"), ("getpid", "LWK local getpid:")] {
        let v = get(&lwk, k);
        println!("{label:<33} {v:>10.0} ns  ({:.1}x native getppid)", v / linux_getppid);
    }
    println!("(native Linux fcntl(F_GETFL): {:.0} ns)", get(&native, "fcntl_getfl"));
}
