//! Limits on untrusted input, as named constants and one struct the fronts share.

/// Default largest message accepted from a client (4 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Default deepest JSON nesting accepted.
pub const DEFAULT_MAX_DEPTH: usize = 128;
/// Largest message accepted from an upstream (64 MiB): upstreams are less trusted than
/// Moat itself but may legitimately return big results; the response size guard caps what
/// reaches clients.
pub const DEFAULT_MAX_UPSTREAM_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Size and nesting limits applied before a message is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: DEFAULT_MAX_MESSAGE_BYTES, max_depth: DEFAULT_MAX_DEPTH }
    }
}

impl Limits {
    pub fn upstream() -> Self {
        Limits { max_bytes: DEFAULT_MAX_UPSTREAM_MESSAGE_BYTES, max_depth: DEFAULT_MAX_DEPTH }
    }
}

/// The deepest nesting of arrays and objects in `bytes`, stopping early once `max` is
/// exceeded. Strings are skipped, escapes included, so brackets inside them do not count.
/// Linear time, no allocation; run before the parser so that depth is bounded by
/// configuration rather than by the parser's recursion limit.
pub fn exceeds_depth(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether a JSON text has a `\uXXXX` escape of an unpaired UTF-16 surrogate. Such a string
/// passes a syntax check but cannot be read as text, so a guard reading it would see nothing
/// while the upstream sees the bytes: Moat refuses the message instead. Linear, no allocation.
pub fn has_lone_surrogate(bytes: &[u8]) -> bool {
    if memchr::memchr(b'\\', bytes).is_none() {
        return false;
    }
    let hex = |at: usize| -> Option<u16> {
        let h = bytes.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if !in_string {
            if b == b'"' {
                in_string = true;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                i += 1;
            }
            b'\\' => {
                if bytes.get(i + 1) == Some(&b'u') {
                    match hex(i + 2) {
                        Some(0xD800..=0xDBFF) => {
                            let paired = bytes.get(i + 6) == Some(&b'\\')
                                && bytes.get(i + 7) == Some(&b'u')
                                && matches!(hex(i + 8), Some(0xDC00..=0xDFFF));
                            if !paired {
                                return true;
                            }
                            i += 12;
                        }
                        Some(0xDC00..=0xDFFF) => return true,
                        _ => i += 6,
                    }
                } else {
                    i += 2;
                }
            }
            _ => i += 1,
        }
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_found_and_pairs_are_not() {
        assert!(has_lone_surrogate(br#"{"a":"\udc00"}"#));
        assert!(has_lone_surrogate(br#"{"a":"x\ud800y"}"#));
        assert!(!has_lone_surrogate(br#"{"a":"\ud83d\ude00"}"#));
        assert!(!has_lone_surrogate(br#"{"a":"\\ud800"}"#), "an escaped backslash is not an escape");
        assert!(!has_lone_surrogate(br#"{"a":"\u00e9 plain"}"#));
    }

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert!(!exceeds_depth(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(exceeds_depth(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(!exceeds_depth(br#"{"a":"[[[[[[\"[[["}"#, 1));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(exceeds_depth(deep.as_bytes(), 128));
        assert!(!exceeds_depth(deep.as_bytes(), 200));
    }
}
