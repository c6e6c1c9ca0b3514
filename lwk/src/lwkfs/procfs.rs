//! /proc: cpuinfo, meminfo, stat (the LWK CPUs' times, with KVM's steal
//! time), and the process's own maps, status, stat, exe and task list (as
//! `self`, `thread-self` or its pid; smaps with each mapping's Size and
//! Rss only), and its threads' comm; the rest is Linux's.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use super::{cpus, list, mask, View};
use crate::mm::aspace::VmaKind;
use crate::process::signal::{SIG_DFL, SIG_IGN};
use crate::process::Thread;

pub fn lookup(t: &Thread, rest: &str) -> View {
    match rest {
        "cpuinfo" => return View::Cpuinfo(cpus().iter().map(|c| c.1).collect()),
        "meminfo" => return View::Content(meminfo().into_bytes()),
        "stat" => return View::Content(cpu_stat().into_bytes()),
        _ => {}
    }
    let (who, file) = rest.split_once('/').unwrap_or((rest, ""));
    let pid = t.process.pid;
    let mine = who == "self" || who == "thread-self" || who.parse::<u32>().ok() == Some(pid);
    if !mine {
        return View::Linux;
    }
    // Any thread's comm (pthread_getname_np and pthread_setname_np of
    // another thread use it).
    if let Some((tid, "comm")) = file.strip_prefix("task/").and_then(|x| x.split_once('/')) {
        return match tid.parse::<u32>().ok().and_then(|tid| t.process.thread(tid)) {
            Some(x) => View::Comm(x.tid()),
            None => View::Missing,
        };
    }
    let file = if who == "thread-self" { file } else { file.strip_prefix(&*format!("task/{}/", t.tid())).unwrap_or(file) };
    match file {
        "comm" if who == "thread-self" => View::Comm(t.tid()),
        "comm" => View::Comm(pid),
        "maps" => View::Content(maps(t, false).into_bytes()),
        "smaps" => View::Content(maps(t, true).into_bytes()),
        "status" => View::Content(status(t).into_bytes()),
        "stat" => View::Content(stat(t).into_bytes()),
        "exe" => match crate::process::exec::exe_path(t) {
            Ok(path) => View::Redirect(path),
            Err(_) => View::Linux,
        },
        "task" if who != "thread-self" => View::Dir(super::DirKind::Tasks),
        _ => View::Linux,
    }
}

/// /proc/stat: per LWK CPU user, system, idle and steal time in USER_HZ
/// (100/s; idle is the rest since boot), and their sum on the `cpu` line.
fn cpu_stat() -> String {
    let bp = crate::boot_params::get();
    let ticks = |ns: u64| ns / 10_000_000;
    let now = crate::arch::x86_64::tsc::now();
    let up_ns = (now.saturating_sub(bp.boot_tsc) as u128 * 1_000_000 / bp.tsc_khz.max(1) as u128) as u64;
    let rows: Vec<[u64; 4]> = (0..bp.cores().len())
        .map(|c| {
            let (user, system) = crate::monitor::cpu_times_ns(c);
            let steal = crate::arch::x86_64::trace::steal_ns(c as u32);
            [user, system, up_ns.saturating_sub(user + system + steal), steal]
        })
        .collect();
    let mut s = String::new();
    let mut line = |name: &str, [user, system, idle, steal]: [u64; 4]| {
        let _ = writeln!(s, "{name} {} 0 {} {} 0 0 0 {} 0 0", ticks(user), ticks(system), ticks(idle), ticks(steal));
    };
    let total = rows.iter().fold([0u64; 4], |a, r| core::array::from_fn(|i| a[i] + r[i]));
    line("cpu ", total);
    for (c, r) in rows.iter().enumerate() {
        line(&format!("cpu{c}"), *r);
    }
    let btime = crate::arch::x86_64::tsc::realtime_ns(bp.boot_tsc) / 1_000_000_000;
    let _ = write!(s, "intr 0\nctxt 0\nbtime {btime}\nprocesses 0\nprocs_running 1\nprocs_blocked 0\nsoftirq 0\n");
    s
}

fn meminfo() -> String {
    let bp = crate::boot_params::get();
    let (mut free, mut total) = (0u64, 0u64);
    for n in 0..bp.numa_nodes().len() as u32 {
        let (f, t) = crate::mm::frame::node_bytes(n);
        free += f;
        total += t;
    }
    let mut s = String::new();
    let mut kb = |name: &str, v: u64| {
        let _ = writeln!(s, "{:<16}{:>8} kB", format!("{name}:"), v / 1024);
    };
    kb("MemTotal", total);
    kb("MemFree", free);
    kb("MemAvailable", free);
    for z in ["Buffers", "Cached", "SwapCached", "Active", "Inactive", "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem"] {
        kb(z, 0);
    }
    kb("Committed_AS", total - free);
    for z in ["HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"] {
        let _ = writeln!(s, "{:<16}{:>8}", format!("{z}:"), 0);
    }
    let _ = writeln!(s, "{:<16}{:>8} kB", "Hugepagesize:", 2048);
    s
}

/// Linux's `dev_t` → (major, minor).
fn major_minor(dev: u64) -> (u64, u64) {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff), (dev & 0xff) | ((dev >> 12) & !0xff))
}

/// /proc/self/maps; with `detail`, /proc/self/smaps: each mapping's Size
/// and Rss, the partition memory backing it (share windows are the host's
/// memory: Rss 0; a mirror granule shared by two mappings counts in both).
pub fn maps(t: &Thread, detail: bool) -> String {
    let a = t.process.aspace.lock();
    let mut s = String::new();
    for (start, v) in a.vmas() {
        let file = a.files.at(start);
        let p = v.perm;
        let shared = file.is_some_and(|(_, f)| f.shared);
        let (off, dev, ino, name) = match file {
            Some((fs, f)) => (f.off + (start - fs), f.dev, f.ino, f.path.as_str()),
            None => (
                0,
                0,
                0,
                match v.kind {
                    VmaKind::Heap => "[heap]",
                    VmaKind::Stack => "[stack]",
                    VmaKind::Vdso if p.exec => "[vdso]",
                    VmaKind::Vdso => "[vvar]",
                    _ => "",
                },
            ),
        };
        let (ma, mi) = major_minor(dev);
        let line = format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {}",
            start,
            v.end,
            if p.read { 'r' } else { '-' },
            if p.write { 'w' } else { '-' },
            if p.exec { 'x' } else { '-' },
            if shared { 's' } else { 'p' },
            off,
            ma,
            mi,
            ino
        );
        if name.is_empty() {
            let _ = writeln!(s, "{line} ");
        } else {
            let _ = writeln!(s, "{line:<72} {name}");
        }
        if detail {
            let rss = if v.kind == VmaKind::Shared { 0 } else { a.backed_in(start, v.end) };
            let _ = writeln!(s, "Size:           {:8} kB\nRss:            {:8} kB", (v.end - start) >> 10, rss >> 10);
        }
    }
    s
}

fn vm_kb(t: &Thread) -> (u64, u64, u64) {
    let a = t.process.aspace.lock();
    let size: u64 = a.vmas().map(|(s, v)| v.end - s).sum();
    (size / 1024, a.backed_bytes / 1024, a.stack_bytes() / 1024)
}

fn status(t: &Thread) -> String {
    let p = &t.process;
    let sp = &p.start;
    let (size, rss, stk) = vm_kb(t);
    let all: Vec<u32> = cpus().iter().map(|c| c.0).collect();
    let ncpus = all.len() as u32;
    let allowed = *t.affinity.lock();
    let nodes: Vec<u32> = (0..crate::boot_params::get().numa_nodes().len() as u32).collect();
    // Ignored and caught signals, bit n-1 for signal n (the LWK's dispositions).
    let (ign, cgt) = p.signals.lock().actions.iter().enumerate().fold((0u64, 0u64), |(i, c), (n, a)| match a.handler {
        SIG_DFL => (i, c),
        SIG_IGN => (i | 1 << n, c),
        _ => (i, c | 1 << n),
    });
    let mut s = String::new();
    let _ = write!(
        s,
        "Name:\t{}\nUmask:\t0022\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{}\nTracerPid:\t0\n\
Uid:\t{}\t{}\t{}\t{}\nGid:\t{}\t{}\t{}\t{}\nFDSize:\t64\nGroups:\t\n\
VmPeak:\t{size:8} kB\nVmSize:\t{size:8} kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\nVmHWM:\t{rss:8} kB\nVmRSS:\t{rss:8} kB\n\
RssAnon:\t{rss:8} kB\nRssFile:\t       0 kB\nRssShmem:\t       0 kB\nVmData:\t{rss:8} kB\nVmStk:\t{stk:8} kB\n\
VmExe:\t       0 kB\nVmLib:\t       0 kB\nVmPTE:\t       0 kB\nVmSwap:\t       0 kB\nThreads:\t{}\n\
SigQ:\t0/0\nSigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n\
Cpus_allowed:\t{}\nCpus_allowed_list:\t{}\nMems_allowed:\t{}\nMems_allowed_list:\t{}\n\
voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n",
        p.comm.lock().as_str(),
        p.ppid,
        sp.uid,
        sp.euid,
        sp.euid,
        sp.euid,
        sp.gid,
        sp.egid,
        sp.egid,
        sp.egid,
        p.live_threads.load(Ordering::Relaxed),
        t.sig_pending.load(Ordering::Relaxed),
        p.sig_pending.load(Ordering::Relaxed),
        t.sig_mask.load(Ordering::Relaxed),
        allowed.to_mask(ncpus),
        allowed.to_list(),
        mask(&nodes, nodes.len() as u32),
        list(&nodes),
        pid = p.pid,
        ign = ign,
        cgt = cgt,
    );
    s
}

fn stat(t: &Thread) -> String {
    let p = &t.process;
    let bp = crate::boot_params::get();
    // User and system time in clock ticks (USER_HZ = 100), as charged
    // (`process::cputime`).
    let (user_ns, sys_ns) = crate::process::cputime::process_ns(p, t);
    let (ticks, sys_ticks) = (user_ns / 10_000_000, sys_ns / 10_000_000);
    // Start time in ticks since Linux booted (CLOCK_BOOTTIME at start).
    let since_lwk_boot_ns = (p.start_tsc.saturating_sub(bp.boot_tsc) as u128 * 1_000_000 / bp.tsc_khz.max(1) as u128) as u64;
    let start_boottime = (bp.boot_realtime_ns + since_lwk_boot_ns).wrapping_add(p.start.boottime_offset_ns as u64);
    let boot_ticks = start_boottime / 10_000_000;
    let (size, rss, _) = vm_kb(t);
    let a = p.aspace.lock();
    let (brk_start, stack_top) = (a.brk_start, a.stack_top);
    drop(a);
    format!(
        "{pid} ({}) R {} {pid} {pid} 0 -1 4194304 0 0 0 0 {ticks} {sys_ticks} 0 0 20 0 {} 0 {boot_ticks} {} {} 18446744073709551615 0 0 {} 0 0 0 0 0 0 0 0 0 17 {} 0 0 0 0 0 0 0 {} 0 0 0 0 0\n",
        p.comm.lock().as_str(),
        p.ppid,
        p.live_threads.load(Ordering::Relaxed),
        size * 1024,
        rss / 4,
        stack_top,
        t.cpu(),
        brk_start,
        pid = p.pid,
    )
}
