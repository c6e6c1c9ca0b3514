//! Kernel arguments (whitespace- or comma-separated words, `key=value`).
//!
//! Test-only arguments: `ihk_test_panic=<ms>` (panic <ms> after boot, 0 =
//! during boot), `ihk_test_hang=<ms>` (a CPU spins with interrupts off and
//! its heartbeat frozen after <ms>), `ihk_test_hang_cpu=<id>` (which CPU;
//! default the last), `ihk_test_fault=<ms>` (CPU 0 reads an unmapped address
//! <ms> after boot: a fatal page fault). `ihk_heartbeat_ms=<ms>` (default
//! 100) is the shortest hang-detection window published for ihkmond; no
//! timer runs for it (`timer.rs`). `pvm_probe` times kernel instruction
//! sequences at boot and logs them (`probe.rs`, docs/pvm.md);
//! `pvm_profile=<nr>` single-steps one system call `<nr>` and logs where
//! its instructions were (`arch::x86_64::stepcount`; the 5th such call, or
//! the one after `pvm_profile_skip=<n>` others). `pvm_avx_probe` moves a
//! YMM register to and from memory in kernel mode at boot and logs each
//! step (`probe::avx_probe`; on a KVM PVM host the host fails the vCPU at
//! the first VEX instruction, docs/mcexec.md).

pub struct Kargs {
    pub hidos: bool,
    pub test_panic_ms: Option<u64>,
    pub test_hang_ms: Option<u64>,
    pub test_hang_cpu: Option<u32>,
    pub test_fault_ms: Option<u64>,
    pub heartbeat_ms: u64,
    pub pvm_probe: bool,
    pub pvm_avx_probe: bool,
    pub pvm_profile: Option<u64>,
    pub pvm_profile_skip: u32,
}

pub const DEFAULT_HEARTBEAT_MS: u64 = 100;

pub fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
}

pub fn parse(s: &str) -> Kargs {
    let mut k = Kargs {
        hidos: false,
        test_panic_ms: None,
        test_hang_ms: None,
        test_hang_cpu: None,
        test_fault_ms: None,
        heartbeat_ms: DEFAULT_HEARTBEAT_MS,
        pvm_probe: false,
        pvm_avx_probe: false,
        pvm_profile: None,
        pvm_profile_skip: 4,
    };
    for w in words(s) {
        let (key, val) = match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w, None),
        };
        let num = val.and_then(|v| v.parse::<u64>().ok());
        match key {
            "hidos" => k.hidos = true,
            "pvm_probe" => k.pvm_probe = true,
            "pvm_avx_probe" => k.pvm_avx_probe = true,
            "pvm_profile" => k.pvm_profile = num,
            "pvm_profile_skip" => k.pvm_profile_skip = num.unwrap_or(4) as u32,
            "ihk_test_panic" => k.test_panic_ms = num,
            "ihk_test_hang" => k.test_hang_ms = num,
            "ihk_test_fault" => k.test_fault_ms = num,
            "ihk_test_hang_cpu" => k.test_hang_cpu = num.map(|n| n as u32),
            "ihk_heartbeat_ms" => {
                k.heartbeat_ms = num.filter(|&n| n > 0).unwrap_or(DEFAULT_HEARTBEAT_MS)
            }
            _ => {}
        }
    }
    k
}
