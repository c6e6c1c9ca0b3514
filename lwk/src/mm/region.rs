//! One region of the frame allocator (`frame`): the allocatable pages of a
//! memory chunk and their bitmap (1 = allocated), first-fit from a hint.
//! Pure bookkeeping on the bitmap's memory (no hardware, no locks: `frame`
//! holds the lock), so it is unit-tested on the host (`lwk/hosttest`).

pub const PAGE_SIZE: u64 = 4096;

#[derive(Clone, Copy)]
pub struct Region {
    /// Physical address of the first allocatable page.
    pub base: u64,
    pub pages: u64,
    /// Identity-mapped address of the bitmap (`ceil(pages / 64)` words).
    pub bitmap: u64,
    pub numa: u32,
    pub free: u64,
    pub hint: u64,
}

pub const EMPTY: Region = Region {
    base: 0,
    pages: 0,
    bitmap: 0,
    numa: 0,
    free: 0,
    hint: 0,
};

impl Region {
    fn word(&self, i: u64) -> *mut u64 {
        (self.bitmap + i * 8) as *mut u64
    }

    pub fn get(&self, page: u64) -> bool {
        // SAFETY: page < pages, so the word is inside this region's bitmap.
        unsafe { *self.word(page / 64) & (1 << (page % 64)) != 0 }
    }

    fn set(&mut self, page: u64, used: bool) {
        // SAFETY: as get(); the allocator lock serialises writers.
        unsafe {
            let w = self.word(page / 64);
            if used {
                *w |= 1 << (page % 64);
            } else {
                *w &= !(1 << (page % 64));
            }
        }
    }

    /// First run of `count` free pages at or after `from`.
    fn find(&self, count: u64, from: u64) -> Option<u64> {
        let mut p = from;
        while p + count <= self.pages {
            // Skip fully used words quickly.
            if p.is_multiple_of(64) {
                // SAFETY: p < pages.
                if unsafe { *self.word(p / 64) } == u64::MAX {
                    p += 64;
                    continue;
                }
            }
            if self.get(p) {
                p += 1;
                continue;
            }
            match (p..p + count).find(|&q| self.get(q)) {
                None => return Some(p),
                Some(used) => p = used + 1,
            }
        }
        None
    }

    /// `count` contiguous pages, first fit from the hint; physical address.
    pub fn alloc(&mut self, count: u64) -> Option<u64> {
        if count == 0 || count > self.free {
            return None;
        }
        let p = self
            .find(count, self.hint)
            .or_else(|| self.find(count, 0))?;
        for q in p..p + count {
            self.set(q, true);
        }
        self.free -= count;
        self.hint = p + count;
        Some(self.base + p * PAGE_SIZE)
    }

    /// Give back `count` pages from page index `first` (panics on a page
    /// that is already free).
    pub fn free(&mut self, first: u64, count: u64) {
        for p in first..first + count {
            assert!(
                self.get(p),
                "free_pages: page {:#x} is already free",
                self.base + p * PAGE_SIZE
            );
            self.set(p, false);
        }
        self.free += count;
        self.hint = self.hint.min(first);
    }
}
