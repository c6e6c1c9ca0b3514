//! The Linux initial stack layout (`lwk/src/elf/layout.rs`).

use lwk_hosttest::elf::layout::*;
use lwk_hosttest::errno::EINVAL;

const TOP: u64 = 0x2000_0000_0000;

fn aux() -> AuxInfo {
    AuxInfo { phdr: 0x40_0040, phnum: 9, base: 0x7000_0000, entry: 0x40_1000, uid: 1000, euid: 1001, gid: 100, egid: 101, hwcap: 0x178b_fbff, minsigstksz: 3632, sysinfo_ehdr: 0x1eff_ffff_f000 }
}

/// `execfn\0 argv.. envp..` and the offsets of each string.
fn blob(strs: &[&str]) -> (Vec<u8>, Vec<u64>) {
    let mut b = Vec::new();
    let mut offs = Vec::new();
    for s in strs {
        offs.push(b.len() as u64);
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }
    (b, offs)
}

fn auxv(words: &[u64], argc: usize, envc: usize) -> Vec<(u64, u64)> {
    words[argc + envc + 3..].chunks(2).map(|p| (p[0], p[1])).collect()
}

#[test]
fn argv_envp_auxv_in_order() {
    let (b, offs) = blob(&["/bin/prog", "prog", "-x", "HOME=/root"]);
    let l = compute(TOP, &b, 2, 1, &aux()).unwrap();
    let w = &l.words;
    assert_eq!(w[0], 2, "argc");
    assert_eq!(&w[1..3], &[l.strings + offs[1], l.strings + offs[2]], "argv");
    assert_eq!(w[3], 0);
    assert_eq!(w[4], l.strings + offs[3], "envp");
    assert_eq!(w[5], 0);
    let av = auxv(w, 2, 1);
    assert_eq!(av.last(), Some(&(AT_NULL, 0)));
    let get = |k: u64| av.iter().find(|p| p.0 == k).map(|p| p.1);
    assert_eq!(get(AT_PHDR), Some(0x40_0040));
    assert_eq!(get(AT_PHENT), Some(56));
    assert_eq!(get(AT_PHNUM), Some(9));
    assert_eq!(get(AT_PAGESZ), Some(4096));
    assert_eq!(get(AT_BASE), Some(0x7000_0000));
    assert_eq!(get(AT_ENTRY), Some(0x40_1000));
    assert_eq!((get(AT_UID), get(AT_EUID), get(AT_GID), get(AT_EGID)), (Some(1000), Some(1001), Some(100), Some(101)));
    assert_eq!(get(AT_PLATFORM), Some(l.platform));
    assert_eq!(get(AT_RANDOM), Some(l.random));
    assert_eq!(get(AT_EXECFN), Some(l.strings), "execfn is the blob's first string");
    assert_eq!(get(AT_MINSIGSTKSZ), Some(3632));
    assert_eq!(get(AT_SECURE), Some(0));
    assert_eq!(get(AT_SYSINFO_EHDR), Some(0x1eff_ffff_f000), "the vDSO");
    // Every key once.
    let mut keys: Vec<u64> = av.iter().map(|p| p.0).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), av.len());
}

#[test]
fn areas_are_aligned_and_do_not_overlap() {
    for n in 0..40usize {
        let strs: Vec<String> = (0..=n).map(|i| "a".repeat(i * 7 % 13)).collect();
        let refs: Vec<&str> = strs.iter().map(|s| s.as_str()).collect();
        let (b, _) = blob(&refs);
        let (argc, envc) = (n / 2, n - n / 2);
        let l = compute(TOP - (n as u64 % 3) * 8, &b, argc, envc, &aux()).unwrap();
        let top = TOP - (n as u64 % 3) * 8;
        assert_eq!(l.sp % 16, 0, "rsp at entry 16-byte aligned");
        assert_eq!(l.strings % 8, 0);
        assert!(l.strings + b.len() as u64 + 8 <= top, "8 zero bytes above the strings");
        assert_eq!(l.platform + 8, l.strings);
        assert_eq!(l.random + 16, l.platform);
        assert!(l.sp + 8 * l.words.len() as u64 <= l.random, "words below the random bytes");
        assert!(l.random - (l.sp + 8 * l.words.len() as u64) < 16, "no more than alignment padding");
        assert_eq!(l.words.len(), 3 + argc + envc + 2 * 21);
        assert_eq!(string_area(top, b.len()), (l.strings, l.platform, l.random));
    }
}

#[test]
fn blob_must_hold_exactly_the_announced_strings() {
    let (b, _) = blob(&["/bin/prog", "prog", "X=1"]);
    assert_eq!(compute(TOP, &b, 2, 1, &aux()), Err(EINVAL), "one too few");
    assert_eq!(compute(TOP, &b, 1, 0, &aux()), Err(EINVAL), "one too many");
    assert!(compute(TOP, &b, 1, 1, &aux()).is_ok());
    let unterminated = b"/bin/prog\0prog".to_vec();
    assert_eq!(compute(TOP, &unterminated, 1, 0, &aux()), Err(EINVAL));
}

#[test]
fn no_vdso_no_sysinfo_ehdr() {
    let (b, _) = blob(&["/bin/prog", "prog"]);
    let l = compute(TOP, &b, 1, 0, &AuxInfo { sysinfo_ehdr: 0, ..aux() }).unwrap();
    assert!(auxv(&l.words, 1, 0).iter().all(|p| p.0 != AT_SYSINFO_EHDR));
}
