//! The journal: after `kill -9` of ihkd, the next ihkd (or mcstop+release)
//! restores huge page pools, task affinities and IRQ affinities. Eviction
//! is exercised only on processes this test spawns and on a fake /proc.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::process::{Child, Command, Stdio};

fn affinity(pid: u32) -> BTreeSet<u32> {
    ihk::reserve::evict::get_affinity(pid as i32).unwrap()
}

fn hugepages_raised(node: &Node) -> bool {
    hugepage_counts() != node.hugepages_before
}

#[test]
fn kill_9_then_restart_restores_huge_pages() {
    if !can_run("kill_9_then_restart_restores_huge_pages") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    node.ihkconfig(&["reserve", "mem", "64M"]);
    node.ihkconfig(&["reserve", "cpu", "1"]);
    let raised = hugepages_raised(&node);
    node.kill_ihkd();
    assert!(node.journal_pending(), "a crash leaves the journal");
    if raised {
        assert!(
            hugepages_raised(&node),
            "the pool stays raised until someone replays"
        );
    } else {
        eprintln!(
            "note: the kernel gave no huge pages; the journal holds nothing to restore for memory"
        );
    }
    // The next ihkd replays the journal before serving.
    node.start_ihkd("pin");
    assert!(!node.journal_pending(), "replayed");
    assert_eq!(hugepage_counts(), node.hugepages_before);
    assert_eq!(
        node.ihkconfig(&["query", "cpu"]),
        "",
        "a new ihkd starts with nothing reserved"
    );
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}

#[test]
fn kill_9_then_mcstop_release_restores_the_node() {
    if !can_run("kill_9_then_mcstop_release_restores_the_node") {
        return;
    }
    let mut node = Node::new();
    node.start_ihkd("pin");
    node.ihkconfig(&["reserve", "mem", "64M"]);
    node.kill_ihkd();
    assert!(node.journal_pending());
    // No ihkd runs, but the journal says the node is not clean: mcstop+release
    // starts one to replay it, and stops it again.
    node.ok(MCSTOP, &[]);
    assert!(node.ihkd_pid().is_none());
    node.assert_clean();
}

/// Spawn `sleep` children and a fake /proc showing only them (symlinks to
/// their real /proc entries) plus fake IRQ files.
struct FakeProc {
    root: tempfile::TempDir,
    children: Vec<Child>,
}

impl FakeProc {
    fn new(n: usize) -> FakeProc {
        let root = tempfile::tempdir().unwrap();
        let proc_dir = root.path().join("proc");
        fs::create_dir_all(proc_dir.join("irq/24")).unwrap();
        fs::create_dir_all(proc_dir.join("irq/25")).unwrap();
        fs::write(proc_dir.join("irq/default_smp_affinity"), "3\n").unwrap();
        fs::write(proc_dir.join("irq/24/smp_affinity"), "3\n").unwrap();
        fs::write(proc_dir.join("irq/25/smp_affinity"), "2\n").unwrap();
        let mut children = Vec::new();
        for _ in 0..n {
            let c = Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            std::os::unix::fs::symlink(
                format!("/proc/{}", c.id()),
                proc_dir.join(c.id().to_string()),
            )
            .unwrap();
            children.push(c);
        }
        FakeProc { root, children }
    }
    /// Another child, with the given affinity, shown in the fake /proc.
    fn spawn(&mut self, cpus: &[u32]) -> u32 {
        let c = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        ihk::reserve::evict::set_affinity(c.id() as i32, &cpus.iter().copied().collect()).unwrap();
        std::os::unix::fs::symlink(
            format!("/proc/{}", c.id()),
            self.root.path().join("proc").join(c.id().to_string()),
        )
        .unwrap();
        let pid = c.id();
        self.children.push(c);
        pid
    }
    fn irq(&self, rel: &str) -> String {
        fs::read_to_string(self.root.path().join("proc/irq").join(rel))
            .unwrap()
            .trim()
            .to_string()
    }
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.id()).collect()
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn evict_moves_only_what_the_fake_root_shows_and_release_restores() {
    if !can_run("evict_moves_only_what_the_fake_root_shows_and_release_restores") {
        return;
    }
    let online = ihk::host::topology::online_cpus(&ihk::paths::Roots::default()).unwrap();
    if online.len() < 2 {
        mck_tests::cannot_run("evict test", "needs 2 CPUs");
        return;
    }
    let mut fake = FakeProc::new(2);
    let mut node = Node::new();
    node.env.push((
        "IHK_PROC_ROOT".into(),
        fake.root.path().display().to_string(),
    ));
    let me_before = affinity(std::process::id());
    let all: BTreeSet<u32> = [0, 1].into();
    let movers = fake.pids();
    for &p in &movers {
        assert_eq!(affinity(p), all);
    }
    // Pinned to CPU 0 before the reservation: left alone throughout.
    let pinned = fake.spawn(&[0]);
    node.start_ihkd("evict");
    node.ihkconfig(&["reserve", "cpu", "1"]);
    for &p in &movers {
        assert_eq!(affinity(p), [0].into(), "task {p} evicted from CPU 1");
    }
    // Born during the eviction with the evicted mask (as a child of an
    // evicted parent would be): gets CPU 1 back on release.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let born = fake.spawn(&[0]);
    assert_eq!(fake.irq("24/smp_affinity"), "1");
    assert_eq!(
        fake.irq("25/smp_affinity"),
        "1",
        "an IRQ only on CPU 1 goes to the Linux CPUs"
    );
    assert_eq!(fake.irq("default_smp_affinity"), "1");
    assert_eq!(
        affinity(std::process::id()),
        me_before,
        "the test itself was not touched"
    );
    // Release gives everything back.
    node.ihkconfig(&["release", "cpu", "1"]);
    for &p in &movers {
        assert_eq!(affinity(p), all);
    }
    assert_eq!(
        affinity(born),
        all,
        "a task born during the eviction is widened"
    );
    assert_eq!(
        affinity(pinned),
        [0].into(),
        "a task pinned before stays pinned"
    );
    assert_eq!(fake.irq("24/smp_affinity"), "3");
    assert_eq!(fake.irq("25/smp_affinity"), "2");
    assert_eq!(fake.irq("default_smp_affinity"), "3");
    assert!(!node.journal_pending());

    // Evict again, crash, and let the next ihkd put things back.
    node.ihkconfig(&["reserve", "cpu", "1"]);
    assert_eq!(fake.irq("24/smp_affinity"), "1");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let born2 = fake.spawn(&[0]);
    node.kill_ihkd();
    assert!(node.journal_pending());
    for &p in &movers {
        assert_eq!(affinity(p), [0].into(), "still evicted after the crash");
    }
    node.start_ihkd("evict");
    for &p in movers.iter().chain([born, born2].iter()) {
        assert_eq!(affinity(p), all, "restored by the journal replay");
    }
    assert_eq!(affinity(pinned), [0].into());
    assert_eq!(fake.irq("24/smp_affinity"), "3");
    assert_eq!(fake.irq("25/smp_affinity"), "2");
    assert_eq!(fake.irq("default_smp_affinity"), "3");
    assert!(!node.journal_pending());
    node.ok(MCSTOP, &[]);
    node.reap_ihkd();
    node.assert_clean();
}

#[test]
fn evict_boots_a_partition_and_mcstop_restores() {
    if !can_run("evict_boots_a_partition_and_mcstop_restores") {
        return;
    }
    let fake = FakeProc::new(1);
    let mut node = Node::new();
    node.env.push((
        "IHK_PROC_ROOT".into(),
        fake.root.path().display().to_string(),
    ));
    node.env.push(("IHK_ISOLATION".into(), "evict".into()));
    node.ok(MCREBOOT, &["-c", "1", "-m", "64M"]);
    assert_eq!(node.ihkosctl(0, &["get", "status"]), "RUNNING");
    let p = fake.pids()[0];
    assert_eq!(affinity(p), [0].into());
    node.ok(MCSTOP, &[]);
    assert_eq!(affinity(p), [0, 1].into());
    assert_eq!(fake.irq("24/smp_affinity"), "3");
    node.assert_clean();
}
