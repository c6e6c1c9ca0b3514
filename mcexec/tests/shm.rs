//! Shared memory on the LWK (share windows, docs/shared-memory.md): shared
//! anonymous memory, a process-shared semaphore and SysV shm across fork,
//! a memfd, and a /dev/shm file that the LWK program and this (Linux) test
//! write and read through the same pages while both map it; afterwards ihkd
//! no longer maps the file (the LWK released the window). Also Debian's
//! stress-ng futex stressor, whose waiters and wakers are a parent and a
//! child sharing MAP_SHARED|MAP_ANONYMOUS memory, on a 2-CPU partition.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{can_run, compile, Partition};

#[test]
fn shared_memory_is_the_same_pages_for_lwk_processes_and_linux() {
    if !can_run("shared_memory_is_the_same_pages_for_lwk_processes_and_linux") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(prog) = compile("shm.c", &["-pthread"], tmp.path(), "shm") else { return };
    let name = format!("mck-shm-test-{}", std::process::id());
    let path = format!("/dev/shm/{name}");
    /// Removes the segment also when the test fails.
    struct Unlink(String);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _unlink = Unlink(path.clone());
    let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    file.set_len(4096).unwrap();
    let p = Partition::boot("512M", &[]);

    let mut child = p
        .mcexec_command(&[prog.to_str().unwrap(), &path])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("mcexec");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..4 {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        lines.push(l.trim().to_string());
    }
    assert_eq!(lines, ["anon 42", "sem 7", "memfd hello", "sysv 9 shmdt 0"], "{lines:?}");
    // The program's stores show in the file (Linux's page cache) while it
    // still maps it, and ours show in its mapping.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut head = [0u8; 8];
    while Instant::now() < deadline {
        file.read_exact_at(&mut head, 0).unwrap();
        if &head == b"from-lwk" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(&head, b"from-lwk", "the LWK's store did not reach the file");
    assert_eq!(p.ihkd_maps_with(&name).len(), 1, "ihkd maps the file as the window");
    file.write_all_at(b"L", 2048).unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {rest}");
    assert_eq!(rest.trim(), "linux L", "the LWK program did not see Linux's store");
    // The process is gone: the LWK released the windows (asynchronously,
    // over the master channel), ihkd unmapped them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = || [name.as_str(), "SYSV", "memfd:lwk-"].iter().any(|n| !p.ihkd_maps_with(n).is_empty());
    while left() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(p.ihkd_maps_with(&name).is_empty(), "window still mapped: {:?}", p.ihkd_maps_with(&name));
    assert!(p.ihkd_maps_with("SYSV").is_empty() && p.ihkd_maps_with("memfd:lwk-").is_empty(), "windows left in ihkd");
}

#[test]
fn stress_ng_futex_between_processes_on_two_cpus() {
    if !can_run("stress_ng_futex_between_processes_on_two_cpus") {
        return;
    }
    let p = Partition::boot_cpus("0-1", "1G", &[]);
    let out = p.mcexec(&["stress-ng", "--futex", "2", "--futex-ops", "200", "--timeout", "120", "--metrics-brief"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{:?}: {text}", out.status);
    assert!(text.contains("successful run completed"), "{text}");
    assert!(!text.contains("failed: 1") && !text.contains("failed: 2"), "{text}");
}
