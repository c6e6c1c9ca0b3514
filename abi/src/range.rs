//! Pure arithmetic on half-open address ranges `[start, end)`, shared by the
//! LWK (free gaps of an address space) and mcexec (what the mirror must map
//! or unmap). No allocation: results come as iterators.
//!
//! The LWK's `mm::vma::subtract` is this one, collected.

/// `[start, end)` minus the union of `holes`, as ascending, maximal,
/// non-empty pieces. `holes` must be sorted by start; they may overlap,
/// be empty, or reach outside `[start, end)`.
pub fn subtract(start: u64, end: u64, holes: &[(u64, u64)]) -> Subtract<'_> {
    Subtract {
        cur: start,
        end,
        holes,
    }
}

/// The iterator of [`subtract`].
#[derive(Clone, Debug)]
pub struct Subtract<'a> {
    cur: u64,
    end: u64,
    holes: &'a [(u64, u64)],
}

impl Iterator for Subtract<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        while self.cur < self.end {
            let Some((&(hs, he), rest)) = self.holes.split_first() else {
                let piece = (self.cur, self.end);
                self.cur = self.end;
                return Some(piece);
            };
            if hs >= self.end {
                self.holes = &[];
                continue;
            }
            self.holes = rest;
            if he <= self.cur || he <= hs {
                continue;
            }
            let piece = (self.cur, hs);
            self.cur = self.cur.max(he);
            if piece.0 < piece.1 {
                return Some(piece);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::subtract;
    use std::vec::Vec;

    fn pieces(a: u64, b: u64, holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
        subtract(a, b, holes).collect()
    }

    #[test]
    fn subtraction() {
        assert_eq!(pieces(0, 10, &[]), [(0, 10)]);
        assert_eq!(pieces(0, 10, &[(2, 4), (6, 12)]), [(0, 2), (4, 6)]);
        assert_eq!(pieces(5, 10, &[(0, 20)]), []);
        assert_eq!(pieces(5, 10, &[(0, 6), (7, 8)]), [(6, 7), (8, 10)]);
        // Overlapping and empty holes, holes before and after.
        assert_eq!(
            pieces(10, 30, &[(0, 5), (12, 15), (14, 18), (20, 20), (40, 50)]),
            [(10, 12), (18, 30)]
        );
        assert_eq!(pieces(0, 10, &[(0, 3), (3, 10)]), []);
        assert_eq!(pieces(7, 7, &[]), []);
    }

    /// Against a brute-force model on small ranges.
    #[test]
    fn matches_a_per_address_model() {
        let sets: &[&[(u64, u64)]] = &[
            &[],
            &[(1, 3)],
            &[(0, 2), (1, 5), (7, 9)],
            &[(3, 3), (4, 12)],
            &[(2, 4), (2, 3), (8, 20)],
        ];
        for &holes in sets {
            for a in 0..12 {
                for b in a..12 {
                    let mut expected = Vec::new();
                    for x in a..b {
                        if holes.iter().any(|&(s, e)| (s..e).contains(&x)) {
                            continue;
                        }
                        match expected.last_mut() {
                            Some((_, e)) if *e == x => *e += 1,
                            _ => expected.push((x, x + 1)),
                        }
                    }
                    assert_eq!(pieces(a, b, holes), expected, "[{a}, {b}) - {holes:?}");
                }
            }
        }
    }
}
