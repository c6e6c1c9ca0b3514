//! `evict` isolation: keep every other task and every IRQ off the reserved
//! CPUs, journaling each original affinity so that it can be put back.
//!
//! Tasks are found under `<proc root>/proc/<pid>/task/<tid>` and IRQs under
//! `<proc root>/proc/irq/`, so a test can point the root at a tree holding
//! only the processes it spawned (`proc/<pid>` symlinks to the real ones) and
//! fake IRQ files. A task is recognised across pid reuse by its start time.
//!
//! Policy for each task or IRQ touching the reserved set E: new affinity =
//! original − E, or every online CPU outside E when that is empty (as
//! mcreboot.sh does for IRQs). ihkd's own threads pinned inside E (the vCPU
//! threads) are left alone. When E shrinks, affinities are recomputed from
//! the originals; when it becomes empty the originals come back and the
//! journal records are closed. Tasks the kernel does not let us move
//! (per-CPU kernel threads) are skipped.
//!
//! Tasks born while E is evicted inherit "every CPU outside E" from their
//! evicted parents; when E shrinks they get the freed CPUs back (a task
//! started after eviction began whose affinity is exactly the old "outside
//! E"). The journal keeps the current E and that start instant
//! (`evicted_set`), so a replay after a crash widens them too. IRQs that
//! appear while E is evicted are widened the same way (not after a crash).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use super::mask::{format_hex_mask_like, parse_hex_mask};
use crate::error::{IhkError, IhkResult};
use crate::host::topology;
use crate::journal::{Journal, Record};
use crate::paths::Roots;

struct TrackedTask {
    seq: u64,
    start: u64,
    orig: BTreeSet<u32>,
}

struct TrackedIrq {
    seq: u64,
    orig_text: String,
}

/// Affinity state changed by eviction, for one ihkd.
pub struct Evictor {
    roots: Roots,
    tasks: BTreeMap<i32, TrackedTask>,
    irqs: BTreeMap<String, TrackedIrq>,
    /// The evicted set last applied (empty: nothing evicted).
    applied: BTreeSet<u32>,
    /// Journal record of `applied`.
    set_seq: Option<u64>,
    /// When eviction began (clock ticks since boot, like task start times).
    since: u64,
    /// IRQ files that existed when eviction began.
    irqs_at_start: BTreeSet<String>,
}

/// Now, in the clock ticks of `/proc/<pid>/stat` start times.
pub fn now_ticks() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    t.tv_sec() as u64 * hz + t.tv_nsec() as u64 * hz / 1_000_000_000
}

/// A task found under the proc root.
pub struct TaskId {
    pub pid: i32,
    pub tid: i32,
    pub start: u64,
}

/// Every task (thread) under the proc root.
pub fn list_tasks(roots: &Roots) -> Vec<TaskId> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir(roots.proc("")) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(tasks) = fs::read_dir(roots.proc(&format!("{pid}/task"))) else {
            continue;
        };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(start) = task_start_time(roots, pid, tid) {
                out.push(TaskId { pid, tid, start });
            }
        }
    }
    out
}

/// Field 22 of `/proc/<pid>/task/<tid>/stat` (start time in clock ticks).
pub fn task_start_time(roots: &Roots, pid: i32, tid: i32) -> Option<u64> {
    let stat = fs::read_to_string(roots.proc(&format!("{pid}/task/{tid}/stat"))).ok()?;
    // comm may contain spaces and parentheses: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); field 22 is index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn get_affinity(tid: i32) -> nix::Result<BTreeSet<u32>> {
    let set = sched_getaffinity(Pid::from_raw(tid))?;
    Ok((0..CpuSet::count() as u32)
        .filter(|&c| set.is_set(c as usize).unwrap_or(false))
        .collect())
}

pub fn set_affinity(tid: i32, cpus: &BTreeSet<u32>) -> nix::Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c as usize)?;
    }
    sched_setaffinity(Pid::from_raw(tid), &set)
}

fn irq_files(roots: &Roots) -> Vec<String> {
    let mut out = Vec::new();
    if roots.proc("irq/default_smp_affinity").exists() {
        out.push("irq/default_smp_affinity".to_string());
    }
    if let Ok(dir) = fs::read_dir(roots.proc("irq")) {
        let mut irqs: Vec<u32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        irqs.sort_unstable();
        for n in irqs {
            let rel = format!("irq/{n}/smp_affinity");
            if roots.proc(&rel).exists() {
                out.push(rel);
            }
        }
    }
    out
}

impl Evictor {
    pub fn new(roots: Roots) -> Self {
        Evictor {
            roots,
            tasks: BTreeMap::new(),
            irqs: BTreeMap::new(),
            applied: BTreeSet::new(),
            set_seq: None,
            since: 0,
            irqs_at_start: BTreeSet::new(),
        }
    }

    /// Make every task and IRQ avoid `evicted`, restoring what no longer
    /// needs to avoid it. Returns warnings for the administrator.
    pub fn apply(
        &mut self,
        journal: &mut Journal,
        evicted: &BTreeSet<u32>,
        online: &[u32],
    ) -> IhkResult<Vec<String>> {
        let mut warnings = Vec::new();
        let all: BTreeSet<u32> = online.iter().copied().collect();
        let outside: BTreeSet<u32> = all.difference(evicted).copied().collect();
        if !evicted.is_empty() && outside.is_empty() {
            return Err(IhkError::inval("evict would leave Linux without any CPU"));
        }
        // What tasks born during the eviction inherited, and what they get now.
        let inherited = (!self.applied.is_empty()).then(|| {
            all.difference(&self.applied)
                .copied()
                .collect::<BTreeSet<u32>>()
        });
        let widened = if evicted.is_empty() {
            all.clone()
        } else {
            outside.clone()
        };
        if self.applied.is_empty() && !evicted.is_empty() {
            self.since = now_ticks();
            self.irqs_at_start = irq_files(&self.roots).into_iter().collect();
        }
        // Write-ahead: the set being applied, for a replay after a crash.
        let old_set = self.set_seq.take();
        if !evicted.is_empty() {
            self.set_seq = Some(journal.append(Record::EvictedSet {
                cpus: evicted.iter().copied().collect(),
                since: self.since,
            })?);
        }
        let ctx = Ctx {
            evicted,
            outside: &outside,
            inherited: inherited.as_ref(),
            widened: &widened,
        };
        self.apply_tasks(journal, &ctx, &mut warnings)?;
        self.apply_irqs(journal, &ctx, &mut warnings)?;
        if let Some(seq) = old_set {
            journal.mark_undone(seq)?;
        }
        self.applied = evicted.clone();
        Ok(warnings)
    }

    fn apply_tasks(
        &mut self,
        journal: &mut Journal,
        ctx: &Ctx,
        warnings: &mut Vec<String>,
    ) -> IhkResult<()> {
        let me = std::process::id() as i32;
        let mut seen = BTreeSet::new();
        for t in list_tasks(&self.roots) {
            seen.insert(t.tid);
            let Ok(cur) = get_affinity(t.tid) else {
                continue;
            };
            // A tracked tid with another start time is a new task: the old
            // one is gone and there is nothing to restore.
            if self.tasks.get(&t.tid).is_some_and(|k| k.start != t.start) {
                let k = self.tasks.remove(&t.tid).unwrap();
                journal.mark_undone(k.seq)?;
            }
            let tracked = self.tasks.get(&t.tid);
            if tracked.is_none() && cur.is_disjoint(ctx.evicted) {
                // Born during the eviction with the evicted mask: give it the
                // freed CPUs too.
                if ctx.inherited == Some(&cur) && t.start > self.since && cur != *ctx.widened {
                    if let Err(e) = set_affinity(t.tid, ctx.widened) {
                        tracing::debug!("task {} keeps its affinity: {e}", t.tid);
                    }
                }
                continue;
            }
            if ctx.evicted.is_empty() {
                if let Some(k) = tracked {
                    if let Err(e) = set_affinity(t.tid, &k.orig) {
                        if e != nix::errno::Errno::ESRCH {
                            warnings.push(format!(
                                "could not restore the affinity of task {}: {e}",
                                t.tid
                            ));
                            continue;
                        }
                    }
                    let k = self.tasks.remove(&t.tid).unwrap();
                    journal.mark_undone(k.seq)?;
                }
                continue;
            }
            if t.pid == me && cur.is_subset(ctx.evicted) {
                continue; // a vCPU thread, pinned on purpose
            }
            let base = tracked
                .map(|k| k.orig.clone())
                .unwrap_or_else(|| cur.clone());
            let mut target: BTreeSet<u32> = base.difference(ctx.evicted).copied().collect();
            if target.is_empty() {
                target = ctx.outside.clone();
            }
            if target == cur {
                continue;
            }
            let new_seq = if tracked.is_none() {
                let seq = journal.append(Record::TaskAffinity {
                    pid: t.pid,
                    tid: t.tid,
                    start: t.start,
                    old: cur.iter().copied().collect(),
                })?;
                self.tasks.insert(
                    t.tid,
                    TrackedTask {
                        seq,
                        start: t.start,
                        orig: cur.clone(),
                    },
                );
                Some(seq)
            } else {
                None
            };
            if let Err(e) = set_affinity(t.tid, &target) {
                tracing::debug!("task {} keeps its affinity: {e}", t.tid);
                if let Some(seq) = new_seq {
                    self.tasks.remove(&t.tid);
                    journal.mark_undone(seq)?;
                }
            }
        }
        let gone: Vec<i32> = self
            .tasks
            .keys()
            .copied()
            .filter(|t| !seen.contains(t))
            .collect();
        for tid in gone {
            let k = self.tasks.remove(&tid).unwrap();
            journal.mark_undone(k.seq)?;
        }
        Ok(())
    }

    fn apply_irqs(
        &mut self,
        journal: &mut Journal,
        ctx: &Ctx,
        warnings: &mut Vec<String>,
    ) -> IhkResult<()> {
        for rel in irq_files(&self.roots) {
            let path = self.roots.proc(&rel);
            let Ok(cur_text) = fs::read_to_string(&path) else {
                continue;
            };
            let cur_text = cur_text.trim().to_string();
            let Some(cur) = parse_hex_mask(&cur_text) else {
                continue;
            };
            let tracked = self.irqs.get(&rel);
            if tracked.is_none() && cur.is_disjoint(ctx.evicted) {
                // Appeared during the eviction with the evicted mask.
                if ctx.inherited == Some(&cur)
                    && !self.irqs_at_start.contains(&rel)
                    && cur != *ctx.widened
                {
                    if let Err(e) = fs::write(&path, format_hex_mask_like(ctx.widened, &cur_text)) {
                        tracing::debug!("{} keeps its affinity: {e}", path.display());
                    }
                }
                continue;
            }
            if ctx.evicted.is_empty() {
                if let Some(k) = tracked {
                    if let Err(e) = fs::write(&path, &k.orig_text) {
                        warnings.push(format!("could not restore {}: {e}", path.display()));
                        continue;
                    }
                    let k = self.irqs.remove(&rel).unwrap();
                    journal.mark_undone(k.seq)?;
                }
                continue;
            }
            let base = match tracked {
                Some(k) => parse_hex_mask(&k.orig_text).unwrap_or_else(|| cur.clone()),
                None => cur.clone(),
            };
            let mut target: BTreeSet<u32> = base.difference(ctx.evicted).copied().collect();
            if target.is_empty() {
                target = ctx.outside.clone();
            }
            if target == cur {
                continue;
            }
            let new_seq = if tracked.is_none() {
                let seq = journal.append(Record::IrqAffinity {
                    path: rel.clone(),
                    old: cur_text.clone(),
                })?;
                self.irqs.insert(
                    rel.clone(),
                    TrackedIrq {
                        seq,
                        orig_text: cur_text.clone(),
                    },
                );
                Some(seq)
            } else {
                None
            };
            if let Err(e) = fs::write(&path, format_hex_mask_like(&target, &cur_text)) {
                tracing::debug!("{} keeps its affinity: {e}", path.display());
                if let Some(seq) = new_seq {
                    self.irqs.remove(&rel);
                    journal.mark_undone(seq)?;
                }
            }
        }
        Ok(())
    }
}

/// The sets one `apply` works with.
struct Ctx<'a> {
    evicted: &'a BTreeSet<u32>,
    /// Online CPUs outside `evicted`.
    outside: &'a BTreeSet<u32>,
    /// The mask tasks born during the previous eviction inherited.
    inherited: Option<&'a BTreeSet<u32>>,
    /// What those tasks get now.
    widened: &'a BTreeSet<u32>,
}

/// Undo an `evicted_set` record after a crash: tasks started after `since`
/// whose affinity is exactly "every online CPU outside `cpus`" inherited it
/// from an evicted parent; they get every online CPU.
pub fn undo_evicted_set(roots: &Roots, cpus: &[u32], since: u64) -> Result<(), String> {
    let online = topology::online_cpus(roots).map_err(|e| e.detail)?;
    let all: BTreeSet<u32> = online.iter().copied().collect();
    let outside: BTreeSet<u32> = all.iter().copied().filter(|c| !cpus.contains(c)).collect();
    for t in list_tasks(roots) {
        if t.start <= since {
            continue;
        }
        if get_affinity(t.tid).is_ok_and(|cur| cur == outside) {
            let _ = set_affinity(t.tid, &all);
        }
    }
    Ok(())
}

/// Undo one task record from a journal of a previous run.
pub fn undo_task(roots: &Roots, pid: i32, tid: i32, start: u64, old: &[u32]) -> Result<(), String> {
    if task_start_time(roots, pid, tid) != Some(start) {
        return Ok(()); // the task is gone; nothing to restore
    }
    let set: BTreeSet<u32> = old.iter().copied().collect();
    match set_affinity(tid, &set) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(format!(
            "affinity of task {tid} (pid {pid}) back to {old:?}: {e}"
        )),
    }
}

/// Undo one IRQ record from a journal of a previous run.
pub fn undo_irq(roots: &Roots, rel: &str, old: &str) -> Result<(), String> {
    let path = roots.proc(rel);
    fs::write(&path, old).map_err(|e| format!("{} back to {old}: {e}", path.display()))
}
