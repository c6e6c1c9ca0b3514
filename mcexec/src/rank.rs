//! The node-local rank of this process as the MPI launcher or Slurm tells
//! it through the environment (used with `-n` to pick the process's share
//! of LWK CPUs; ARCHITECTURE.md §7).

/// Variables naming the node-local rank, most specific first.
const LOCAL_RANK_VARS: [&str; 5] = [
    "OMPI_COMM_WORLD_LOCAL_RANK", // Open MPI
    "MPI_LOCALRANKID",            // MPICH / Hydra
    "PMI_LOCAL_RANK",             // PMI-1 launchers
    "PMIX_LOCAL_RANK",            // some PMIx launchers
    "SLURM_LOCALID",              // srun
];

/// Variables naming the number of processes on this node, in the same
/// launcher order.
const LOCAL_SIZE_VARS: [&str; 4] = [
    "OMPI_COMM_WORLD_LOCAL_SIZE", // Open MPI
    "MPI_LOCALNRANKS",            // MPICH / Hydra
    "PMIX_LOCAL_SIZE",            // PMIx launchers
    "SLURM_NTASKS_PER_NODE",      // srun --ntasks-per-node
];

pub fn local_rank() -> Option<u32> {
    local_rank_from(|k| std::env::var(k).ok())
}

/// Processes per node as the launcher tells it (`mcexec` without `-n`).
pub fn local_size() -> Option<u32> {
    first_number(&LOCAL_SIZE_VARS, |k| std::env::var(k).ok()).filter(|&n| n > 0)
}

fn local_rank_from(get: impl Fn(&str) -> Option<String>) -> Option<u32> {
    first_number(&LOCAL_RANK_VARS, get)
}

fn first_number(vars: &[&str], get: impl Fn(&str) -> Option<String>) -> Option<u32> {
    vars.iter().find_map(|k| get(k).and_then(|v| v.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_known_variable_wins() {
        let env = |k: &str| match k {
            "MPI_LOCALRANKID" => Some("3".to_string()),
            "SLURM_LOCALID" => Some("1".to_string()),
            _ => None,
        };
        assert_eq!(local_rank_from(env), Some(3));
        assert_eq!(local_rank_from(|_| None), None);
        assert_eq!(local_rank_from(|k| (k == "SLURM_LOCALID").then(|| "x".into())), None);
        let sizes = |k: &str| (k == "MPI_LOCALNRANKS").then(|| "4".to_string());
        assert_eq!(first_number(&LOCAL_SIZE_VARS, sizes), Some(4));
    }
}
