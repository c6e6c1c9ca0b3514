//! A round's environment: the caller's, plus what the launcher and MPI_Init
//! gave this process (rank variables, PMI contact, QL_SOCKET), as a fresh
//! `mpiexec` would; variables the program set itself during a round do not
//! survive into the next.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

type Var = (Vec<u8>, Vec<u8>);

/// The current environment.
pub fn snapshot() -> Vec<Var> {
    std::env::vars_os()
        .map(|(k, v)| (k.into_vec(), v.into_vec()))
        .collect()
}

fn split(entry: &[u8]) -> Option<Var> {
    let p = entry.iter().position(|b| *b == b'=')?;
    Some((entry[..p].to_vec(), entry[p + 1..].to_vec()))
}

/// What `initial` (this process's environment after MPI_Init) has that the
/// first round's caller did not give: the launcher's additions.
pub fn overlay(initial: &[Var], caller: &[Vec<u8>]) -> Vec<Var> {
    let caller: BTreeMap<Vec<u8>, Vec<u8>> = caller.iter().filter_map(|e| split(e)).collect();
    initial
        .iter()
        .filter(|(k, v)| caller.get(k) != Some(v))
        .cloned()
        .collect()
}

/// The environment of a round: `caller` with `overlay` on top.
pub fn compose(caller: &[Vec<u8>], overlay: &[Var]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut env: BTreeMap<Vec<u8>, Vec<u8>> = caller.iter().filter_map(|e| split(e)).collect();
    env.extend(overlay.iter().cloned());
    env
}

fn settable(k: &[u8], v: &[u8]) -> bool {
    !k.is_empty() && !k.contains(&b'=') && !k.contains(&0) && !v.contains(&0)
}

/// Makes the process environment exactly `compose(caller, overlay)`.
pub fn apply(caller: &[Vec<u8>], overlay: &[Var]) {
    let want = compose(caller, overlay);
    for (k, _) in snapshot() {
        if !want.contains_key(&k) && settable(&k, b"") {
            std::env::remove_var(OsStr::from_bytes(&k));
        }
    }
    let now: BTreeMap<Vec<u8>, Vec<u8>> = snapshot().into_iter().collect();
    for (k, v) in &want {
        if now.get(k) != Some(v) && settable(k, v) {
            std::env::set_var(OsStr::from_bytes(k), OsStr::from_bytes(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(k: &str, val: &str) -> Var {
        (k.as_bytes().to_vec(), val.as_bytes().to_vec())
    }
    fn e(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn launcher_additions_survive_rounds() {
        let initial = vec![
            v("HOME", "/root"),
            v("OMPI_COMM_WORLD_RANK", "1"),
            v("PATH", "/mpi/bin:/bin"),
            v("X", "1"),
        ];
        let round1 = vec![e("HOME=/root"), e("PATH=/bin"), e("X=1")];
        let ov = overlay(&initial, &round1);
        assert_eq!(
            ov,
            vec![v("OMPI_COMM_WORLD_RANK", "1"), v("PATH", "/mpi/bin:/bin")]
        );
        // Round 2: X changed, Y new, HOME dropped.
        let round2 = vec![e("PATH=/bin"), e("X=2"), e("Y=3")];
        let env = compose(&round2, &ov);
        let got: Vec<(String, String)> = env
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("OMPI_COMM_WORLD_RANK", "1"),
                ("PATH", "/mpi/bin:/bin"),
                ("X", "2"),
                ("Y", "3")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .to_vec()
        );
    }
}
