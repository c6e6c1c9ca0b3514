//! Rewriting getdents64 answers for the LWK's view (`lwk/src/lwkfs/dirents.rs`).

use lwk_hosttest::errno::{EINVAL, EIO};
use lwk_hosttest::lwkfs::dirents::{numbered, push, reclen, rewrite};

/// Records as Linux would return them: (ino, name, type), d_off = index + 1.
fn listing(names: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, n) in names.iter().enumerate() {
        push(&mut v, 100 + i as u64, i as i64 + 1, 4, n.as_bytes());
    }
    v
}

/// (ino, off, type, name) of each record.
fn parse(b: &[u8]) -> Vec<(u64, i64, u8, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let len = u16::from_le_bytes([b[at + 16], b[at + 17]]) as usize;
        assert_eq!(len % 8, 0, "records are 8-byte aligned");
        let name = &b[at + 19..at + len];
        let name = &name[..name.iter().position(|&c| c == 0).unwrap()];
        out.push((
            u64::from_le_bytes(b[at..at + 8].try_into().unwrap()),
            i64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap()),
            b[at + 18],
            String::from_utf8(name.to_vec()).unwrap(),
        ));
        at += len;
    }
    out
}

/// Linux CPU 1 is LWK CPU 0; every other cpuN is left out.
fn cpus(name: &[u8]) -> Option<Vec<u8>> {
    match numbered(name, b"cpu") {
        Some(1) => Some(b"cpu0".to_vec()),
        Some(_) => None,
        None => Some(name.to_vec()),
    }
}

#[test]
fn renames_and_leaves_out() {
    let raw = listing(&[".", "..", "cpu0", "cpu1", "online", "cpufreq", "cpu12"]);
    let r = rewrite(&raw, 4096, cpus).unwrap();
    assert_eq!(r.resume, None);
    let got = parse(&r.out);
    let names: Vec<&str> = got.iter().map(|e| e.3.as_str()).collect();
    assert_eq!(names, [".", "..", "cpu0", "online", "cpufreq"]);
    // The renamed record keeps Linux's inode, offset and type.
    assert_eq!(got[2], (103, 4, 4, "cpu0".to_string()));
}

#[test]
fn a_full_buffer_puts_the_directory_back() {
    let raw = listing(&["aaaa", "bbbb", "cpu5", "cccc"]);
    let one = reclen(4);
    // Room for two records: the third (left out) and fourth are read again
    // from the second's offset.
    let r = rewrite(&raw, 2 * one, cpus).unwrap();
    assert_eq!(parse(&r.out).len(), 2);
    assert_eq!(r.resume, Some(3), "cpu5 was used (left out), so resume after it");
    // Not one record fits: EINVAL, as Linux.
    assert_eq!(rewrite(&raw, one - 1, cpus), Err(EINVAL));
    // All left out: an empty answer that used every record.
    let r = rewrite(&listing(&["cpu2", "cpu3"]), 4096, cpus).unwrap();
    assert!(r.out.is_empty());
    assert_eq!(r.resume, None);
}

#[test]
fn broken_answers_and_names() {
    let mut raw = listing(&["x"]);
    raw.truncate(10);
    assert_eq!(rewrite(&raw, 4096, cpus), Err(EIO));
    assert_eq!(numbered(b"cpu17", b"cpu"), Some(17));
    assert_eq!(numbered(b"cpufreq", b"cpu"), None);
    assert_eq!(numbered(b"cpu", b"cpu"), None);
    assert_eq!(numbered(b"cpu01", b"cpu"), None);
    assert_eq!(numbered(b"node3", b"node"), Some(3));
}
