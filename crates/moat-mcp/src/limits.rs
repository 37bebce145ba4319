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

#[cfg(test)]
mod tests {
    use super::*;

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
