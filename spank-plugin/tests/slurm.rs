//! The plugin in a real Slurm 22.05 cluster on loopback (see cluster/):
//! it loads, its options reach srun and sbatch, and bad requests fail at
//! submission with a message while the node stays idle and clean.
//! The runs on the LWK are in lwk_jobs.rs.

mod cluster;

use std::path::Path;

use cluster::{skip_reason, Cluster, SERIAL};

fn node0_mem_gib() -> u64 {
    let text = std::fs::read_to_string("/sys/devices/system/node/node0/meminfo")
        .or_else(|_| std::fs::read_to_string("/proc/meminfo"))
        .unwrap();
    let kb: u64 = text
        .lines()
        .find(|l| l.contains("MemTotal:"))
        .and_then(|l| l.split(':').nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb >> 20
}

fn site(dir: &Path) -> String {
    format!(
        "prefix = \"{d}/no-ihk-installed\"\n\
         runtime_dir = \"{d}/ihk\"\n\
         state_dir = \"{d}/mckernel-state\"\n\
         isolation = \"pin\"\n\
         linux_cpus = \"0\"\n\
         max_memory_fraction = 0.5\n",
        d = dir.display()
    )
}

/// The node gave nothing away: idle, no partition record, no ihkd socket.
fn assert_clean(c: &mut Cluster) {
    c.wait_idle_after_jobs();
    assert!(
        !c.path("mckernel-state/partition.json").exists(),
        "a partition record was left"
    );
    assert!(!c.path("ihk/mcd0").exists(), "an ihkd was started");
}

#[test]
fn plugin_loads_and_bad_requests_fail_at_submission() {
    if let Some(why) = skip_reason() {
        mck_tests::cannot_run("plugin_loads_and_bad_requests_fail_at_submission", &why);
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::start(site);
    assert!(
        c.slurmd_log()
            .contains("mckernel: SPANK plugin loaded (built for Slurm 0x160508)"),
        "slurmd did not load the plugin:\n{}",
        c.slurmd_log_tail(40)
    );
    let help = c.cmd("/usr/bin/srun").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for opt in [
        "--mckernel=",
        "--mckernel-cpus=",
        "--mckernel-ikc-map=",
        "--mckernel-kargs=",
    ] {
        assert!(help.contains(opt), "srun --help does not list {opt}");
    }

    let over = format!("--mckernel={}G@0", node0_mem_gib() / 2 + 1);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--mckernel=5M"],
            "--mckernel=5M: invalid memory list '5M': 5M is not a multiple of 4 MiB",
        ),
        (
            vec!["--mckernel=1G@9"],
            "--mckernel=1G@9: NUMA node 9 does not exist on this node (it has 0",
        ),
        (vec![&over], "is more than the site limit of 50% of its"),
        (vec!["--mckernel=ALL"], "ALL is not accepted for a job"),
        (
            vec!["--mckernel-cpus=1"],
            "--mckernel-cpus given without --mckernel=<memory list>",
        ),
        (
            vec!["--mckernel=512M@0", "--mckernel-cpus=0-1"],
            "CPUs 0 are kept for Linux by the site configuration",
        ),
        (
            vec!["--mckernel=512M@0", "--mckernel-cpus=0"],
            "invalid CPU count '0': the count must be a positive number",
        ),
        (
            vec!["--mckernel=512M@0", "--mckernel-cpus=2-3"],
            "are not allocated to the job on this node",
        ),
        (
            vec!["--mckernel=512M@0", "--mckernel-ikc-map=1"],
            "invalid IKC map '1': '1' has no ':<Linux CPU>'",
        ),
    ];
    for (opts, expected) in cases {
        let mut args = opts.clone();
        args.extend(["/bin/busybox", "true"]);
        let o = c.srun(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "srun {opts:?} succeeded");
        assert!(
            stderr.contains(expected),
            "srun {opts:?}: expected '{expected}' in:\n{stderr}"
        );
        assert!(!stderr.contains("internal error"), "{stderr}");
        assert_clean(&mut c);
    }

    // sbatch checks the values before the job is queued.
    let o = c
        .cmd("/usr/bin/sbatch")
        .args(["--mckernel=5M", "--wrap=true"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("5M is not a multiple of 4 MiB"));
    assert!(c.jobs().is_empty(), "a job was queued");

    // Steps without --mckernel are not affected.
    let o = c.srun(&["/bin/busybox", "echo", "plain"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "plain");
    assert_clean(&mut c);
}

/// The epilogue program on its own: it needs a job and a readable site file,
/// and with nothing on the node it does nothing and succeeds.
#[test]
fn epilogue_program_arguments() {
    let epilog = env!("CARGO_BIN_EXE_mckernel-epilog");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], job: Option<&str>| {
        let mut c = std::process::Command::new(epilog);
        c.args(args)
            .env_remove("SLURM_JOB_ID")
            .env_remove("SLURMD_NODENAME")
            .env_remove("MCKERNEL_SLURM_CONFIG");
        if let Some(j) = job {
            c.env("SLURM_JOB_ID", j);
        }
        c.output().unwrap()
    };
    let o = run(&[], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SLURM_JOB_ID is not set"));
    let o = run(&["--config", "/nonexistent.toml"], Some("abc"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("job id 'abc' is not a number"));
    let o = run(&["--config", "/nonexistent.toml"], Some("7"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("cannot read the McKernel site configuration /nonexistent.toml"));

    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        format!(
            "runtime_dir = \"{d}/ihk\"\nstate_dir = \"{d}/state\"\nprefix = \"{d}\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let o = run(&["--job", "7", "--config", site.to_str().unwrap()], None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout.is_empty() && o.stderr.is_empty());
    }

    // A site file of nodes that share a machine (%n): the node's name is
    // needed, from SLURMD_NODENAME (slurmd sets it) or --node.
    let per_node = dir.path().join("per-node.toml");
    std::fs::write(
        &per_node,
        format!(
            "runtime_dir = \"{d}/%n/ihk\"\nstate_dir = \"{d}/%n/state\"\nprefix = \"{d}\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let o = run(&["--job", "7", "--config", per_node.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not know its node name (SLURMD_NODENAME)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(
        &["--job", "7", "--node", "n1", "--config", per_node.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.path().join("n1/state/lock").exists(), "the epilogue did not use n1's state");
}
