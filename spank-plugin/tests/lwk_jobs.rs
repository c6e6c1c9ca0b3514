//! Jobs on the LWK through Slurm, end to end, with the real tools built in
//! this workspace (mcreboot, mcstop+release, ihkconfig, ihkosctl, ihkd,
//! mcexec and the LWK image, from the same cargo profile directory) and a
//! real KVM partition in `pin` isolation (only the vCPU thread is pinned;
//! no other process or IRQ is changed).
//!
//! Each test reads like a user's session: submit, check the output and
//! exit code, then check the node was given back: no partition record, no
//! ihkd, nothing reserved, no mcexec of the job, hugepage counts as before.

mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::{
    can_boot_partitions, is_zombie, job_processes, stderr, stdout, wait_for, wait_job_end, Cluster, Tools,
    SERIAL,
};

fn site(tools: &Tools, dir: &Path, release: &str) -> String {
    format!(
        "mcreboot = \"{mcreboot}\"\n\
         mcstop_release = \"{mcstop}\"\n\
         ihkconfig = \"{ihkconfig}\"\n\
         ihkosctl = \"{ihkosctl}\"\n\
         mcexec = \"{mcexec}\"\n\
         runtime_dir = \"{d}/ihk\"\n\
         state_dir = \"{d}/mckernel-state\"\n\
         isolation = \"pin\"\n\
         linux_cpus = \"0\"\n\
         max_memory_fraction = 0.5\n\
         release = \"{release}\"\n\
         kill_grace_secs = 3\n\
         boot_timeout_secs = 120\n",
        mcreboot = tools.path("mcreboot").display(),
        mcstop = tools.path("mcstop-release").display(),
        ihkconfig = tools.path("ihkconfig").display(),
        ihkosctl = tools.path("ihkosctl").display(),
        mcexec = tools.path("mcexec").display(),
        d = dir.display(),
    )
}

/// Hugepage counts, or None when another ihkd runs: the pools are
/// machine-wide and another IHK user on a shared development machine
/// changes them too (CI runs nothing else).
fn hugepages_if_alone(c: Option<&Cluster>) -> Option<Vec<(PathBuf, String)>> {
    if let Some(other) = foreign_ihkd(c) {
        eprintln!("note: hugepage counts not compared: another ihkd runs ({other})");
        return None;
    }
    Some(hugepages())
}

fn hugepages() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from("/sys/kernel/mm/hugepages")];
    if let Ok(nodes) = std::fs::read_dir("/sys/devices/system/node") {
        dirs.extend(nodes.flatten().map(|n| n.path().join("hugepages")));
    }
    for d in dirs {
        let Ok(sizes) = std::fs::read_dir(&d) else {
            continue;
        };
        for s in sizes.flatten() {
            let f = s.path().join("nr_hugepages");
            if let Ok(v) = std::fs::read_to_string(&f) {
                out.push((f, v.trim().to_string()));
            }
        }
    }
    out.sort();
    out
}

/// The node is as before the job: checked after every scenario.
fn assert_node_clean(
    c: &mut Cluster,
    tools: &Tools,
    hugepages_before: &Option<Vec<(PathBuf, String)>>,
    job: Option<&str>,
) {
    c.wait_idle_after_jobs();
    assert!(
        !c.path("mckernel-state/partition.json").exists(),
        "partition record left: {}",
        std::fs::read_to_string(c.path("mckernel-state/partition.json")).unwrap_or_default()
    );
    assert!(!c.path("ihk/mcd0").exists(), "ihkd's socket is still there");
    assert!(
        !c.path("ihk/ihkd.pid").exists(),
        "ihkd's pid file is still there"
    );
    let q = Command::new(tools.path("ihkconfig"))
        .args(["0", "query", "cpu"])
        .env("IHK_RUNTIME_DIR", c.path("ihk"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&q.stdout).trim().is_empty(),
        "ihkconfig 0 query cpu: {}",
        String::from_utf8_lossy(&q.stdout)
    );
    if let (Some(before), Some(now)) = (hugepages_before, hugepages_if_alone(Some(c))) {
        assert_eq!(now, *before, "hugepage counts changed");
    }
    if let Some(job) = job {
        assert!(
            job_processes(&tools.path("mcexec"), job).is_empty(),
            "mcexec of job {job} left"
        );
    }
}

/// The command line of an ihkd that is not this cluster's, if one runs.
fn foreign_ihkd(c: Option<&Cluster>) -> Option<String> {
    let ours = c.map(|c| c.path("ihk").display().to_string());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        e.file_name().to_string_lossy().parse::<i32>().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let exe = cmd.split_whitespace().next()?.to_string();
        let is_ours = ours.as_ref().is_some_and(|o| cmd.contains(o.as_str()));
        (exe.rsplit('/').next() == Some("ihkd") && !is_ours).then_some(cmd)
    })
}

#[test]
fn steps_run_on_the_lwk_and_the_node_is_given_back() {
    if !can_boot_partitions("steps_run_on_the_lwk_and_the_node_is_given_back") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _partitions = mck_tests::partition_lock();
    let tools = Tools::find();
    let before = hugepages_if_alone(None);
    let mut c = Cluster::start(|d| site(&tools, d, "job"));
    c.release_with(&tools.path("mcstop-release"));

    let o = c.srun(&["--mckernel=512M@0", "/bin/busybox", "hostname"]);
    assert!(
        o.status.success(),
        "srun failed: {}\n{}",
        stderr(&o),
        c.slurmd_log_tail(40)
    );
    assert_eq!(stdout(&o), c.node);
    let job = c.last_job();
    assert!(
        c.slurmd_log().contains(&format!(
            "mckernel: job {job} step 0: booted the LWK partition (CPUs 1 and memory 512M@0)"
        )),
        "{}",
        c.slurmd_log_tail(40)
    );
    assert_node_clean(&mut c, &tools, &before, Some(&job));

    // Two tasks on one node: two LWK processes, each with its own rank.
    let o = c.srun(&[
        "-n",
        "2",
        "--mckernel=512M@0",
        "--mckernel-cpus=1",
        "--mckernel-kargs=allow_oversubscribe",
        "/bin/busybox",
        "sh",
        "-c",
        "echo rank $SLURM_PROCID",
    ]);
    assert!(
        o.status.success(),
        "srun -n 2 failed: {}\n{}",
        stderr(&o),
        c.slurmd_log_tail(40)
    );
    let mut lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["rank 0", "rank 1"]);
    assert_node_clean(&mut c, &tools, &before, None);

    // The step's exit code is the program's.
    let o = c.srun(&["--mckernel=512M@0", "/bin/busybox", "sh", "-c", "exit 42"]);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    assert_node_clean(&mut c, &tools, &before, None);
}

#[test]
fn a_batch_job_boots_once_for_its_three_steps() {
    if !can_boot_partitions("a_batch_job_boots_once_for_its_three_steps") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _partitions = mck_tests::partition_lock();
    let tools = Tools::find();
    let before = hugepages_if_alone(None);
    let mut c = Cluster::start(|d| site(&tools, d, "job"));
    c.release_with(&tools.path("mcstop-release"));
    let script = c.path("three-steps.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             {mcexec} /bin/busybox echo zero || exit 1\n\
             srun /bin/busybox echo one || exit 1\n\
             srun /bin/busybox echo two || exit 1\n\
             srun /bin/busybox echo three || exit 1\n\
             IHK_RUNTIME_DIR={rt} {ihkosctl} 0 kmsg > {kmsg}\n",
            mcexec = tools.path("mcexec").display(),
            rt = c.path("ihk").display(),
            ihkosctl = tools.path("ihkosctl").display(),
            kmsg = c.path("kmsg.txt").display(),
        ),
    )
    .unwrap();
    let out = c.path("three-steps.out");
    let err = c.path("three-steps.err");
    let job = c.sbatch(&[
        "--mckernel=512M@0",
        "-o",
        out.to_str().unwrap(),
        "-e",
        err.to_str().unwrap(),
        script.to_str().unwrap(),
    ]);
    wait_job_end(&c, &job, Duration::from_secs(300));
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(
        output.trim(),
        "zero\none\ntwo\nthree",
        "job output:\n{output}\nerrors:\n{}\n{}",
        std::fs::read_to_string(&err).unwrap_or_default(),
        c.slurmd_log_tail(60)
    );
    assert_eq!(c.job_state(&job), "COMPLETED");
    let kmsg = std::fs::read_to_string(c.path("kmsg.txt")).unwrap();
    assert_eq!(
        kmsg.matches("IHK/McKernel booted.").count(),
        1,
        "kmsg:\n{kmsg}"
    );
    // Under release = "job" the batch step boots the batch node's
    // partition (the script's own mcexec ran on it) and the steps reuse it.
    let log = c.slurmd_log();
    assert_eq!(
        log.matches(&format!("mckernel: job {job} batch step: booted"))
            .count(),
        1,
        "{}",
        c.slurmd_log_tail(60)
    );
    assert_eq!(
        log.matches("booted the LWK partition").count(),
        1,
        "{}",
        c.slurmd_log_tail(60)
    );
    assert_node_clean(&mut c, &tools, &before, Some(&job));
}

#[test]
fn scancel_and_a_killed_slurmstepd_leave_the_node_clean() {
    if !can_boot_partitions("scancel_and_a_killed_slurmstepd_leave_the_node_clean") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _partitions = mck_tests::partition_lock();
    let tools = Tools::find();
    let before = hugepages_if_alone(None);
    let mut c = Cluster::start(|d| site(&tools, d, "job"));
    c.release_with(&tools.path("mcstop-release"));
    let mcexec = tools.path("mcexec");

    // scancel of a running job.
    let job = c.sbatch(&["--mckernel=512M@0", "--wrap", "srun /bin/busybox sleep 300"]);
    wait_for(
        &format!("mcexec of job {job}"),
        Duration::from_secs(120),
        || !job_processes(&mcexec, &job).is_empty(),
    );
    let o = c.cmd("/usr/bin/scancel").arg(&job).output().unwrap();
    assert!(o.status.success());
    assert_node_clean(&mut c, &tools, &before, Some(&job));

    // kill -9 of the step's slurmstepd: its mcexec is orphaned; ending
    // the job runs the epilogue, which ends it and frees the node.
    let mut srun = c
        .cmd("/usr/bin/srun")
        .args(["--mckernel=512M@0", "/bin/busybox", "sleep", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the step's mcexec", Duration::from_secs(120), || {
        !c.last_job().is_empty() && !job_processes(&mcexec, &c.last_job()).is_empty()
    });
    let job = c.last_job();
    let stepd = slurmstepd_of(&format!("{job}.0")).expect("the step's slurmstepd");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(stepd),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let o = c.cmd("/usr/bin/scancel").arg(&job).output().unwrap();
    assert!(o.status.success());
    assert_node_clean(&mut c, &tools, &before, Some(&job));
    assert!(
        c.slurmd_log().contains(&format!(
            "mckernel: epilog of job {job}: ended leftover mcexec processes"
        )),
        "the epilogue did not end the orphaned mcexec:\n{}",
        c.slurmd_log_tail(40)
    );
    let _ = srun.kill();
    let _ = srun.wait();
}

#[test]
fn a_boot_failure_fails_the_step_and_reserves_nothing() {
    if !can_boot_partitions("a_boot_failure_fails_the_step_and_reserves_nothing") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _partitions = mck_tests::partition_lock();
    let tools = Tools::find();
    let before = hugepages_if_alone(None);
    // The site allows all of a NUMA node's memory, more than ihkd can take
    // (it leaves Linux at least 5% of the free memory): the request passes
    // the plugin's checks and the boot itself fails.
    let mut c = Cluster::start(|d| {
        site(&tools, d, "job").replace("max_memory_fraction = 0.5", "max_memory_fraction = 1.0")
    });
    c.release_with(&tools.path("mcstop-release"));
    let node0 =
        mckernel_slurm::topology::Topology::read(&mckernel_slurm::config::SiteConfig::default())
            .unwrap()
            .numa[&0]
            .mem_total;
    let all = format!("--mckernel={}M@0", (node0 >> 22) * 4);
    let o = c.srun(&[&all, "/bin/busybox", "true"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("mckernel: booting the LWK failed: mcreboot -c 1 -m"),
        "{err}"
    );
    assert!(err.contains("nothing is left reserved"), "{err}");
    assert_node_clean(&mut c, &tools, &before, None);
}

/// With `release = "step"` the end of each step shuts the partition down
/// and the next step boots again; the epilogue then finds nothing to do.
#[test]
fn release_at_step_end_when_the_site_asks() {
    if !can_boot_partitions("release_at_step_end_when_the_site_asks") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _partitions = mck_tests::partition_lock();
    let tools = Tools::find();
    let before = hugepages_if_alone(None);
    let mut c = Cluster::start(|d| site(&tools, d, "step"));
    c.release_with(&tools.path("mcstop-release"));
    let out = c.path("two-steps.out");
    let job = c.sbatch(&[
        "--mckernel=512M@0",
        "-o",
        out.to_str().unwrap(),
        "-e",
        c.path("two-steps.err").to_str().unwrap(),
        "--wrap",
        "srun /bin/busybox echo first && srun /bin/busybox echo second",
    ]);
    wait_job_end(&c, &job, Duration::from_secs(300));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap_or_default().trim(),
        "first\nsecond"
    );
    assert_node_clean(&mut c, &tools, &before, Some(&job));
    let log = c.slurmd_log();
    assert_eq!(log.matches("booted the LWK partition").count(), 2);
    assert_eq!(
        log.matches(&format!(
            "mckernel: job {job}: shut down job {job}'s LWK partition"
        ))
        .count(),
        2
    );
    assert!(
        !log.contains(&format!("epilog of job {job}: shut down")),
        "the epilogue found a partition"
    );
}

/// ihkd killed while the job runs: the epilogue's mcstop+release replays
/// the journal the dead daemon left, and the node is as before.
#[test]
fn a_killed_ihkd_is_cleaned_up_by_the_epilogue() {
    if !can_boot_partitions("a_killed_ihkd_is_cleaned_up_by_the_epilogue") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _partitions = mck_tests::partition_lock();
    let tools = Tools::find();
    let before = hugepages_if_alone(None);
    let mut c = Cluster::start(|d| site(&tools, d, "job"));
    c.release_with(&tools.path("mcstop-release"));
    let mcexec = tools.path("mcexec");
    let job = c.sbatch(&["--mckernel=512M@0", "--wrap", "srun /bin/busybox sleep 300"]);
    wait_for(
        &format!("mcexec of job {job}"),
        Duration::from_secs(120),
        || !job_processes(&mcexec, &job).is_empty(),
    );
    let pid: i32 = std::fs::read_to_string(c.path("ihk/ihkd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // This ihkd was started by the test's own slurmd (through mcreboot).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("ihkd to die", Duration::from_secs(10), || {
        !mckernel_slurm::state::pid_alive(pid) || is_zombie(pid)
    });
    let o = c.cmd("/usr/bin/scancel").arg(&job).output().unwrap();
    assert!(o.status.success());
    assert_node_clean(&mut c, &tools, &before, Some(&job));
}

/// The partition belongs to the job's user: a job of `nobody` boots it
/// with the IHK sockets owned by nobody, and runs its steps as nobody.
#[test]
fn the_partition_belongs_to_the_jobs_user() {
    if !can_boot_partitions("the_partition_belongs_to_the_jobs_user") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _partitions = mck_tests::partition_lock();
    let tools = Tools::find();
    let before = hugepages_if_alone(None);
    let mut c = Cluster::start(|d| site(&tools, d, "job"));
    c.release_with(&tools.path("mcstop-release"));
    let work = c.path("nobody");
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(65534), Some(65534)).unwrap();
    let script = work.join("job.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh
srun /bin/busybox id -u || exit 1
stat -c '%u %U' {}
",
            c.path("ihk/mcos0").display()
        ),
    )
    .unwrap();
    let out = work.join("job.out");
    let job = c.sbatch(&[
        "--uid=65534",
        "--gid=65534",
        "--mckernel=512M@0",
        "-D",
        work.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-e",
        work.join("job.err").to_str().unwrap(),
        script.to_str().unwrap(),
    ]);
    wait_job_end(&c, &job, Duration::from_secs(300));
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(
        output.trim(),
        "65534\n65534 nobody",
        "job output:\n{output}\nerrors:\n{}\n{}",
        std::fs::read_to_string(work.join("job.err")).unwrap_or_default(),
        c.slurmd_log_tail(40)
    );
    assert!(c.slurmd_log().contains(&format!(
        "job {job} batch step: booted the LWK partition (CPUs 1 and memory 512M@0) for uid 65534"
    )));
    assert_node_clean(&mut c, &tools, &before, Some(&job));
}

/// The slurmstepd serving `<job>.<step>` (its command line names the step).
fn slurmstepd_of(step: &str) -> Option<i32> {
    let needle = format!("[{step}]");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (cmd.starts_with("slurmstepd") && cmd.contains(&needle)).then_some(pid)
    })
}
