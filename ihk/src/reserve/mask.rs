//! CPU masks as the kernel prints them in `/proc/irq/*/smp_affinity`:
//! hexadecimal, most significant word first, 32-bit words separated by
//! commas (`00000000,00000003`).

use std::collections::BTreeSet;

/// Parse a mask into CPU ids.
pub fn parse_hex_mask(text: &str) -> Option<BTreeSet<u32>> {
    let digits: String = text.trim().chars().filter(|&c| c != ',').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut set = BTreeSet::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let v = c.to_digit(16)?;
        for b in 0..4 {
            if v & (1 << b) != 0 {
                set.insert((i * 4 + b) as u32);
            }
        }
    }
    Some(set)
}

/// Print CPU ids as a mask laid out like `template` (same number of hex
/// digits and comma positions), widened if a CPU does not fit.
pub fn format_hex_mask_like(cpus: &BTreeSet<u32>, template: &str) -> String {
    let t = template.trim();
    let template_digits = t.chars().filter(|&c| c != ',').count();
    let needed = cpus
        .iter()
        .next_back()
        .map(|&m| m as usize / 4 + 1)
        .unwrap_or(1);
    let ndigits = template_digits.max(needed);
    let mut nibbles = vec![0u32; ndigits];
    for &c in cpus {
        nibbles[c as usize / 4] |= 1 << (c % 4);
    }
    let hex: Vec<char> = nibbles
        .iter()
        .rev()
        .map(|&v| std::char::from_digit(v, 16).unwrap_or('0'))
        .collect();
    if !t.contains(',') {
        return hex.into_iter().collect();
    }
    // Commas every 8 digits counted from the right, as the kernel prints.
    let mut out = String::new();
    for (i, ch) in hex.iter().enumerate() {
        let from_right = ndigits - i;
        if i > 0 && from_right % 8 == 0 {
            out.push(',');
        }
        out.push(*ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn parses_kernel_masks() {
        assert_eq!(parse_hex_mask("3\n").unwrap(), set(&[0, 1]));
        assert_eq!(parse_hex_mask("00000001,00000002").unwrap(), set(&[1, 32]));
        assert_eq!(parse_hex_mask("0").unwrap(), set(&[]));
        assert!(parse_hex_mask("xyz").is_none());
    }

    #[test]
    fn formats_like_the_template() {
        assert_eq!(format_hex_mask_like(&set(&[0]), "3"), "1");
        assert_eq!(
            format_hex_mask_like(&set(&[1, 32]), "00000000,00000003"),
            "00000001,00000002"
        );
        assert_eq!(format_hex_mask_like(&set(&[0, 2]), "ff"), "05");
        assert_eq!(format_hex_mask_like(&set(&[9]), "3"), "200");
        for m in ["3", "00000000,000000ff", "1f"] {
            let s = parse_hex_mask(m).unwrap();
            assert_eq!(format_hex_mask_like(&s, m), m);
        }
    }
}
