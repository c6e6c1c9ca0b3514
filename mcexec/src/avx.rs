//! AVX on an LWK that cannot keep it. On a KVM PVM host the LWK's kernel
//! code is emulated and cannot execute XSAVE, so it saves only x87/SSE state
//! per thread (`OffloadAreaHeader::user_fpu_components`), while the
//! program's user code runs natively and sees the host's AVX. glibc then
//! picks AVX string functions at start-up, and a switch to another thread on
//! the CPU (time sharing) or a signal handler in the middle of an AVX
//! `memcpy` loses the upper halves of the YMM registers: Open MPI messages
//! between two ranks sharing an LWK CPU arrived corrupted.
//!
//! mcexec therefore turns glibc's AVX code off for the program with
//! `GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX,...`, keeping the tunables the user
//! set. Code that tests CPUID itself and uses AVX is not covered
//! (docs/mcexec.md, limitations).

/// glibc's names of the features whose code uses YMM/ZMM registers, and its
/// preference for AVX unaligned loads (set from AVX2 before tunables apply).
const MASKED: &str = "-AVX,-AVX2,-FMA,-FMA4,-F16C,-XOP,-VAES,-VPCLMULQDQ,-AVX_VNNI,\
-AVX512F,-AVX512CD,-AVX512BW,-AVX512DQ,-AVX512VL,-AVX_Fast_Unaligned_Load";

const HWCAPS: &str = "glibc.cpu.hwcaps=";

/// Must the program run without AVX? `user_fpu_components` is what the LWK
/// keeps per thread (XCR0 bits, 0 = not published).
pub fn must_mask(user_fpu_components: u64) -> bool {
    user_fpu_components != 0 && user_fpu_components & 4 == 0 && user_mode_has_avx()
}

/// Does user code on this CPU see usable AVX (as glibc decides it)?
fn user_mode_has_avx() -> bool {
    let ecx = core::arch::x86_64::__cpuid(1).ecx;
    if ecx & (1 << 27) == 0 || ecx & (1 << 28) == 0 {
        return false;
    }
    // SAFETY: OSXSAVE is set (checked above), so XGETBV is allowed.
    let xcr0 = unsafe { core::arch::x86_64::_xgetbv(0) };
    xcr0 & 6 == 6
}

/// The program's `GLIBC_TUNABLES`: `current` (the user's value) with AVX
/// masked, inside the user's own `glibc.cpu.hwcaps` if there is one.
pub fn tunables(current: Option<&str>) -> String {
    let mut items: Vec<String> = current
        .unwrap_or("")
        .split(':')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    match items.iter_mut().find(|i| i.starts_with(HWCAPS)) {
        Some(h) if h.len() > HWCAPS.len() => {
            h.push(',');
            h.push_str(MASKED);
        }
        Some(h) => h.push_str(MASKED),
        None => items.push(format!("{HWCAPS}{MASKED}")),
    }
    items.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_alone_and_keeps_the_users_tunables() {
        assert_eq!(tunables(None), format!("glibc.cpu.hwcaps={MASKED}"));
        assert_eq!(tunables(Some("")), format!("glibc.cpu.hwcaps={MASKED}"));
        assert_eq!(
            tunables(Some("glibc.malloc.check=3")),
            format!("glibc.malloc.check=3:glibc.cpu.hwcaps={MASKED}")
        );
        assert_eq!(
            tunables(Some("glibc.cpu.hwcaps=-ERMS:glibc.malloc.check=3")),
            format!("glibc.cpu.hwcaps=-ERMS,{MASKED}:glibc.malloc.check=3")
        );
    }

    #[test]
    fn an_lwk_that_saves_avx_or_did_not_say_needs_nothing() {
        assert!(!must_mask(0));
        assert!(!must_mask(0x7));
        assert!(!must_mask(0xe7));
    }
}
