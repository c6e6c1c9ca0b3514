//! MPI jobs on the LWK (docs/shared-memory.md): Debian's Open MPI and MPICH
//! launch `mcexec -n 2` ranks on a 2-CPU partition; the ranks reduce,
//! exchange a 64 KiB message through shared memory (Open MPI's vader /
//! MPICH's UCX: /dev/shm files and SysV segments, as share windows), and
//! each runs on its own LWK CPU. After the jobs ihkd maps no window.

mod common;

use common::{can_run, Partition};

fn build(mpicc: &str, out: &std::path::Path) -> Option<std::path::PathBuf> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/mpi_allreduce.c");
    let exe = out.join(mpicc);
    let st = std::process::Command::new(mpicc).arg("-O2").arg("-o").arg(&exe).arg(&src).status();
    match st {
        Ok(s) if s.success() => Some(exe),
        _ if std::env::var_os("CI").is_some() => panic!("{mpicc} cannot build {}", src.display()),
        _ => {
            eprintln!("skipping: {mpicc} not available");
            None
        }
    }
}

fn check(out: &std::process::Output, what: &str) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what}: {:?}\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let mut cpus: Vec<&str> = Vec::new();
    for rank in 0..2 {
        let line = text.lines().find(|l| l.starts_with(&format!("rank {rank} of 2:"))).unwrap_or_else(|| panic!("{what}: no rank {rank}: {text}"));
        assert!(line.contains("sum 3 ") && line.contains("message ok"), "{what}: {line}");
        cpus.push(line.split("cpu ").nth(1).unwrap().split_whitespace().next().unwrap());
    }
    assert_ne!(cpus[0], cpus[1], "{what}: both ranks on one LWK CPU: {text}");
}

#[test]
fn open_mpi_and_mpich_ranks_on_the_lwk() {
    if !can_run("open_mpi_and_mpich_ranks_on_the_lwk") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(ompi) = build("mpicc.openmpi", tmp.path()) else { return };
    let Some(mpich) = build("mpicc.mpich", tmp.path()) else { return };
    let p = Partition::boot_cpus("0-1", "1G", &[]);
    let mcexec = env!("CARGO_BIN_EXE_mcexec");

    let out = p
        .command(std::path::Path::new("mpirun.openmpi"))
        .args(["-n", "2", mcexec, "-n", "2", ompi.to_str().unwrap()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    check(&out, "Open MPI");

    // Without -n: mcexec takes the count and its local rank from Hydra's
    // environment (MPI_LOCALNRANKS, MPI_LOCALRANKID).
    let out = p
        .command(std::path::Path::new("mpiexec.mpich"))
        .args(["-n", "2", mcexec, mpich.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    check(&out, "MPICH");

    for needle in ["/dev/shm", "SYSV", "memfd:lwk-shared-anon"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !p.ihkd_maps_with(needle).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(p.ihkd_maps_with(needle).is_empty(), "windows left: {:?}", p.ihkd_maps_with(needle));
    }
}

/// A rank that dies of SIGSEGV ends the job: mpirun reports it and ends the
/// other rank's mcexec, and the LWK ends both processes (kmsg) and gets
/// back all the memory they used.
#[test]
fn a_crashing_rank_ends_the_job_and_leaves_nothing() {
    if !can_run("a_crashing_rank_ends_the_job_and_leaves_nothing") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(ompi) = build("mpicc.openmpi", tmp.path()) else { return };
    let p = Partition::boot_cpus("0-1", "1G", &[]);
    let mcexec = env!("CARGO_BIN_EXE_mcexec");
    let free = || p.command(&common::bin("ihkosctl")).args(["0", "query_free_mem"]).output().unwrap().stdout;
    let job = |arg: &str| {
        p.command(std::path::Path::new("mpirun.openmpi"))
            .args(["-n", "2", mcexec, "-n", "2", ompi.to_str().unwrap(), arg])
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // A job that ends well first: the kernel's own first-use allocations
    // (heap, tables) are made then, and stay.
    check(&job("fine"), "the job before the crash");
    // Its processes are torn down after their mcexec exits: wait until the
    // free memory stops changing.
    let settled = || {
        let mut last = free();
        for _ in 0..40 {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let now = free();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    };
    let before = settled();
    let started = std::time::Instant::now();
    let out = job("crash");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the job must fail: {text}");
    assert!(text.contains("signal 11") || text.contains("Segmentation fault"), "{text}");
    eprintln!("job ended {:?} after start", started.elapsed());
    let k = p.kmsg();
    assert!(k.contains("segfault at 8 "), "{k}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while free() != before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(String::from_utf8_lossy(&free()), String::from_utf8_lossy(&before), "memory not given back");
    // The partition takes the next program.
    let again = p.mcexec(&["/bin/true"]);
    assert!(again.status.success());
}

/// Debian's HPC Challenge (Open MPI build) on a 1x2 grid with N=500:
/// every benchmark of the suite runs on the LWK ranks and the HPL residual
/// check passes.
#[test]
fn hpcc_runs_on_the_lwk() {
    if !can_run("hpcc_runs_on_the_lwk") {
        return;
    }
    let Some(hpcc) = ["/usr/bin/hpcc"].iter().map(std::path::Path::new).find(|p| p.exists()) else {
        assert!(std::env::var_os("CI").is_none(), "hpcc is not installed (scripts/setup-deps.sh installs it)");
        eprintln!("skipping: no hpcc");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let inf = std::fs::read_to_string("/usr/share/doc/hpcc/examples/_hpccinf.txt").expect("hpcc's example input");
    // N = 500, one 1x2 process grid.
    let inf: Vec<String> = inf
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            5 => "500          Ns".to_string(),
            10 => "1            Ps".to_string(),
            11 => "2            Qs".to_string(),
            _ => l.to_string(),
        })
        .collect();
    std::fs::write(dir.path().join("hpccinf.txt"), inf.join("\n") + "\n").unwrap();
    let p = Partition::boot_cpus("0-1", "1G", &[]);
    let out = p
        .command(std::path::Path::new("mpirun.openmpi"))
        .args(["-n", "2", env!("CARGO_BIN_EXE_mcexec"), "-n", "2", hpcc.to_str().unwrap()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(dir.path().join("hpccoutf.txt")).unwrap_or_default();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("Success=1"), "{report}");
    assert!(!report.contains("FAILED"), "{report}");
    assert!(report.contains("CommWorldProcs=2"), "{report}");
}

/// Cross-memory attach (what Open MPI's vader uses for single-copy
/// transfers): process_vm_readv/writev between two LWK processes, both
/// ways, 1 MiB checked byte for byte (tests/programs/cma.c).
#[test]
fn process_vm_readv_and_writev_between_lwk_processes() {
    if !can_run("process_vm_readv_and_writev_between_lwk_processes") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(cma) = common::compile("cma.c", &[], tmp.path(), "cma") else { return };
    let linux = common::linux(&[cma.to_str().unwrap()]);
    assert!(linux.status.success(), "cma fails on Linux: {}", String::from_utf8_lossy(&linux.stderr));
    let p = Partition::boot("512M", &[]);
    let out = p.mcexec(&[cma.to_str().unwrap()]);
    common::log(&cma, &[], &out);
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, linux.stdout);
}

/// The Rust MPI programs of examples/mpi-rs (rsmpi, Open MPI) on two LWK
/// ranks: allreduce with the 1 MiB message through vader's CMA single copy
/// (process_vm_readv between the ranks) and through copy-in/copy-out
/// shared memory, then a short ping-pong whose every message is checked.
#[test]
fn rust_mpi_programs_on_the_lwk() {
    if !can_run("rust_mpi_programs_on_the_lwk") {
        return;
    }
    let dir = match mck_tests::build_mpi_examples() {
        Ok(d) => d,
        Err(why) => {
            mck_tests::cannot_run("rust_mpi_programs_on_the_lwk", &why);
            return;
        }
    };
    let p = Partition::boot_cpus("0-1", "1G", &[]);
    let mcexec = env!("CARGO_BIN_EXE_mcexec");
    let job = |mca: &str, prog: &str, args: &[&str]| {
        p.command(std::path::Path::new("mpirun.openmpi"))
            .args(["-n", "2", "--mca", "btl_vader_single_copy_mechanism", mca, mcexec, "-n", "2"])
            .arg(dir.join(prog))
            .args(args)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for mca in ["cma", "none"] {
        let out = job(mca, "mpi-allreduce", &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mca}: {:?}\n{text}\n{err}", out.status);
        // vader reports a mechanism it cannot use on stderr and falls back.
        let lower = err.to_lowercase();
        for word in ["cma", "single", "ptrace", "error"] {
            assert!(!lower.contains(word), "{mca}: '{word}' on stderr: {err}");
        }
        let mut cpus = Vec::new();
        for rank in 0..2 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("rank {rank} of 2:")))
                .unwrap_or_else(|| panic!("{mca}: no line of rank {rank}: {text}"));
            assert!(line.contains("sum 3 ") && line.contains("ring ok large ok"), "{mca}: {line}");
            cpus.push(line.split("cpu ").nth(1).unwrap().split_whitespace().next().unwrap().to_string());
        }
        assert_ne!(cpus[0], cpus[1], "{mca}: both ranks on one LWK CPU: {text}");
    }
    let out = job("cma", "mpi-pingpong", &["20", "8", "65536", "1048576"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{:?}\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().any(|l| l == "done"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("size ")).count(), 3, "{text}");
}

/// A launcher that binds a rank to a CPU the partition reserved (here with
/// taskset, as `--bind-to core` or `--cpu-bind` do): mcexec moves its proxy
/// threads to the Linux CPUs before running the program, unless
/// `MCEXEC_KEEP_AFFINITY=1`; the LWK program itself runs on the LWK CPU.
#[test]
fn a_rank_bound_to_a_partition_cpu_proxies_from_linux_cpus() {
    if !can_run("a_rank_bound_to_a_partition_cpu_proxies_from_linux_cpus") {
        return;
    }
    let p = Partition::boot("512M", &[]);
    let allowed = |pid: u32| -> Vec<String> {
        let mut v = Vec::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
                v.push(l.split_whitespace().nth(1).unwrap_or("").to_string());
            }
        }
        v
    };
    for (keep, want) in [(false, "0"), (true, "1")] {
        let mut cmd = p.command(std::path::Path::new("taskset"));
        cmd.args(["-c", "1", env!("CARGO_BIN_EXE_mcexec"), "/bin/busybox", "sleep", "2"]);
        if keep {
            cmd.env("MCEXEC_KEEP_AFFINITY", "1");
        }
        let mut child = cmd.stdin(std::process::Stdio::null()).spawn().unwrap();
        // taskset execs mcexec: the same pid. Wait until the proxy threads run.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut seen = allowed(child.id());
        while (seen.len() < 2 || seen.iter().any(|c| c != want)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            seen = allowed(child.id());
        }
        let st = child.wait().unwrap();
        assert!(st.success(), "keep={keep}: {st:?}");
        assert!(seen.len() >= 2 && seen.iter().all(|c| c == want), "keep={keep}: threads allowed on {seen:?}, expected {want}");
    }
}
