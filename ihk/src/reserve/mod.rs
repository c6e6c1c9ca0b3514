//! Taking resources from Linux and giving them back: CPU isolation modes,
//! memory regions, huge page pools, and undoing journaled changes.
//!
//! Must not: decide policy about OS instances (that is the daemon's state),
//! or change anything without journaling it first.

pub mod evict;
pub mod hugepages;
pub mod mask;
pub mod mempool;
pub mod region;

use crate::journal::{Journal, Record};
use crate::paths::Roots;

/// How reserved CPUs are kept free of Linux work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Only the vCPU threads are pinned; nothing else on the node changes.
    Pin,
    /// Every other task and IRQ is moved off the reserved CPUs.
    Evict,
}

impl Isolation {
    pub fn parse(s: &str) -> Option<Isolation> {
        match s {
            "pin" => Some(Isolation::Pin),
            "evict" => Some(Isolation::Evict),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Pin => "pin",
            Isolation::Evict => "evict",
        }
    }
}

/// Undo one journaled change made by an earlier run.
pub fn undo(roots: &Roots, rec: &Record) -> Result<(), String> {
    match rec {
        Record::TaskAffinity {
            pid,
            tid,
            start,
            old,
        } => evict::undo_task(roots, *pid, *tid, *start, old),
        Record::IrqAffinity { path, old } => evict::undo_irq(roots, path, old),
        Record::EvictedSet { cpus, since } => evict::undo_evicted_set(roots, cpus, *since),
        Record::HugePages {
            node,
            page_kb,
            added,
            ..
        } => hugepages::undo(roots, *node, *page_kb, *added),
        Record::Undone { .. } => Ok(()),
    }
}

/// Undo every pending record, newest first. Returns what could not be
/// restored (those records stay pending, to be retried next time).
pub fn replay(journal: &mut Journal, roots: &Roots) -> Vec<String> {
    let mut failures = Vec::new();
    let mut pending = journal.pending();
    pending.reverse();
    for (seq, rec) in pending {
        match undo(roots, &rec) {
            Ok(()) => {
                if let Err(e) = journal.mark_undone(seq) {
                    failures.push(e.detail);
                }
            }
            Err(e) => failures.push(e),
        }
    }
    failures
}
