//! Per-node hugetlb pools: `nr_hugepages` of
//! `<sys>/devices/system/node/node<N>/hugepages/hugepages-<size>kB/`.
//!
//! ihkd raises a node's pool by the pages it needs, journaling the old count
//! and the increase, and lowers it by the same increase on release. Lowering
//! by the increase (rather than writing the old value back) keeps two
//! daemons that share a node (tests of different runtime directories) from
//! undoing each other. Each read-modify-write of a pool holds an flock on
//! its `nr_hugepages` file, so that two daemons raising or lowering the
//! same pool at the same moment (the nodes of scripts/cluster.sh booting
//! together) do not both count the same pages as theirs.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{IhkError, IhkResult};
use crate::journal::{Journal, Record};
use crate::paths::Roots;

pub const KB_1G: u64 = 1 << 20;
pub const KB_2M: u64 = 2048;

fn pool_file(roots: &Roots, node: u32, page_kb: u64, name: &str) -> PathBuf {
    roots.sys(&format!(
        "devices/system/node/node{node}/hugepages/hugepages-{page_kb}kB/{name}"
    ))
}

/// Whether the node has a pool of pages of this size.
pub fn has_pool(roots: &Roots, node: u32, page_kb: u64) -> bool {
    pool_file(roots, node, page_kb, "nr_hugepages").exists()
}

fn read_count(roots: &Roots, node: u32, page_kb: u64, name: &str) -> IhkResult<u64> {
    let p = pool_file(roots, node, page_kb, name);
    let s =
        fs::read_to_string(&p).map_err(|e| IhkError::os(e, format!("reading {}", p.display())))?;
    s.trim()
        .parse()
        .map_err(|_| IhkError::io(format!("{}: not a number: {s:?}", p.display())))
}

pub fn nr_hugepages(roots: &Roots, node: u32, page_kb: u64) -> IhkResult<u64> {
    read_count(roots, node, page_kb, "nr_hugepages")
}

pub fn free_hugepages(roots: &Roots, node: u32, page_kb: u64) -> IhkResult<u64> {
    read_count(roots, node, page_kb, "free_hugepages")
}

fn write_nr(roots: &Roots, node: u32, page_kb: u64, n: u64) -> IhkResult<()> {
    let p = pool_file(roots, node, page_kb, "nr_hugepages");
    fs::write(&p, n.to_string())
        .map_err(|e| IhkError::os(e, format!("writing {n} to {}", p.display())))
}

/// Held while a pool is read and changed: an flock on its `nr_hugepages`
/// (every process that opens the file shares its inode, so the lock is
/// machine-wide, and it goes with the descriptor if the daemon dies).
fn lock_pool(roots: &Roots, node: u32, page_kb: u64) -> IhkResult<Flock<fs::File>> {
    let p = pool_file(roots, node, page_kb, "nr_hugepages");
    let f = fs::File::open(&p).map_err(|e| IhkError::os(e, format!("opening {}", p.display())))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| IhkError::io(format!("locking {}: {e}", p.display())))
}

/// An increase of a node's pool that ihkd owes back.
#[derive(Debug)]
pub struct Raise {
    pub seq: u64,
    pub node: u32,
    pub page_kb: u64,
    pub added: u64,
}

/// Try to add `want` pages to the node's pool; returns the increase the
/// kernel granted (possibly zero, then nothing stays journaled).
pub fn raise(
    journal: &mut Journal,
    roots: &Roots,
    node: u32,
    page_kb: u64,
    want: u64,
) -> IhkResult<Option<Raise>> {
    if want == 0 || !has_pool(roots, node, page_kb) {
        return Ok(None);
    }
    let _lock = lock_pool(roots, node, page_kb)?;
    let old = nr_hugepages(roots, node, page_kb)?;
    let seq = journal.append(Record::HugePages {
        node,
        page_kb,
        old,
        added: want,
    })?;
    // The kernel may grant fewer pages than asked (fragmentation); the write
    // itself can fail with ENOMEM when it grants none.
    let _ = write_nr(roots, node, page_kb, old + want);
    let now = nr_hugepages(roots, node, page_kb)?;
    let got = now.saturating_sub(old).min(want);
    if got == 0 {
        let _ = write_nr(roots, node, page_kb, old.min(now));
        journal.mark_undone(seq)?;
        return Ok(None);
    }
    if got < want {
        journal.amend(
            seq,
            Record::HugePages {
                node,
                page_kb,
                old,
                added: got,
            },
        )?;
    }
    Ok(Some(Raise {
        seq,
        node,
        page_kb,
        added: got,
    }))
}

/// Give back pages previously added by `raise`, after their memory was
/// freed. Shrinks `r.added` to what is still owed if the write fails.
pub fn lower(journal: &mut Journal, roots: &Roots, r: &Raise) -> IhkResult<()> {
    undo(roots, r.node, r.page_kb, r.added).map_err(IhkError::io)?;
    journal.mark_undone(r.seq)
}

/// How long pages still in use may take to come back before `undo` gives
/// up. Found by ihk/tests/faults.rs (`IHK_FAULT_STOP=ihkd:attached`): the
/// journal replay of the next ihkd sometimes found all 128 pages still in
/// use. The cause was mcstop+release taking a killed ihkd for gone when
/// only its leader thread had exited (`admin::daemon_proc::wait_exit` now
/// waits for the whole thread group); this wait stays for memory the
/// kernel gives back a moment after its last user is gone.
const IN_USE_WAIT: Duration = Duration::from_secs(10);

/// Lower a pool by `added` pages (journal replay and release), waiting up
/// to [`IN_USE_WAIT`] for pages still in use to be freed.
pub fn undo(roots: &Roots, node: u32, page_kb: u64, added: u64) -> Result<(), String> {
    let _lock = lock_pool(roots, node, page_kb).map_err(|e| e.to_string())?;
    let cur = nr_hugepages(roots, node, page_kb).map_err(|e| e.to_string())?;
    let target = cur.saturating_sub(added);
    let deadline = Instant::now() + IN_USE_WAIT;
    loop {
        write_nr(roots, node, page_kb, target).map_err(|e| e.to_string())?;
        let now = nr_hugepages(roots, node, page_kb).map_err(|e| e.to_string())?;
        if now <= target {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "node {node}: nr_hugepages ({page_kb} kB pages) is {now}, expected {target}: pages still in use"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two daemons (own journals) raising and lowering one pool at once:
    /// the pool lock keeps every read-modify-write whole, so no increase is
    /// lost or given back twice. (A fake pool: the "kernel" grants all.)
    #[test]
    fn two_daemons_change_one_pool_at_once() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots {
            proc_root: d.path().into(),
            sys_root: d.path().into(),
        };
        let nr = pool_file(&roots, 0, KB_2M, "nr_hugepages");
        fs::create_dir_all(nr.parent().unwrap()).unwrap();
        fs::write(&nr, "0\n").unwrap();
        std::thread::scope(|s| {
            for daemon in 0..2 {
                let (roots, d) = (&roots, d.path());
                s.spawn(move || {
                    let mut j = Journal::open(&d.join(format!("journal{daemon}"))).unwrap();
                    let raises: Vec<Raise> = (0..200)
                        .map(|_| raise(&mut j, roots, 0, KB_2M, 1).unwrap().unwrap())
                        .collect();
                    for r in &raises[..100] {
                        lower(&mut j, roots, r).unwrap();
                    }
                });
            }
        });
        assert_eq!(nr_hugepages(&roots, 0, KB_2M).unwrap(), 200);
    }
}
