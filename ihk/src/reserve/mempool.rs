//! Reserved memory: the regions ihkd holds per NUMA node and which parts of
//! them are assigned to OS instances.
//!
//! Reserving `size@node` creates regions with the largest pages the node can
//! give (1 GiB, then 2 MiB huge pages, raising the node's pool and
//! journaling it; 4 KiB pages with a warning for the rest). Assigning takes
//! extents (4 MiB-aligned pieces of regions), releasing from an OS gives them
//! back; releasing to Linux frees whole unassigned regions.

use std::collections::BTreeMap;

use super::hugepages::{self, Raise, KB_2M};
use super::region::Region;
use crate::error::{IhkError, IhkResult};
use crate::journal::Journal;
use crate::list::{format_size, MEM_GRANULE};
use crate::paths::Roots;

/// A piece of a region assigned to an OS instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub region: u64,
    pub offset: u64,
    pub size: u64,
    pub node: u32,
}

struct Slot {
    region: Region,
    raise: Option<Raise>,
    /// Unassigned ranges (offset, len), sorted and coalesced.
    free: Vec<(u64, u64)>,
}

impl Slot {
    fn free_bytes(&self) -> u64 {
        self.free.iter().map(|f| f.1).sum()
    }
    fn fully_free(&self) -> bool {
        self.free_bytes() == self.region.size()
    }
}

/// All reserved memory of one ihkd.
#[derive(Default)]
pub struct MemPool {
    slots: BTreeMap<u64, Slot>,
    next_id: u64,
}

impl MemPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserve `size` bytes on `node`; all or nothing. Returns the new
    /// region ids (for rollback of a multi-chunk request).
    pub fn reserve(
        &mut self,
        journal: &mut Journal,
        roots: &Roots,
        node: u32,
        size: u64,
        warnings: &mut Vec<String>,
    ) -> IhkResult<Vec<u64>> {
        let mut created = Vec::new();
        let mut remaining = size;
        let mut huge_pools = false;
        // 2 MiB pages only, not 1 GiB: mcexec mirrors every LWK user mapping
        // with an mmap of these memfds, and a hugetlb mapping must be aligned
        // to its page size, so 1 GiB host pages would force a 1 GiB backing
        // granule on every LWK mapping (stack, heap, each ELF segment) and
        // exhaust any partition in a few mappings. The LWK still maps user
        // memory with its own large pages where guest-physical alignment
        // allows (docs/design-notes.md).
        for page_kb in [KB_2M] {
            let page = page_kb * 1024;
            if !hugepages::has_pool(roots, node, page_kb) {
                continue;
            }
            huge_pools = true;
            let want = remaining / page;
            if want == 0 {
                continue;
            }
            match self.reserve_huge(journal, roots, node, want, page_kb) {
                Ok(Some(id)) => {
                    remaining -= self.slots[&id].region.size();
                    created.push(id);
                }
                Ok(None) => {}
                Err(e) => {
                    self.drop_regions(journal, roots, &created);
                    return Err(e);
                }
            }
        }
        if remaining > 0 {
            if remaining == size {
                warnings.push(if huge_pools {
                    format!(
                        "NUMA node {node}: the kernel gave no huge pages for {}; using 4 KiB pages",
                        format_size(size)
                    )
                } else {
                    format!(
                        "NUMA node {node}: no huge page pools; using 4 KiB pages for {}",
                        format_size(size)
                    )
                });
            } else {
                warnings.push(format!(
                    "NUMA node {node}: {} of {} on 4 KiB pages (not enough huge pages)",
                    format_size(remaining),
                    format_size(size)
                ));
            }
            match Region::create(node, remaining, 4) {
                Ok(r) => created.push(self.insert(r, None)),
                Err(e) => {
                    self.drop_regions(journal, roots, &created);
                    return Err(e);
                }
            }
        }
        Ok(created)
    }

    /// Raise the pool by `want` pages and back a region with them. `None`
    /// when the kernel gave no pages or they could not be populated.
    fn reserve_huge(
        &mut self,
        journal: &mut Journal,
        roots: &Roots,
        node: u32,
        want: u64,
        page_kb: u64,
    ) -> IhkResult<Option<u64>> {
        let Some(raise) = hugepages::raise(journal, roots, node, page_kb, want)? else {
            return Ok(None);
        };
        match Region::create(node, raise.added * page_kb * 1024, page_kb) {
            Ok(r) => Ok(Some(self.insert(r, Some(raise)))),
            Err(e) => {
                tracing::warn!(
                    "node {node}: {} KiB pages could not back the region: {e}",
                    page_kb
                );
                hugepages::lower(journal, roots, &raise)?;
                Ok(None)
            }
        }
    }

    fn insert(&mut self, region: Region, raise: Option<Raise>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        tracing::info!(
            "reserved region {id}: {} on NUMA node {} ({} KiB pages)",
            format_size(region.size()),
            region.node(),
            region.page_kb()
        );
        let free = vec![(0, region.size())];
        self.slots.insert(
            id,
            Slot {
                region,
                raise,
                free,
            },
        );
        id
    }

    /// Free regions (unmap, close, lower the huge page pool). Returns what
    /// could not be restored.
    pub fn drop_regions(
        &mut self,
        journal: &mut Journal,
        roots: &Roots,
        ids: &[u64],
    ) -> Vec<String> {
        let mut failures = Vec::new();
        for id in ids {
            if let Some(slot) = self.slots.remove(id) {
                let Slot { region, raise, .. } = slot;
                drop(region);
                if let Some(r) = raise {
                    if let Err(e) = hugepages::lower(journal, roots, &r) {
                        failures.push(e.detail);
                    }
                }
            }
        }
        failures
    }

    /// Unassigned bytes per node.
    pub fn free_by_node(&self) -> BTreeMap<u32, u64> {
        let mut m = BTreeMap::new();
        for s in self.slots.values() {
            let f = s.free_bytes();
            if f > 0 {
                *m.entry(s.region.node()).or_insert(0) += f;
            }
        }
        m
    }

    /// Reserved bytes per node, assigned or not.
    pub fn total_by_node(&self) -> BTreeMap<u32, u64> {
        let mut m = BTreeMap::new();
        for s in self.slots.values() {
            *m.entry(s.region.node()).or_insert(0) += s.region.size();
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Take `size` unassigned bytes of `node`; all or nothing. Prefers one
    /// extent (the smallest free range that fits), else the largest ranges.
    pub fn take(&mut self, node: u32, size: u64) -> IhkResult<Vec<Extent>> {
        let avail = self.free_by_node().get(&node).copied().unwrap_or(0);
        if avail < size {
            return Err(IhkError::inval(format!(
                "NUMA node {node} has {} of reserved, unassigned memory; {} requested",
                format_size(avail),
                format_size(size)
            )));
        }
        let mut ranges: Vec<(u64, u64, u64)> = Vec::new(); // (len, region, offset)
        for (&id, s) in &self.slots {
            if s.region.node() == node {
                for &(off, len) in &s.free {
                    ranges.push((len, id, off));
                }
            }
        }
        let mut picked = Vec::new();
        if let Some(best) = ranges.iter().filter(|r| r.0 >= size).min_by_key(|r| r.0) {
            picked.push((best.1, best.2, size));
        } else {
            ranges.sort_by_key(|r| std::cmp::Reverse(r.0));
            let mut left = size;
            for (len, id, off) in ranges {
                if left == 0 {
                    break;
                }
                let n = len.min(left);
                picked.push((id, off, n));
                left -= n;
            }
        }
        let mut out = Vec::new();
        for (id, off, n) in picked {
            let slot = self.slots.get_mut(&id).unwrap();
            carve(&mut slot.free, off, n);
            out.push(Extent {
                region: id,
                offset: off,
                size: n,
                node,
            });
        }
        Ok(out)
    }

    /// Give extents back (release from an OS instance, shutdown, destroy).
    pub fn put_back(&mut self, extents: &[Extent]) {
        for e in extents {
            if let Some(slot) = self.slots.get_mut(&e.region) {
                slot.free.push((e.offset, e.size));
                coalesce(&mut slot.free);
            }
        }
    }

    /// Release exactly `size` bytes of `node` to Linux as whole unassigned
    /// regions (largest first).
    pub fn release(
        &mut self,
        journal: &mut Journal,
        roots: &Roots,
        node: u32,
        size: u64,
    ) -> IhkResult<()> {
        let ids = self.pick_release(node, size)?;
        let failures = self.drop_regions(journal, roots, &ids);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(IhkError::io(failures.join("; ")))
        }
    }

    /// Which whole free regions make up `size` on `node`, without changing
    /// anything.
    pub fn pick_release(&self, node: u32, size: u64) -> IhkResult<Vec<u64>> {
        let mut cands: Vec<(u64, u64)> = self
            .slots
            .iter()
            .filter(|(_, s)| s.region.node() == node && s.fully_free())
            .map(|(&id, s)| (s.region.size(), id))
            .collect();
        cands.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let free_total: u64 = self.free_by_node().get(&node).copied().unwrap_or(0);
        let mut left = size;
        let mut ids = Vec::new();
        for (len, id) in &cands {
            if *len <= left {
                ids.push(*id);
                left -= len;
            }
        }
        if left != 0 {
            let pieces: Vec<String> = cands.iter().map(|c| format_size(c.0)).collect();
            return Err(IhkError::inval(if free_total < size {
                format!(
                    "NUMA node {node} has {} reserved and unassigned; cannot release {}",
                    format_size(free_total),
                    format_size(size)
                )
            } else {
                format!(
                    "NUMA node {node}: {} cannot be released exactly; unassigned reserved memory there is in pieces of [{}] (release them whole or use 'all')",
                    format_size(size),
                    pieces.join(", ")
                )
            }));
        }
        Ok(ids)
    }

    /// Release every unassigned region (`release mem all`). Returns what
    /// could not be restored.
    pub fn release_all_free(
        &mut self,
        journal: &mut Journal,
        roots: &Roots,
        node: Option<u32>,
    ) -> Vec<String> {
        let ids: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.fully_free() && node.map_or(true, |n| s.region.node() == n))
            .map(|(&id, _)| id)
            .collect();
        self.drop_regions(journal, roots, &ids)
    }

    /// The region an extent lies in.
    pub fn region(&self, id: u64) -> Option<&Region> {
        self.slots.get(&id).map(|s| &s.region)
    }
}

/// Remove [off, off+len) from a sorted free list (it must be inside one range).
fn carve(free: &mut Vec<(u64, u64)>, off: u64, len: u64) {
    let i = free
        .iter()
        .position(|&(o, l)| o <= off && off + len <= o + l)
        .expect("carving a free range");
    let (o, l) = free.remove(i);
    if off + len < o + l {
        free.insert(i, (off + len, o + l - off - len));
    }
    if o < off {
        free.insert(i, (o, off - o));
    }
}

fn coalesce(free: &mut Vec<(u64, u64)>) {
    free.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(free.len());
    for &(o, l) in free.iter() {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == o => last.1 += l,
            _ => out.push((o, l)),
        }
    }
    *free = out;
}

/// Round down to the reservation granule.
pub fn granule_floor(bytes: u64) -> u64 {
    bytes / MEM_GRANULE * MEM_GRANULE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carve_and_coalesce() {
        let mut f = vec![(0, 100)];
        carve(&mut f, 20, 30);
        assert_eq!(f, vec![(0, 20), (50, 50)]);
        carve(&mut f, 0, 20);
        assert_eq!(f, vec![(50, 50)]);
        f.push((20, 30));
        f.push((0, 20));
        coalesce(&mut f);
        assert_eq!(f, vec![(0, 100)]);
    }

    #[test]
    fn take_release_and_put_back_on_normal_pages() {
        if !nix::unistd::geteuid().is_root() {
            mck_tests::cannot_run("take_release_and_put_back_on_normal_pages", "needs root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        // A fake sys tree without huge page pools: 4 KiB pages, a warning.
        let roots = Roots {
            proc_root: d.path().into(),
            sys_root: d.path().into(),
        };
        let mut j = Journal::open(&d.path().join("journal")).unwrap();
        let mut pool = MemPool::new();
        let mut w = Vec::new();
        pool.reserve(&mut j, &roots, 0, 16 << 20, &mut w).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(pool.free_by_node()[&0], 16 << 20);
        let a = pool.take(0, 8 << 20).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(pool.free_by_node()[&0], 8 << 20);
        assert_eq!(pool.take(0, 12 << 20).unwrap_err().errno, libc::EINVAL);
        // Partly assigned: cannot release it to Linux.
        assert_eq!(
            pool.release(&mut j, &roots, 0, 8 << 20).unwrap_err().errno,
            libc::EINVAL
        );
        pool.put_back(&a);
        assert_eq!(pool.free_by_node()[&0], 16 << 20);
        pool.release(&mut j, &roots, 0, 16 << 20).unwrap();
        assert!(pool.is_empty());
        assert!(!j.has_pending());
    }
}
