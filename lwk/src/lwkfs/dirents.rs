//! Rewriting a `getdents64` answer: the records Linux returned for a
//! directory of the view, with some dropped and some renamed (Linux's CPU
//! and node numbers become the LWK's). Pure bytes in, bytes out; unit-
//! tested on the host (`lwk/hosttest`).
//!
//! A record is `struct linux_dirent64`: `d_ino` (u64), `d_off` (i64, where
//! the next record starts, for lseek), `d_reclen` (u16), `d_type` (u8) and
//! the NUL-terminated name, padded to 8 bytes.

use alloc::vec::Vec;

use crate::errno::*;

/// Bytes before the name in a record.
const HEAD: usize = 19;

/// A record's size for a name of `len` bytes.
pub fn reclen(len: usize) -> usize {
    (HEAD + len + 1).div_ceil(8) * 8
}

/// Append one record to `out`.
pub fn push(out: &mut Vec<u8>, ino: u64, off: i64, ty: u8, name: &[u8]) {
    let len = reclen(name.len());
    let start = out.len();
    out.extend_from_slice(&ino.to_le_bytes());
    out.extend_from_slice(&off.to_le_bytes());
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.push(ty);
    out.extend_from_slice(name);
    out.resize(start + len, 0);
}

/// What a rewritten answer holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// The records for the caller's buffer.
    pub out: Vec<u8>,
    /// Where the directory must be put back (lseek) because records Linux
    /// returned did not fit once renamed: the `d_off` of the last record
    /// used. `None`: every record was used.
    pub resume: Option<i64>,
}

/// Rewrite `raw` (Linux's answer) for a caller's buffer of `cap` bytes:
/// `map` gives each name's new name, or `None` to leave the record out.
/// EINVAL when not even the first record fits (as Linux answers a buffer
/// too small for one entry); EIO when `raw` is not a list of records.
pub fn rewrite(raw: &[u8], cap: usize, mut map: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Result<Rewritten, Errno> {
    let mut out = Vec::new();
    let mut last_used: Option<i64> = None;
    let mut at = 0;
    while at < raw.len() {
        let rec = raw.get(at..at + HEAD).ok_or(EIO)?;
        let ino = u64::from_le_bytes(rec[0..8].try_into().unwrap());
        let off = i64::from_le_bytes(rec[8..16].try_into().unwrap());
        let len = u16::from_le_bytes([rec[16], rec[17]]) as usize;
        let ty = rec[18];
        let body = raw.get(at + HEAD..at + len).ok_or(EIO)?;
        if len < HEAD + 1 {
            return Err(EIO);
        }
        let name = &body[..body.iter().position(|&b| b == 0).unwrap_or(body.len())];
        if let Some(new) = map(name) {
            if out.len() + reclen(new.len()) > cap {
                // Records used so far (kept or left out) are done with.
                return match last_used {
                    Some(_) => Ok(Rewritten { out, resume: last_used }),
                    None => Err(EINVAL),
                };
            }
            push(&mut out, ino, off, ty, &new);
        }
        last_used = Some(off);
        at += len;
    }
    Ok(Rewritten { out, resume: None })
}

/// "cpu12" with prefix "cpu" → 12; `None` for any other name.
pub fn numbered(name: &[u8], prefix: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    core::str::from_utf8(digits).ok()?.parse().ok()
}
