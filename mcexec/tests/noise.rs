//! OS noise (issue 21): a thread computing on an LWK CPU takes no kernel
//! entry at all (no tick, no heartbeat interrupt), every entry it does
//! take is in the noise trace (`ihkosctl 0 trace`) with its cause, and
//! KVM's steal time shows in the trace and in the LWK's /proc/stat.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::{bin, can_run, compile, Partition};

/// `ihkosctl 0 trace`: (header lines, record lines split in words).
fn trace(p: &Partition) -> (Vec<String>, Vec<Vec<String>>) {
    let out = p.command(&bin("ihkosctl")).args(["0", "trace"]).output().expect("ihkosctl trace");
    assert!(out.status.success(), "ihkosctl 0 trace: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, recs): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.starts_with('#'));
    (
        head.into_iter().map(String::from).collect(),
        recs.into_iter().map(|l| l.split_whitespace().map(String::from).collect()).collect(),
    )
}

/// The value after `key` in CPU 0's `# cpu 0 linux_cpu ...` header line.
fn cpu0(head: &[String], key: &str) -> String {
    let line = head.iter().find(|l| l.starts_with("# cpu 0 linux_cpu ")).unwrap_or_else(|| panic!("no CPU 0 line in {head:?}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let i = w.iter().position(|&x| x == key).unwrap_or_else(|| panic!("no {key} in {line}"));
    w[i + 1].to_string()
}

#[test]
fn a_computing_thread_takes_no_kernel_entry_and_the_trace_names_each_one() {
    if !can_run("a_computing_thread_takes_no_kernel_entry_and_the_trace_names_each_one") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(spin) = compile("spin.c", &["-static"], tmp.path(), "spin") else { return };
    let p = Partition::boot("512M", &[]);

    // The spinner's write() is traced as a system call (number 1); then it
    // computes in user mode, and the CPU's count of entries stands still.
    let mut c = p.mcexec_command(&[spin.to_str().unwrap()]).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap();
    let mut b = [0u8; 1];
    c.stdout.take().unwrap().read_exact(&mut b).expect("the spinner printed nothing");
    std::thread::sleep(Duration::from_millis(200));
    let (h1, r1) = trace(&p);
    std::thread::sleep(Duration::from_millis(1000));
    let (h2, _) = trace(&p);
    c.kill().unwrap(); // SIGKILL to our own child
    c.wait().unwrap();
    eprintln!("{}", h2.join("\n"));
    assert_eq!(
        cpu0(&h1, "entries"),
        cpu0(&h2, "entries"),
        "a CPU running one computing thread entered the kernel (a tick?): {h1:?} then {h2:?}"
    );
    assert!(
        r1.iter().any(|r| r.len() == 5 && r[0] == "0" && r[3] == "syscall" && r[4] == "1"),
        "the spinner's write(2) is not in the trace: {r1:?}"
    );
    // Steal time is on (KVM offers it wherever /dev/kvm is KVM).
    let steal = cpu0(&h2, "steal_ns");
    assert!(steal.parse::<u64>().is_ok(), "steal_ns {steal}");
    assert!(p.kmsg().contains("steal time: KVM steal-time accounting on"), "{}", p.kmsg());

    // The LWK's /proc/stat: its CPU, with user time from the spinner and
    // the steal column (8th value).
    let out = p.mcexec(&["/bin/busybox", "cat", "/proc/stat"]);
    assert!(out.status.success());
    let stat = String::from_utf8_lossy(&out.stdout).into_owned();
    let cpu0_line = stat.lines().find(|l| l.starts_with("cpu0 ")).unwrap_or_else(|| panic!("no cpu0 line:\n{stat}"));
    let v: Vec<u64> = cpu0_line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    assert_eq!(v.len(), 10, "{cpu0_line}");
    assert!(v[0] > 0, "no user time after a second of computing: {cpu0_line}");
    assert!(!stat.lines().any(|l| l.starts_with("cpu1 ")), "a 1-CPU LWK shows one CPU:\n{stat}");

    // cat's own calls are in the trace, each with its duration.
    let (_, r3) = trace(&p);
    let calls = r3.iter().filter(|r| r[3] == "syscall").count();
    assert!(calls > r1.len(), "cat's system calls are not in the trace: {r3:?}");
    assert!(r3.iter().all(|r| r[2].parse::<f64>().is_ok_and(|us| us >= 0.0)), "{r3:?}");
}
