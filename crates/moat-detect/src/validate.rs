//! Checks run on a regex match before it becomes a finding: checksums and entropy. They turn a
//! pattern that looks like a card number or a key into one that is one.

use crate::rules::Validator;

/// Run `validator` on `matched` (for [`Validator::Entropy`], on the `secret` group the caller passes).
pub(crate) fn check(validator: Validator, matched: &str) -> bool {
    match validator {
        Validator::Luhn => luhn(matched),
        Validator::Iban => iban(matched),
        Validator::UsSsn => us_ssn(matched),
        Validator::MyNumber => my_number(matched),
        Validator::Ipv4 => ipv4(matched),
        Validator::Entropy => high_entropy(matched) && !placeholder(matched),
        Validator::NotPlaceholder => !placeholder(matched),
        Validator::Phone => (8..=15).contains(&digits(matched).len()),
    }
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// Luhn checksum over 13–19 digits, not all the same digit.
pub(crate) fn luhn(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || d.windows(2).all(|w| w.first() == w.get(1)) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616 IBAN: two letters, two check digits, up to 30 alphanumerics; mod 97 == 1.
pub(crate) fn iban(s: &str) -> bool {
    let compact: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.iter().chain(head.iter()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// US SSN `AAA-GG-SSSS`: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub(crate) fn us_ssn(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 {
        return false;
    }
    let area = d.iter().take(3).fold(0, |a, x| a * 10 + x);
    let group = d.iter().skip(3).take(2).fold(0, |a, x| a * 10 + x);
    let serial = d.iter().skip(5).fold(0, |a, x| a * 10 + x);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// Japanese My Number: 12 digits, the last a check digit (mod 11 over weights 2–7).
pub(crate) fn my_number(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 12 {
        return false;
    }
    let Some((&check, body)) = d.split_last() else { return false };
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(n, &p)| {
            let n = n as u32 + 1;
            let q = if n <= 6 { n + 1 } else { n - 5 };
            p * q
        })
        .sum();
    let r = sum % 11;
    let expected = if r <= 1 { 0 } else { 11 - r };
    check == expected
}

/// Four dotted octets 0–255, without leading zeros, and not a version string such as `1.2.3.4`
/// (at least one octet of two or more digits).
pub(crate) fn ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return false;
    }
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && p.len() <= 3
            && !(p.len() > 1 && p.starts_with('0'))
            && p.parse::<u16>().is_ok_and(|v| v <= 255)
    });
    ok && parts.iter().any(|p| p.len() >= 2)
}

/// Documentation placeholders rather than values: `password`, `${VAR}`, `<pass>`, `****`, `xxxx`,
/// `your-…`, `changeme`.
pub(crate) fn placeholder(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    const WORDS: [&str; 12] = [
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "changeme",
        "example",
        "your",
        "redacted",
        "placeholder",
        "dummy",
        "test",
    ];
    l.starts_with('$')
        || l.starts_with('<')
        || l.starts_with('{')
        || l.starts_with('%')
        || l.chars().all(|c| c == '*' || c == 'x' || c == '.')
        || WORDS.iter().any(|w| l == *w || l.starts_with(&format!("{w}-")) || l.starts_with(&format!("{w}_")))
        || l.contains("here")
        || l.contains("xxxx")
}

/// Shannon entropy of at least 3.5 bits per character, with both letters and digits, and at least
/// 16 characters: a random token rather than a word or an identifier.
pub(crate) fn high_entropy(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() < 16 {
        return false;
    }
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    let has_alpha = bytes.iter().any(u8::is_ascii_alphabetic);
    if !(has_digit && has_alpha) {
        return false;
    }
    shannon(bytes) >= 3.5
}

pub(crate) fn shannon(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in bytes {
        if let Some(c) = counts.get_mut(b as usize) {
            *c += 1;
        }
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_only() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("0000 0000 0000 0000"));
    }

    #[test]
    fn iban_checksum() {
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
    }

    #[test]
    fn ssn_ranges() {
        assert!(us_ssn("123-45-6789"));
        assert!(!us_ssn("666-45-6789"));
        assert!(!us_ssn("900-45-6789"));
        assert!(!us_ssn("123-00-6789"));
    }

    #[test]
    fn my_number_check_digit() {
        assert!(my_number("123456789018"));
        assert!(!my_number("123456789012"));
    }

    #[test]
    fn ipv4_shapes() {
        assert!(ipv4("192.168.10.1"));
        assert!(!ipv4("1.2.3.4"));
        assert!(!ipv4("300.1.1.1"));
        assert!(!ipv4("01.20.30.40"));
    }

    #[test]
    fn entropy() {
        assert!(high_entropy("q8Zr2LmX0vB7tN4wK1pY"));
        assert!(!high_entropy("aaaaaaaaaaaaaaaaaaaa1"));
        assert!(!high_entropy("configuration_value"));
    }
}
