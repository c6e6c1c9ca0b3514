//! Two OS instances side by side, and LWK panics (during boot and after).

mod common;
use common::*;

#[test]
fn two_instances_side_by_side() {
    if !can_run("two_instances_side_by_side") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    node.ihkconfig(&["reserve", "cpu", "0-1"]);
    node.ihkconfig(&["reserve", "mem", "512M@0"]);
    let img = image();
    for (os, cpu) in [(0u32, "0"), (1, "1")] {
        assert_eq!(node.ihkconfig(&["create"]), os.to_string());
        node.ihkosctl(os, &["assign", "cpu", cpu]);
        node.ihkosctl(os, &["assign", "mem", "256M@0"]);
        node.ihkosctl(os, &["load", img.to_str().unwrap()]);
        node.ihkosctl(os, &["kargs", "hidos"]);
    }
    assert_eq!(node.ihkconfig(&["get", "os_instances"]), "0,1");
    assert_eq!(
        node.ihkconfig(&["query", "mem"]),
        "",
        "both halves are assigned"
    );
    node.ihkosctl(0, &["boot"]);
    node.ihkosctl(1, &["boot"]);
    for (os, cpu) in [(0u32, 0), (1, 1)] {
        assert_eq!(node.ihkosctl(os, &["get", "status"]), "RUNNING");
        assert_eq!(node.ihkosctl(os, &["query", "cpu"]), cpu.to_string());
        assert_eq!(node.ihkosctl(os, &["query", "mem"]), "268435456@0");
        let kmsg = node.ihkosctl(os, &["kmsg"]);
        assert!(
            kmsg.contains(&format!("Linux CPU {cpu},")),
            "OS {os} runs on CPU {cpu}:\n{kmsg}"
        );
        assert!(kmsg.contains("268435456 bytes"), "{kmsg}");
    }
    // One goes down, the other keeps running.
    node.ihkosctl(0, &["shutdown"]);
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "INACTIVE");
    assert_eq!(node.ihkosctl(1, &["get", "status"]), "RUNNING");
    assert_eq!(node.ihkconfig(&["query", "mem"]), "268435456@0");
    // Destroying the running one shuts it down first.
    node.ihkconfig(&["destroy", "1"]);
    assert_eq!(node.ihkconfig(&["get", "os_instances"]), "0");
    assert_eq!(node.ihkconfig(&["query", "mem"]), "536870912@0");
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}

fn boot_with_kargs(node: &Node, kargs: &str) -> (i32, String) {
    node.ihkconfig(&["reserve", "cpu", "1"]);
    node.ihkconfig(&["reserve", "mem", "128M"]);
    node.ihkconfig(&["create"]);
    node.ihkosctl(0, &["assign", "cpu", "1"]);
    node.ihkosctl(0, &["assign", "mem", "all"]);
    node.ihkosctl(0, &["load", image().to_str().unwrap()]);
    node.ihkosctl(0, &["kargs", kargs]);
    let out = node.run(IHKOSCTL, &["0", "boot"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn panic_during_boot_shows_as_panic_with_the_message() {
    if !can_run("panic_during_boot_shows_as_panic_with_the_message") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    let (code, err) = boot_with_kargs(&node, "hidos ihk_test_panic=0");
    assert_ne!(code, 0, "boot must fail");
    assert!(
        err.contains("panicked") && err.contains("ihk_test_panic"),
        "{err}"
    );
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "PANIC");
    let kmsg = node.ihkosctl(0, &["kmsg"]);
    assert!(
        kmsg.contains("panic") && kmsg.contains("ihk_test_panic"),
        "{kmsg}"
    );
    // A panicked instance shuts down and gives its resources back.
    node.ihkosctl(0, &["shutdown"]);
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "INACTIVE");
    assert_eq!(node.ihkconfig(&["query", "mem"]), "134217728@0");
    // Its last messages stay readable.
    assert!(node.ihkosctl(0, &["kmsg"]).contains("ihk_test_panic"));
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}

#[test]
fn panic_after_boot_turns_running_into_panic() {
    if !can_run("panic_after_boot_turns_running_into_panic") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    let (code, err) = boot_with_kargs(&node, "hidos ihk_test_panic=100");
    assert_eq!(code, 0, "boot succeeds before the panic: {err}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = node.ihkosctl(0, &["get", "status"]);
        if s == "PANIC" {
            break;
        }
        assert!(s == "RUNNING", "unexpected status {s}");
        assert!(std::time::Instant::now() < deadline, "no PANIC within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kmsg = node.ihkosctl(0, &["kmsg"]);
    assert!(kmsg.contains("ihk_test_panic"), "{kmsg}");
    // mcstop+release cleans up a panicked partition too.
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}
