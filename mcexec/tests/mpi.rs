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

    let out = p
        .command(std::path::Path::new("mpiexec.mpich"))
        .args(["-n", "2", mcexec, "-n", "2", mpich.to_str().unwrap()])
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
