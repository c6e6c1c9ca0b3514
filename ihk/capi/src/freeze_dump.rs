//! Freezing and thawing OS instances (§1.2.2.32-33) and memory dumps
//! (§1.2.2.34).

use std::os::raw::{c_char, c_int, c_ulong};
use std::path::Path;

use ihk_host::client::Client;
use ihk_host::{IhkError, IhkResult};

use crate::util::{entry, os, string};

/// The OS indices selected by the bit string `os_set` of `n` bits.
///
/// # Safety
/// When not NULL, `os_set` points to `ceil(n / bits of unsigned long)`
/// readable words.
unsafe fn selected(os_set: *const c_ulong, n: c_int) -> IhkResult<Vec<c_int>> {
    if n <= 0 {
        return Err(IhkError::inval(format!(
            "n is {n}; expected the number of bits in os_set"
        )));
    }
    if os_set.is_null() {
        return Err(IhkError::inval("os_set is NULL"));
    }
    let bits = c_ulong::BITS as usize;
    let words = (n as usize).div_ceil(bits);
    // SAFETY: the caller's contract.
    let set = unsafe { std::slice::from_raw_parts(os_set, words) };
    Ok((0..n as usize)
        .filter(|&i| set[i / bits] >> (i % bits) & 1 == 1)
        .map(|i| i as c_int)
        .collect())
}

/// Apply `op` to every selected instance: all are connected first (a
/// missing one is ENOENT before anything changes), then each is asked;
/// the first error is returned.
fn for_each_selected(
    list: Vec<c_int>,
    op: impl Fn(&mut Client) -> IhkResult<()>,
) -> IhkResult<c_int> {
    let mut clients = Vec::with_capacity(list.len());
    for i in list {
        clients.push(os(i)?);
    }
    let mut first = None;
    for c in &mut clients {
        if let Err(e) = op(c) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(0), Err)
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_freeze(os_set: *mut c_ulong, n: c_int) -> c_int {
    entry(|| {
        // SAFETY: the caller passes n bits at os_set.
        let list = unsafe { selected(os_set, n) }?;
        for_each_selected(list, |c| c.os_freeze())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_thaw(os_set: *mut c_ulong, n: c_int) -> c_int {
    entry(|| {
        // SAFETY: the caller passes n bits at os_set.
        let list = unsafe { selected(os_set, n) }?;
        for_each_selected(list, |c| c.os_thaw())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_makedumpfile(
    index: c_int,
    dump_file: *mut c_char,
    dump_level: c_int,
    interactive: c_int,
) -> c_int {
    entry(|| {
        if index < 0 {
            return Err(IhkError::inval(format!(
                "OS instance index {index} is negative"
            )));
        }
        if dump_level != 0 && dump_level != 24 {
            return Err(IhkError::inval(format!(
                "dump level {dump_level}: expected 0 or 24"
            )));
        }
        if interactive != 0 && interactive != 1 {
            return Err(IhkError::inval(format!(
                "interactive is {interactive}; expected 0 or 1"
            )));
        }
        // NULL or "" is ENOENT here (§1.2.2.34).
        let path = if dump_file.is_null() {
            ""
        } else {
            // SAFETY: the caller passes a NUL-terminated path.
            unsafe { string(dump_file, "dump_file") }?
        };
        if path.is_empty() {
            return Err(IhkError::noent("no dump file name given"));
        }
        // A missing instance is ENODEV for this function.
        let mut c = os(index).map_err(|e| {
            if e.errno == libc::ENOENT {
                IhkError::new(libc::ENODEV, e.detail)
            } else {
                e
            }
        })?;
        c.os_makedumpfile(Path::new(path), dump_level, interactive == 1)
            .map(|_| 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_set_bits_select_instances() {
        let set: [c_ulong; 2] = [0b101, 1];
        // SAFETY: two words, 70 bits.
        assert_eq!(
            unsafe { selected(set.as_ptr(), 70) }.unwrap(),
            vec![0, 2, 64]
        );
        // SAFETY: only the first 2 bits are read.
        assert_eq!(unsafe { selected(set.as_ptr(), 2) }.unwrap(), vec![0]);
        // SAFETY: refused before any access.
        assert_eq!(
            unsafe { selected(set.as_ptr(), 0) }.unwrap_err().errno,
            libc::EINVAL
        );
        assert_eq!(
            unsafe { selected(std::ptr::null(), 8) }.unwrap_err().errno,
            libc::EINVAL
        );
    }
}
