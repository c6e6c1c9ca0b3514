//! The Rust API: threads started with `Uti::spawn` run where the hints say
//! (checked with sched_getcpu and sched_getaffinity on this machine), get
//! SCHED_FIFO for HIGH_PRIORITY, share the usage table, and plans computed
//! over a synthetic topology match the hints.

use uti::registry::Registry;
use uti::topology::{self, Source};
use uti::{flags, Attr, CpuSet, Env, Kernel, Uti};

fn set(s: &str) -> CpuSet {
    CpuSet::parse(s).unwrap()
}

/// What a utility thread observes about itself.
#[derive(Debug)]
struct Seen {
    cpu: usize,
    affinity: CpuSet,
    computed: Option<CpuSet>,
    fifo: bool,
}

fn observe() -> Seen {
    let mut mask = [0u64; 16];
    // SAFETY: pid 0 is the calling thread; the buffer has the size passed.
    let rc = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of_val(&mask), mask.as_mut_ptr().cast())
    };
    assert_eq!(rc, 0);
    // SAFETY: no arguments.
    let cpu = unsafe { libc::sched_getcpu() };
    // SAFETY: pid 0 is the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    Seen {
        cpu: cpu as usize,
        affinity: CpuSet::from_mask_words(&mask),
        computed: uti::current_cpus(),
        fifo: policy == libc::SCHED_FIFO,
    }
}

/// Runs `f` on a thread of our own pinned to `cpu` (the test never re-pins
/// a thread it did not create).
fn from_cpu<T: Send + 'static>(cpu: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let mask = CpuSet::from_iter([cpu]).to_mask_words(16);
        // SAFETY: pid 0 is this (test-created) thread; buffer size matches.
        let rc = unsafe { libc::sched_setaffinity(0, mask.len() * 8, mask.as_ptr().cast()) };
        assert_eq!(rc, 0, "cannot pin the test's own thread to CPU {cpu}");
        f()
    })
    .join()
    .unwrap()
}

fn this_machine(dir: &tempfile::TempDir) -> Uti {
    let m = topology::load(&Source::Default).unwrap();
    Uti::with_registry(m, Registry::open(&dir.path().join("counter")).unwrap())
}

#[test]
fn threads_run_where_the_hints_say_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let uti = std::sync::Arc::new(this_machine(&dir));
    let allowed = uti.machine().allowed.clone();
    let caller = allowed.first().unwrap();
    let core = uti
        .machine()
        .domain_of(uti::machine::Sharing::Core, caller)
        .unwrap()
        .clone();
    let cases = [
        (Attr::new(), allowed.clone()),
        (
            Attr::new().with(flags::SAME_L1),
            &allowed
                & uti
                    .machine()
                    .domain_of(uti::machine::Sharing::L1, caller)
                    .unwrap_or(&allowed),
        ),
        (Attr::new().with(flags::NON_COOPERATIVE), allowed.clone()),
    ];
    for (attr, want) in cases {
        let u = uti.clone();
        let seen = from_cpu(caller, move || {
            u.spawn(&attr, &Env::default(), observe)
                .unwrap()
                .join()
                .unwrap()
        });
        assert_eq!(seen.computed.as_ref(), Some(&want), "{attr:?}");
        assert_eq!(seen.affinity, want, "{attr:?}");
        assert!(want.contains(seen.cpu), "{attr:?}: {seen:?}");
    }
    if allowed.len() > core.len() {
        let u = uti.clone();
        let seen = from_cpu(caller, move || {
            u.spawn(
                &Attr::new().with(flags::DIFFERENT_L2),
                &Env::default(),
                observe,
            )
            .unwrap()
            .join()
            .unwrap()
        });
        assert!(!seen.affinity.contains(caller), "{seen:?}");
        assert!(seen.affinity.contains(seen.cpu));
    }
}

#[test]
fn high_priority_gets_sched_fifo_when_permitted() {
    let permitted = std::process::Command::new("chrt")
        .args(["-f", "1", "true"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let dir = tempfile::tempdir().unwrap();
    let uti = this_machine(&dir);
    let seen = uti
        .spawn(
            &Attr::new().with(flags::HIGH_PRIORITY),
            &Env::default(),
            observe,
        )
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(seen.fifo, permitted, "{seen:?}");
}

#[test]
fn exclusive_threads_spread_and_release_their_cpus() {
    let dir = tempfile::tempdir().unwrap();
    let uti = std::sync::Arc::new(this_machine(&dir));
    let allowed = uti.machine().allowed.clone();
    if allowed.len() < 2 {
        mck_tests::cannot_run("exclusive_threads_spread_and_release_their_cpus", "needs two allowed CPUs");
        return;
    }
    let caller = allowed.first().unwrap();
    let u = uti.clone();
    let (a, b) = from_cpu(caller, move || {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let attr = Attr::new().with(flags::EXCLUSIVE_CPU);
        let hold = |rx: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>| {
            move || {
                let seen = observe();
                let _ = rx.lock().unwrap().recv();
                seen
            }
        };
        let t1 = u.spawn(&attr, &Env::default(), hold(rx.clone())).unwrap();
        let t2 = u.spawn(&attr, &Env::default(), hold(rx.clone())).unwrap();
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        (t1.join().unwrap(), t2.join().unwrap())
    });
    assert_eq!(a.affinity.len(), 1);
    assert_eq!(b.affinity.len(), 1);
    assert_ne!(a.affinity, b.affinity, "both exclusive threads on one CPU");
    assert!(
        !a.affinity.contains(caller),
        "the first exclusive thread should avoid the caller's CPU"
    );
    assert_eq!(a.affinity.first(), Some(a.cpu));
    assert_eq!(b.affinity.first(), Some(b.cpu));
    let reg = Registry::open(&dir.path().join("counter")).unwrap();
    assert!(
        reg.usage().unwrap().is_empty(),
        "threads did not release their CPUs"
    );
}

#[test]
fn plans_over_a_synthetic_topology() {
    let m = topology::load(&Source::Synthetic(
        "pack:2 numa:1 l3:2 l2:4 l1:1 core:1 pu:2".into(),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let uti = Uti::with_registry(m, Registry::open(&dir.path().join("c")).unwrap());
    let env = Env::default();
    let plan = |attr: Attr, caller: usize| uti.plan(&attr, &env, Some(caller), None);
    let p = plan(Attr::new().with(flags::SAME_L3), 12).unwrap();
    assert_eq!(p.cpus, set("8-15"));
    assert!(!p.apply_affinity);
    assert_eq!(p.kernel, Kernel::Fwk);
    assert_eq!(
        plan(Attr::new().with(flags::DIFFERENT_NUMA_DOMAIN), 20)
            .unwrap()
            .cpus,
        set("0-15")
    );
    assert_eq!(
        plan(Attr::new().numa_set(&[1]).unwrap(), 0).unwrap().cpus,
        set("16-31")
    );
    // Least-used picks while earlier plans still hold their claims.
    let p1 = plan(
        Attr::new().with(flags::SAME_L3).with(flags::CPU_INTENSIVE),
        8,
    )
    .unwrap();
    let p2 = plan(
        Attr::new().with(flags::SAME_L3).with(flags::CPU_INTENSIVE),
        8,
    )
    .unwrap();
    assert_eq!((p1.cpus.clone(), p2.cpus.clone()), (set("10"), set("11")));
    drop((p1, p2));
    let p3 = plan(
        Attr::new().with(flags::SAME_L3).with(flags::CPU_INTENSIVE),
        8,
    )
    .unwrap();
    assert_eq!(p3.cpus, set("10"));
    let err = plan(
        Attr::new().with(flags::SAME_L1).with(flags::DIFFERENT_L1),
        0,
    )
    .unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    // The caller's CPU must exist in the topology for relative hints.
    assert_eq!(
        plan(Attr::new().with(flags::SAME_L2), 64)
            .unwrap_err()
            .errno(),
        libc::EINVAL
    );
}
