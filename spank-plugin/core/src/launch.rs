//! How a task becomes an LWK process: `mcexec -n <tasks on this node>
//! <the task's argv>`, with the task's own environment (which carries
//! `SLURM_LOCALID`, the local rank mcexec uses to pick its share of the
//! LWK CPUs, and `SLURM_JOB_ID`, by which the epilogue finds leftovers).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
