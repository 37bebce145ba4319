//! Redaction: replace the spans of secret and PII findings with typed placeholders.

use crate::finding::Finding;

/// Replace the span of each built-in secret or PII finding with `[REDACTED:<type>]`, the type
/// taken from the rule that produced it (`aws_access_key`, `email`…). Findings of other rules
/// (injection, hidden text) and findings without a span are left alone; overlapping spans are
/// merged; spans that do not fall on character boundaries of `text` are widened to them. For user
/// rules' own placeholder types, use [`Detector::redact`](crate::Detector::redact).
pub fn redact(text: &str, findings: &[Finding]) -> String {
    redact_with(text, findings, |rule| {
        crate::BUILTIN_REDACTION_TYPES.iter().find(|(id, _)| *id == rule).map(|(_, t)| (*t).to_owned())
    })
}

/// Like [`redact`], with the placeholder type chosen by the caller for each rule id (`None`
/// leaves that finding alone): the gateway uses it to redact injection spans as well.
pub fn redact_labeled(text: &str, findings: &[Finding], label: impl Fn(&str) -> Option<String>) -> String {
    redact_with(text, findings, label)
}

pub(crate) fn redact_with(text: &str, findings: &[Finding], label: impl Fn(&str) -> Option<String>) -> String {
    let mut spans: Vec<(usize, usize, String)> = findings
        .iter()
        .filter_map(|f| {
            let span = f.span.as_ref()?;
            let l = label(&f.rule)?;
            let start = floor(text, span.start.min(text.len()));
            let end = ceil(text, span.end.min(text.len()));
            (start < end).then_some((start, end, l))
        })
        .collect();
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end, l) in spans {
        if end <= pos {
            continue;
        }
        let start = start.max(pos);
        out.push_str(text.get(pos..start).unwrap_or(""));
        out.push_str("[REDACTED:");
        out.push_str(&l);
        out.push(']');
        pos = end;
    }
    out.push_str(text.get(pos..).unwrap_or(""));
    out
}

fn floor(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::{Owasp, Severity};

    fn f(rule: &str, span: std::ops::Range<usize>) -> Finding {
        Finding {
            rule: rule.into(),
            severity: Severity::High,
            owasp: Owasp::Mcp01,
            location: String::new(),
            message: String::new(),
            evidence: String::new(),
            span: Some(span),
        }
    }

    #[test]
    fn merges_overlaps_and_keeps_the_rest() {
        let text = "key AKIAIOSFODNN7EXAMPLE end";
        let out = redact(text, &[f("MOAT-SEC-001", 4..24), f("MOAT-SEC-001", 6..10)]);
        assert_eq!(out, "key [REDACTED:aws_access_key] end");
    }

    #[test]
    fn out_of_range_spans_do_not_panic() {
        assert_eq!(redact("héllo", &[f("MOAT-PII-001", 2..99)]), "h[REDACTED:email]");
        assert_eq!(redact("héllo", &[f("MOAT-PI-001", 0..2)]), "héllo");
    }
}
