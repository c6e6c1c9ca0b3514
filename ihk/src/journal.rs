//! The reservation journal: every change ihkd makes to the node, with the
//! value it replaced, written (and fsync'd) before the change is made.
//!
//! `<runtime dir>/journal` is append-only JSON lines `{"seq":N,"rec":{..}}`.
//! A change that has been undone is followed by an `undone` record naming its
//! sequence number; the records without one are *pending*. Release, `Quit`
//! and the start of an ihkd after a crash undo the pending records (newest
//! first) through [`crate::reserve::undo`]. When nothing is pending the file
//! is emptied. A torn last line (crash mid-write) is ignored.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IhkError, IhkResult};

/// One change to the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// CPU affinity of thread `tid` of process `pid` (start time `start` in
    /// clock ticks, to recognise pid reuse) was `old` before eviction.
    TaskAffinity {
        pid: i32,
        tid: i32,
        start: u64,
        old: Vec<u32>,
    },
    /// `evict` mode keeps every other task off `cpus` since `since` (clock
    /// ticks since boot); tasks started after that inherit the evicted mask.
    EvictedSet { cpus: Vec<u32>, since: u64 },
    /// `/proc/<path>` (an IRQ's `smp_affinity`) held `old`.
    IrqAffinity { path: String, old: String },
    /// `nr_hugepages` of `node` for pages of `page_kb` KiB was `old`; ihkd
    /// raised it by `added`.
    HugePages {
        node: u32,
        page_kb: u64,
        old: u64,
        added: u64,
    },
    /// The change with this sequence number has been undone.
    Undone { seq: u64 },
}

#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    rec: Record,
}

/// The open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
    next_seq: u64,
    pending: BTreeMap<u64, Record>,
}

impl Journal {
    /// Open (creating if needed) and load the pending records.
    pub fn open(path: &Path) -> IhkResult<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| IhkError::os(e, format!("opening journal {}", path.display())))?;
        let mut pending = BTreeMap::new();
        let mut next_seq = 1;
        let reader = BufReader::new(
            file.try_clone()
                .map_err(|e| IhkError::os(e, "cloning journal handle"))?,
        );
        for line in reader.lines() {
            let line = line.map_err(|e| IhkError::os(e, format!("reading {}", path.display())))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(&line) {
                Ok(Line {
                    seq,
                    rec: Record::Undone { seq: done },
                }) => {
                    pending.remove(&done);
                    next_seq = next_seq.max(seq + 1);
                }
                Ok(Line { seq, rec }) => {
                    pending.insert(seq, rec);
                    next_seq = next_seq.max(seq + 1);
                }
                Err(e) => {
                    tracing::warn!(
                        "journal {}: ignoring unreadable line ({e}): {line}",
                        path.display()
                    );
                }
            }
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            next_seq,
            pending,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records not yet undone, oldest first.
    pub fn pending(&self) -> Vec<(u64, Record)> {
        self.pending.iter().map(|(s, r)| (*s, r.clone())).collect()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn write_line(&mut self, seq: u64, rec: &Record) -> IhkResult<()> {
        let mut text = serde_json::to_string(&Line {
            seq,
            rec: rec.clone(),
        })
        .map_err(|e| IhkError::io(format!("encoding journal record: {e}")))?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| IhkError::os(e, format!("writing journal {}", self.path.display())))
    }

    /// Record a change before making it; returns its sequence number.
    pub fn append(&mut self, rec: Record) -> IhkResult<u64> {
        let seq = self.next_seq;
        self.write_line(seq, &rec)?;
        self.next_seq += 1;
        self.pending.insert(seq, rec);
        Ok(seq)
    }

    /// Record that change `seq` has been undone; empties the file when
    /// nothing is pending any more.
    pub fn mark_undone(&mut self, seq: u64) -> IhkResult<()> {
        if self.pending.remove(&seq).is_none() {
            return Ok(());
        }
        let s = self.next_seq;
        self.write_line(s, &Record::Undone { seq })?;
        self.next_seq += 1;
        if self.pending.is_empty() {
            self.file
                .set_len(0)
                .and_then(|_| self.file.sync_all())
                .map_err(|e| {
                    IhkError::os(e, format!("truncating journal {}", self.path.display()))
                })?;
        }
        Ok(())
    }

    /// Replace a pending record (same sequence number) with a corrected one,
    /// e.g. the number of huge pages the kernel actually gave.
    pub fn amend(&mut self, seq: u64, rec: Record) -> IhkResult<()> {
        // Written under the old number: on load, the later line replaces the
        // earlier one.
        self.write_line(seq, &rec)?;
        self.pending.insert(seq, rec);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_survives_reopen_and_undone_clears() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal");
        let mut j = Journal::open(&p).unwrap();
        let a = j
            .append(Record::IrqAffinity {
                path: "irq/5/smp_affinity".into(),
                old: "3".into(),
            })
            .unwrap();
        let b = j
            .append(Record::HugePages {
                node: 0,
                page_kb: 2048,
                old: 0,
                added: 256,
            })
            .unwrap();
        j.amend(
            b,
            Record::HugePages {
                node: 0,
                page_kb: 2048,
                old: 0,
                added: 200,
            },
        )
        .unwrap();
        j.mark_undone(a).unwrap();
        drop(j);
        let mut j = Journal::open(&p).unwrap();
        assert_eq!(
            j.pending(),
            vec![(
                b,
                Record::HugePages {
                    node: 0,
                    page_kb: 2048,
                    old: 0,
                    added: 200
                }
            )]
        );
        let c = j
            .append(Record::TaskAffinity {
                pid: 1,
                tid: 1,
                start: 2,
                old: vec![0, 1],
            })
            .unwrap();
        assert!(c > b);
        j.mark_undone(b).unwrap();
        j.mark_undone(c).unwrap();
        assert!(!j.has_pending());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal");
        let mut j = Journal::open(&p).unwrap();
        j.append(Record::IrqAffinity {
            path: "irq/5/smp_affinity".into(),
            old: "3".into(),
        })
        .unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":2,\"rec\":{\"kind\":\"hug").unwrap();
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.pending().len(), 1);
    }
}
