//! The LWK's vDSO (issue 14): glibc finds `__vdso_clock_gettime` & co. in
//! the image that AT_SYSINFO_EHDR names and reads the clock in user mode.
//! Unmodified Debian programs (`date`, python3's `time.time_ns()`) and a C
//! program built dynamic and static read values that agree with Linux's
//! CLOCK_REALTIME; clocks never go back (also in a fork child and a
//! thread); CPU-time clocks and getcpu still answer through the kernel; the
//! LWK's kernel-entry trace shows that the clock calls stay in user mode;
//! /proc/self/maps names `[vdso]` and `[vvar]`. One partition.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{bin, can_run, compile, Partition};

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn now_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128
}

/// Run `args` on the LWK between two readings of Linux's CLOCK_REALTIME;
/// returns (stdout, before, after).
fn timed(p: &Partition, args: &[&str]) -> (String, i128, i128) {
    let before = now_ns();
    let o = p.mcexec(args);
    let after = now_ns();
    assert!(o.status.success(), "{args:?} failed on the LWK: {}{}", text(&o), String::from_utf8_lossy(&o.stderr));
    (text(&o), before, after)
}

/// A wall-clock reading of the LWK (ns) lies between Linux's readings
/// before and after the program, give or take `slack_ns`.
fn agrees(what: &str, v: i128, before: i128, after: i128, slack_ns: i128) {
    assert!(
        v >= before - slack_ns && v <= after + slack_ns,
        "{what}: LWK {v} ns outside Linux's [{before}, {after}] +- {slack_ns} ns"
    );
}

/// (system-call number, count) of every system call in the LWK CPU's trace.
fn syscall_counts(p: &Partition) -> Vec<(u32, u64)> {
    let o = p.command(&bin("ihkosctl")).args(["0", "trace"]).output().expect("ihkosctl trace");
    let mut counts = std::collections::BTreeMap::new();
    for l in text(&o).lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 5 && f[3] == "syscall" {
            *counts.entry(f[4].parse::<u32>().unwrap()).or_insert(0u64) += 1;
        }
    }
    counts.into_iter().collect()
}

fn count_of(counts: &[(u32, u64)], nr: u32) -> u64 {
    counts.iter().find(|c| c.0 == nr).map_or(0, |c| c.1)
}

const SYS_CLOCK_GETTIME: u32 = 228;
const ROUNDS: &str = "300";

#[test]
fn vdso_clocks_in_user_mode_for_dynamic_and_static_programs() {
    if !can_run("vdso_clocks_in_user_mode_for_dynamic_and_static_programs") {
        return;
    }
    for p in ["/usr/bin/date", "/usr/bin/python3", "/usr/bin/cat"] {
        if !Path::new(p).exists() {
            mck_tests::cannot_run("vdso", &format!("{p} missing"));
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(dynamic) = compile("vdso.c", &["-pthread"], tmp.path(), "vdso-dynamic") else { return };
    let Some(stat) = compile("vdso.c", &["-pthread", "-static"], tmp.path(), "vdso-static") else { return };
    let p = Partition::boot("512M", &[]);

    // Our program, dynamic then static: 300 rounds of 6 clocks each.
    for prog in [&dynamic, &stat] {
        let base = count_of(&syscall_counts(&p), SYS_CLOCK_GETTIME);
        let (out, before, after) = timed(&p, &[prog.to_str().unwrap(), ROUNDS]);
        assert!(out.ends_with("ok\n"), "{}: {out}", prog.display());
        let rt: i128 = out.lines().find_map(|l| l.strip_prefix("realtime_ns ")).unwrap().parse().unwrap();
        agrees("CLOCK_REALTIME", rt, before, after, 5_000_000);
        // 6 * (300 + 31 + 31) + a few clock_gettime calls were made; only
        // the two CPU-time clocks (and the fork child's and thread's
        // none) may enter the kernel.
        let calls = count_of(&syscall_counts(&p), SYS_CLOCK_GETTIME).saturating_sub(base);
        assert!(calls <= 4, "{}: {calls} clock_gettime system calls reached the LWK", prog.display());
    }

    // Unmodified Debian programs.
    let (out, before, after) = timed(&p, &["date", "+%s%N"]);
    agrees("date +%s%N", out.trim().parse().unwrap(), before, after, 5_000_000);
    let (out, before, after) = timed(&p, &["python3", "-c", "import time; a = time.monotonic(); b = time.monotonic(); assert b >= a; print(time.time_ns())"]);
    agrees("python3 time.time_ns()", out.trim().parse().unwrap(), before, after, 5_000_000);

    // The LWK's own view of the address space.
    let (maps, _, _) = timed(&p, &["cat", "/proc/self/maps"]);
    let line = |name: &str| maps.lines().find(|l| l.ends_with(name)).unwrap_or_else(|| panic!("no {name} in\n{maps}")).to_string();
    let (vvar, vdso) = (line("[vvar]"), line("[vdso]"));
    assert!(vvar.contains(" r--p "), "{vvar}");
    assert!(vdso.contains(" r-xp "), "{vdso}");
    let vvar_end = u64::from_str_radix(vvar.split(['-', ' ']).nth(1).unwrap(), 16).unwrap();
    let vdso_start = u64::from_str_radix(vdso.split('-').next().unwrap(), 16).unwrap();
    assert_eq!(vvar_end, vdso_start, "the data page lies right below the image");
}
