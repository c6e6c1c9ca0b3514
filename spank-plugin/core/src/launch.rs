//! How a task becomes an LWK process: `mcexec -n <tasks on this node>
//! <the task's argv>`, with the task's own environment (which carries
//! `SLURM_LOCALID`, the local rank mcexec uses to pick its share of the
//! LWK CPUs, and `SLURM_JOB_ID`, by which the epilogue finds leftovers).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Why a task of a `--mckernel` step runs on Linux as it is, or None when
/// it becomes an LWK process: a task that is `mcexec` already (the user
/// wrapped it), or the node daemon of an MPI launcher run inside the job
/// (`mpirun mcexec ./a.out` in a batch script: Open MPI starts `orted` or
/// `prted` on the other nodes with srun, MPICH's Hydra `hydra_pmi_proxy`),
/// which starts the ranks' own mcexec. The partition is booted for such a
/// step all the same.
pub fn runs_as_is(task_argv: &[Vec<u8>]) -> Option<&'static str> {
    let program = task_argv.first()?;
    let base = program.rsplit(|&b| b == b'/').next().unwrap_or(program);
    match base {
        b"mcexec" => Some("the task is mcexec already"),
        b"orted" | b"prted" => Some("Open MPI's node daemon starts the ranks' mcexec"),
        b"hydra_pmi_proxy" => Some("MPICH's Hydra proxy starts the ranks' mcexec"),
        _ => None,
    }
}

/// What goes before the task's argv: `mcexec -n <tasks on this node>`, so
/// that each of the node's tasks gets its own share of the LWK CPUs. With
/// more tasks than LWK CPUs (an `allow_oversubscribe` partition) there are
/// no shares to give: `-n` is left out and the tasks share the CPUs.
pub fn mcexec_prefix(
    mcexec: &Path,
    local_tasks: u32,
    lwk_cpus: usize,
) -> Result<Vec<CString>, String> {
    let mut argv = vec![CString::new(mcexec.as_os_str().as_bytes())
        .map_err(|_| "mcexec path contains a NUL byte")?];
    if local_tasks as usize <= lwk_cpus {
        argv.push(CString::new("-n").expect("no NUL"));
        argv.push(CString::new(local_tasks.to_string()).expect("no NUL"));
    }
    Ok(argv)
}

/// The argv that replaces the task's: mcexec, its options, then the task's.
pub fn mcexec_argv(
    mcexec: &Path,
    local_tasks: u32,
    lwk_cpus: usize,
    task_argv: &[Vec<u8>],
) -> Result<Vec<CString>, String> {
    if task_argv.is_empty() {
        return Err("the step has no program to run".into());
    }
    let mut argv = mcexec_prefix(mcexec, local_tasks, lwk_cpus)?;
    for a in task_argv {
        argv.push(CString::new(a.clone()).map_err(|_| "an argument contains a NUL byte")?);
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_daemons_and_mcexec_run_as_they_are() {
        let argv = |a: &[&str]| a.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert!(runs_as_is(&argv(&["/opt/mck/bin/mcexec", "./a.out"])).is_some());
        assert!(runs_as_is(&argv(&["orted", "-mca", "ess", "slurm"])).is_some());
        assert!(runs_as_is(&argv(&["/usr/bin/prted"])).is_some());
        assert!(runs_as_is(&argv(&["/usr/bin/hydra_pmi_proxy", "--control-port"])).is_some());
        assert!(runs_as_is(&argv(&["./a.out"])).is_none());
        assert!(runs_as_is(&argv(&["/usr/bin/mcexec-like"])).is_none());
        assert!(runs_as_is(&argv(&["./orted/a.out"])).is_none());
        assert!(runs_as_is(&[]).is_none());
    }

    #[test]
    fn prepends_mcexec() {
        let argv = mcexec_argv(
            Path::new("/p/bin/mcexec"),
            4,
            8,
            &[b"./app".to_vec(), b"-x".to_vec()],
        )
        .unwrap();
        let s: Vec<&str> = argv.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(s, ["/p/bin/mcexec", "-n", "4", "./app", "-x"]);
        assert!(mcexec_argv(Path::new("/m"), 1, 1, &[]).is_err());
        // Oversubscribed: 2 tasks share 1 LWK CPU.
        let argv = mcexec_argv(Path::new("/m"), 2, 1, &[b"a".to_vec()]).unwrap();
        assert_eq!(
            argv.iter().map(|c| c.to_str().unwrap()).collect::<Vec<_>>(),
            ["/m", "a"]
        );
    }
}
