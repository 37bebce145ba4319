//! Secret detection for configuration values.
//!
//! The patterns themselves live in `moat-detect` (one set of secret rules for the gateway,
//! the wrapper and the scanner); this module is the scanner's call site and its masking.

use moat_detect::Detector;

/// One secret found in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHit {
    /// The detection rule that matched (`MOAT-SEC-003`).
    pub rule: String,
    /// What kind of secret (`github token`), for the message.
    pub kind: String,
    /// The matched secret itself; never printed, only masked.
    pub secret: String,
}

/// Secrets that the detection engine's secret rules (`MOAT-SEC-*`) find in `value`.
pub fn find(detector: &Detector, value: &str) -> Vec<SecretHit> {
    detector
        .scan_text(value)
        .into_iter()
        .filter(|f| f.rule.starts_with("MOAT-SEC-"))
        .map(|f| {
            let secret = f.span.as_ref().and_then(|r| value.get(r.clone())).unwrap_or(value).to_owned();
            SecretHit { kind: kind_of(&f.rule, detector), rule: f.rule, secret }
        })
        .collect()
}

fn kind_of(rule: &str, detector: &Detector) -> String {
    detector.rules().find(|r| r.id == rule).map(|r| r.name.replace('-', " ")).unwrap_or_else(|| "secret".to_owned())
}

/// A form of `secret` safe to print: a short prefix (which names the kind of token, such as
/// `ghp_`) and the length, never enough to use it.
pub fn mask(secret: &str) -> String {
    let (scheme, token) = match secret.split_once(' ') {
        Some((s, t)) if s.eq_ignore_ascii_case("bearer") || s.eq_ignore_ascii_case("basic") => (format!("{s} "), t),
        _ => (String::new(), secret),
    };
    let len = token.chars().count();
    if len >= 16 {
        let prefix: String = token.chars().take(4).collect();
        format!("{scheme}{prefix}…({len} chars)")
    } else {
        format!("{scheme}***({len} chars)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_only_a_prefix_and_the_length() {
        assert_eq!(mask("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), "ghp_…(40 chars)");
        assert_eq!(mask("short"), "***(5 chars)");
        assert_eq!(mask("Bearer sk-0123456789abcdef01"), "Bearer sk-0…(21 chars)");
    }
}
