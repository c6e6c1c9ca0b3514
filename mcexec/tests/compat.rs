//! The CI subset of `scripts/compat.sh` (issue 19): a few CPython
//! regression test modules, busybox applets and stress-ng stressors, run
//! natively and under mcexec on a partition the script boots; fails when
//! the LWK loses what Linux passes (a CPython test, an applet's status or
//! output, a stressor). The whole runs and their results: docs/compat.md.

mod common;

use std::path::Path;
use std::process::Command;

/// CPython modules of the subset: quick under mcexec on an emulating host.
const PYTHON: &str = "test_fcntl test_select test_resource";
/// busybox cases of scripts/compat/busybox.txt, by name.
const BUSYBOX: &[&str] = &["ls-l", "sort", "awk", "find", "md5sum", "tar", "files", "mkfifo", "subshell", "exit-status", "kill-wait"];
const STRESSORS: &str = "access chdir fork pipe sigpending";

#[test]
fn compat_subset_passes_on_the_lwk_where_linux_passes() {
    if !common::can_run("compat_subset_passes_on_the_lwk_where_linux_passes") {
        return;
    }
    for (what, need) in [("/usr/bin/python3.11", "python3.11"), ("/usr/lib/python3.11/test/test_fcntl.py", "libpython3.11-testsuite"), ("/bin/busybox", "busybox-static"), ("/usr/bin/stress-ng", "stress-ng")] {
        if !Path::new(what).exists() {
            // scripts/setup-deps.sh installs it: under CI this fails.
            if !mck_tests::cannot_run("compat subset", &format!("{what} missing (apt-get install {need})")) {
                return;
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // ihkd, mcreboot, mcstop-release and the LWK image, next to mcexec.
    let bin = common::bin_dir();
    let out = tempfile::Builder::new().prefix("mck-compat-").tempdir().unwrap();
    // A busybox list of just the chosen cases.
    let all = std::fs::read_to_string(root.join("scripts/compat/busybox.txt")).unwrap();
    let chosen: Vec<&str> = all.lines().filter(|l| BUSYBOX.iter().any(|n| l.split('\t').next() == Some(*n))).collect();
    assert_eq!(chosen.len(), BUSYBOX.len(), "cases missing from scripts/compat/busybox.txt");
    let list = out.path().join("busybox.txt");
    std::fs::write(&list, chosen.join("\n") + "\n").unwrap();

    let lock = mck_tests::partition_lock();
    let run = Command::new(root.join("scripts/compat.sh"))
        .args(["python", "busybox", "stress"])
        .env("MCK_COMPAT_BIN", bin)
        .env("MCK_COMPAT_LOCKED", "1")
        .env("MCK_COMPAT_OUT", out.path())
        .env("MCK_COMPAT_MODULES", PYTHON)
        .env("MCK_COMPAT_BUSYBOX", &list)
        .env("MCK_COMPAT_STRESSORS", STRESSORS)
        .env("MCK_COMPAT_TIMEOUT", "300")
        .env("MCK_MEM", "1G")
        .env_remove("IHK_PROC_ROOT")
        .env_remove("IHK_SYS_ROOT")
        .output()
        .expect("running scripts/compat.sh");
    drop(lock);
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "scripts/compat.sh failed");
    let results = std::fs::read_to_string(out.path().join("results.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = results.lines().map(|l| l.split('\t').collect()).collect();
    let count = |kind: &str| rows.iter().filter(|r| r[0] == kind).count();
    assert_eq!(count("python"), PYTHON.split_whitespace().count(), "{results}");
    assert_eq!(count("busybox"), BUSYBOX.len(), "{results}");
    assert_eq!(count("stress-ng"), STRESSORS.split_whitespace().count(), "{results}");
    let mut lost = Vec::new();
    for r in &rows {
        // Column 3: tests (or runs) passed on Linux; 10: the ratio kept on the LWK.
        if r[0] == "python" {
            assert!(r[3].parse::<u32>().unwrap() > 0, "no CPython test passed on Linux: {r:?}");
        }
        if r[10] != "1.000" {
            lost.push(format!("{} {}: {}", r[0], r[1], r.get(11).unwrap_or(&"")));
        }
    }
    assert!(lost.is_empty(), "passes on Linux, not on the LWK:\n{}", lost.join("\n"));
}
