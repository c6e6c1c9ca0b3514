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

    fn load(&self, i: u64) -> u64 {
        // SAFETY: callers pass i < ceil(pages / 64): inside the bitmap.
        unsafe { *self.word(i) }
    }

    /// The bits of pages `[p, p + span)` inside one word (`span` <= 64 -
    /// `p % 64`), as a mask of that word.
    fn mask(p: u64, span: u64) -> u64 {
        let m = if span >= 64 { u64::MAX } else { (1u64 << span) - 1 };
        m << (p % 64)
    }

    /// The first page in `[from, to)` that is allocated (`used`) or free
    /// (`!used`), a word at a time (kernel code may run in an instruction
    /// emulator, where every instruction counts: docs/pvm.md).
    fn first_in(&self, from: u64, to: u64, used: bool) -> Option<u64> {
        let mut p = from;
        while p < to {
            let span = (64 - p % 64).min(to - p);
            let w = self.load(p / 64);
            let hits = if used { w } else { !w } & Self::mask(p, span);
            if hits != 0 {
                return Some(p / 64 * 64 + hits.trailing_zeros() as u64);
            }
            p += span;
        }
        None
    }

    /// The first free page at or after `from` (`pages` if none).
    fn next_free(&self, from: u64) -> u64 {
        self.first_in(from, self.pages, false).unwrap_or(self.pages)
    }

    /// Mark pages `[first, first + count)` allocated or free, a word at a
    /// time.
    fn set_range(&mut self, first: u64, count: u64, used: bool) {
        let (mut p, end) = (first, first + count);
        while p < end {
            let span = (64 - p % 64).min(end - p);
            let m = Self::mask(p, span);
            // SAFETY: p < pages; the allocator lock serialises writers.
            unsafe {
                let w = self.word(p / 64);
                *w = if used { *w | m } else { *w & !m };
            }
            p += span;
        }
    }

    /// First run of `count` free pages at or after `from`.
    fn find(&self, count: u64, from: u64) -> Option<u64> {
        let mut p = self.next_free(from);
        while p + count <= self.pages {
            match self.first_in(p, p + count, true) {
                None => return Some(p),
                Some(used) => p = self.next_free(used + 1),
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
        self.set_range(p, count, true);
        self.free -= count;
        self.hint = p + count;
        Some(self.base + p * PAGE_SIZE)
    }

    /// Give back `count` pages from page index `first` (panics on a page
    /// that is already free).
    pub fn free(&mut self, first: u64, count: u64) {
        if let Some(free) = self.first_in(first, first + count, false) {
            panic!("free_pages: page {:#x} is already free", self.base + free * PAGE_SIZE);
        }
        self.set_range(first, count, false);
        self.free += count;
        self.hint = self.hint.min(first);
    }
}
