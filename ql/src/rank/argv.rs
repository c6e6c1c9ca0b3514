//! The argv handed to the program each round. The current and the previous
//! round's vectors stay allocated, so pointers a program kept from the last
//! round remain valid until the next `ql_client` returns.

use std::ffi::{c_char, c_int, CString};

struct Block {
    _strings: Vec<CString>,
    ptrs: Vec<*mut c_char>,
}

/// The two live generations.
#[derive(Default)]
pub struct Generations {
    current: Option<Block>,
    previous: Option<Block>,
}

// SAFETY: the raw pointers point into the CStrings owned by the same Block
// and are only handed to the program; the Block is only touched under the
// rank state's mutex.
unsafe impl Send for Generations {}

impl Generations {
    /// Makes `args` the current argv; returns argc and the NULL-terminated
    /// argv. Arguments with an interior NUL are cut there (C cannot see more).
    pub fn push(&mut self, args: &[Vec<u8>]) -> (c_int, *mut *mut c_char) {
        let strings: Vec<CString> = args
            .iter()
            .map(|a| {
                let end = a.iter().position(|b| *b == 0).unwrap_or(a.len());
                CString::new(&a[..end]).expect("no interior NUL")
            })
            .collect();
        let mut ptrs: Vec<*mut c_char> =
            strings.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        ptrs.push(std::ptr::null_mut());
        let block = Block {
            _strings: strings,
            ptrs,
        };
        self.previous = self.current.take();
        self.current = Some(block);
        let cur = self.current.as_mut().expect("just set");
        ((cur.ptrs.len() - 1) as c_int, cur.ptrs.as_mut_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn argv_is_c_shaped_and_outlives_one_round() {
        let mut g = Generations::default();
        let (argc, argv) = g.push(&[b"./a.out".to_vec(), b"r1".to_vec()]);
        assert_eq!(argc, 2);
        // SAFETY: argv has argc entries and a NULL terminator (just built).
        let first = unsafe { *argv.add(1) };
        unsafe {
            assert!((*argv.add(2)).is_null());
            assert_eq!(CStr::from_ptr(first).to_bytes(), b"r1");
        }
        let (argc2, _) = g.push(&[b"./a.out".to_vec(), b"r2".to_vec(), b"x\0y".to_vec()]);
        assert_eq!(argc2, 3);
        // The previous round's strings are still there.
        assert_eq!(unsafe { CStr::from_ptr(first) }.to_bytes(), b"r1");
    }
}
