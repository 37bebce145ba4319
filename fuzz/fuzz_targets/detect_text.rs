//! Fuzz the text scanner: any UTF-8 input must scan without panicking, every span must lie
//! inside the input on character boundaries, and sanitize/redact must hold their contracts.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use moat_detect::{redact, sanitize, Detector, Verdict};

fn detector() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| Detector::builtin().expect("built-in rules compile"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let d = detector();
    let findings = d.scan_text(text);
    for f in &findings {
        if let Some(span) = &f.span {
            assert!(span.start <= span.end && span.end <= text.len(), "span {span:?} out of bounds");
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end), "span {span:?} splits a character");
        }
    }
    let _ = Verdict::of(&findings);
    let redacted = redact(text, &findings);
    let _ = d.redact(text, &findings);
    // Sanitizing twice changes nothing more, and never grows the text.
    let once = sanitize(text);
    assert!(once.len() <= text.len());
    assert_eq!(sanitize(&once), once);
    let _ = redacted;
});
