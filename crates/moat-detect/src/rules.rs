//! Rules as data: the syntax users write (TOML rule files) and the checked rules the engine runs.
//!
//! A rule file is a TOML document with a `version` and a list of `[[rule]]` tables. Every rule
//! carries its own evidence: `examples` that must produce a finding of that rule and
//! `negative_examples` that must not. [`check_examples`](crate::Detector::check_examples) runs them;
//! the test suite runs it on the built-in rules and `moat` runs it on user rules at load time.

use serde::Deserialize;

use crate::finding::{Owasp, Severity};

/// The rule-file format version this engine reads.
pub const RULE_FILE_VERSION: u32 = 1;

/// Built-in rule files, embedded in the binary: (file name, contents).
pub const BUILTIN_RULE_FILES: [(&str, &str); 5] = [
    ("tool-poisoning.toml", include_str!("../rules/tool-poisoning.toml")),
    ("prompt-injection.toml", include_str!("../rules/prompt-injection.toml")),
    ("hidden-text.toml", include_str!("../rules/hidden-text.toml")),
    ("secrets.toml", include_str!("../rules/secrets.toml")),
    ("pii.toml", include_str!("../rules/pii.toml")),
];

/// Largest compiled program one user pattern may produce (bytes); keeps matching cheap and bounded.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// The same limit for the built-in rules, whose bounded windows over Unicode classes compile larger.
pub const BUILTIN_PATTERN_SIZE_LIMIT: usize = 16 << 20;
/// Deepest nesting one pattern may use.
pub const PATTERN_NEST_LIMIT: u32 = 64;
/// Largest window (bytes either side of a keyword hit) a rule may ask for.
pub const MAX_WINDOW: usize = 1024;
/// Window used when a rule with keywords names none.
pub const DEFAULT_WINDOW: usize = 240;

/// One rule file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub version: u32,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSyntax>,
}

/// Where a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Text such as tool results, documents and resource contents.
    Text,
    /// Tool metadata, server instructions, prompts and resource templates (one string field at a time).
    Tool,
    /// Checks across a whole set of servers (shadowing, cross-server references).
    ServerSet,
}

/// A detector implemented in code rather than by a pattern. Its rule entry still carries the id,
/// severity, OWASP risk, description and examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    UnicodeTags,
    InvisibleFormat,
    BidiControls,
    PrivateUse,
    AnsiEscape,
    AnsiStyle,
    ControlChars,
    Base64Payload,
    HexPayload,
    HtmlCommentPayload,
    ToolNameConfusable,
    ToolNameShadowing,
    CrossServerReference,
    DescriptionPadding,
    DescriptionLength,
}

/// Where a rule without keywords runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// Only near clusters of at least four digits (numbers: cards, phones, IBANs, IP addresses).
    Digits,
}

/// A check run on a regex match before it becomes a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Payment card number: Luhn checksum, 13–19 digits.
    Luhn,
    /// IBAN: ISO 13616 mod-97 checksum.
    Iban,
    /// US social security number: area/group/serial ranges that are issued.
    UsSsn,
    /// Japanese My Number (individual number): check digit.
    MyNumber,
    /// IPv4 address: four octets 0–255, not a version-like `1.2.3.4` string.
    Ipv4,
    /// The `secret` capture group has high Shannon entropy (≥ 3.5 bits per char, mixed classes).
    Entropy,
    /// The `secret` capture group is not a placeholder (`password`, `${VAR}`, `<pass>`, `****`).
    NotPlaceholder,
    /// 8–15 digits: a plausible phone number.
    Phone,
}

/// One rule as written in a rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSyntax {
    pub id: String,
    pub name: String,
    pub owasp: Owasp,
    pub severity: Severity,
    pub scope: Vec<Scope>,
    pub description: String,
    /// What the finding tells a person; defaults to the description.
    #[serde(default)]
    pub message: Option<String>,
    /// Case-insensitive literals; the pattern runs only on windows around their hits.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Bytes either side of a keyword hit that the pattern sees.
    #[serde(default)]
    pub window: Option<usize>,
    /// For a rule without keywords: run it only near digit clusters instead of on the whole text.
    #[serde(default)]
    pub anchor: Option<Anchor>,
    /// A `regex` crate pattern (linear time). Exactly one of `pattern` and `builtin`.
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub builtin: Option<Builtin>,
    /// Suppress a match when a negation cue ("never", "does not", …) precedes it in the same clause.
    #[serde(default)]
    pub negation: bool,
    /// Lower a match to `low` when it is quoted inside text that discusses attacks.
    #[serde(default)]
    pub mention_aware: bool,
    #[serde(default)]
    pub validate: Option<Validator>,
    /// Placeholder type for redaction (`[REDACTED:<redact_as>]`); set on secret and PII rules.
    #[serde(default)]
    pub redact_as: Option<String>,
    /// Show the evidence masked (secrets).
    #[serde(default)]
    pub mask_evidence: bool,
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub negative_examples: Vec<String>,
}

impl RuleSyntax {
    /// The message a finding of this rule carries.
    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or(&self.description)
    }
}

/// Why a rule file or rule was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    #[error("rule file `{file}` is not valid TOML: {detail}")]
    Syntax { file: String, detail: String },
    #[error("rule file `{file}` has version {found}; this engine reads version {expected}")]
    Version { file: String, found: u32, expected: u32 },
    #[error("rule `{id}` in `{file}`: {problem}")]
    Rule { file: String, id: String, problem: String },
    #[error("rule id `{id}` is defined twice (in `{first}` and `{second}`)")]
    DuplicateId { id: String, first: String, second: String },
    #[error("keyword prefilter could not be built: {0}")]
    Prefilter(String),
}

/// Parse one rule file. Checks the shape of each rule; patterns are compiled by the engine.
///
/// # Errors
/// A [`RuleError`] naming the file (and rule) when the TOML is invalid, the version is not
/// [`RULE_FILE_VERSION`], or a rule is malformed.
pub fn parse_rule_file(file: &str, src: &str) -> Result<Vec<RuleSyntax>, RuleError> {
    let parsed: RuleFile = toml::from_str(src)
        .map_err(|e| RuleError::Syntax { file: file.to_owned(), detail: e.to_string().trim().replace('\n', " ") })?;
    if parsed.version != RULE_FILE_VERSION {
        return Err(RuleError::Version { file: file.to_owned(), found: parsed.version, expected: RULE_FILE_VERSION });
    }
    for rule in &parsed.rules {
        let problem = |p: &str| RuleError::Rule { file: file.to_owned(), id: rule.id.clone(), problem: p.to_owned() };
        if !valid_id(&rule.id) {
            return Err(problem("an id is `MOAT-` or `USER-` then upper-case letters, a dash and digits"));
        }
        match (&rule.pattern, &rule.builtin) {
            (Some(_), Some(_)) => return Err(problem("has both `pattern` and `builtin`")),
            (None, None) => return Err(problem("has neither `pattern` nor `builtin`")),
            _ => {}
        }
        if rule.scope.is_empty() {
            return Err(problem("has an empty `scope`"));
        }
        if rule.examples.is_empty() {
            return Err(problem("has no `examples`; every rule must show what it matches"));
        }
        if rule.negative_examples.is_empty() {
            return Err(problem("has no `negative_examples`; every rule must show what it leaves alone"));
        }
        if rule.window.is_some_and(|w| w == 0 || w > MAX_WINDOW) {
            return Err(problem(&format!("`window` must be between 1 and {MAX_WINDOW}")));
        }
        if rule.keywords.iter().any(|k| k.trim().is_empty()) {
            return Err(problem("has an empty keyword"));
        }
        if rule.anchor.is_some() && !rule.keywords.is_empty() {
            return Err(problem("a rule has either `keywords` or an `anchor`, not both"));
        }
        if rule.builtin.is_some() && !rule.keywords.is_empty() {
            return Err(problem("a builtin rule takes no `keywords`"));
        }
        if rule.scope.contains(&Scope::ServerSet) && rule.builtin.is_none() {
            return Err(problem("only builtin rules can have the `server_set` scope"));
        }
        if let Some(label) = &rule.redact_as {
            if label.is_empty() || !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(problem("`redact_as` is lower-case letters, digits and `_`"));
            }
        }
    }
    Ok(parsed.rules)
}

fn valid_id(id: &str) -> bool {
    let rest = match id.strip_prefix("MOAT-").or_else(|| id.strip_prefix("USER-")) {
        Some(r) => r,
        None => return false,
    };
    let Some((family, number)) = rest.split_once('-') else {
        return false;
    };
    !family.is_empty()
        && family.bytes().all(|b| b.is_ascii_uppercase())
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("MOAT-TP-001"));
        assert!(valid_id("USER-ACME-7"));
        assert!(!valid_id("MOAT-tp-001"));
        assert!(!valid_id("TP-001"));
        assert!(!valid_id("MOAT-TP-"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let src = "version = 1\n[[rule]]\nid='USER-X-1'\nname='x'\nowasp='MCP06'\nseverity='high'\nscope=['text']\ndescription='d'\npattern='x'\nexamples=['x']\nnegative_examples=['y']\nseverty='low'\n";
        let err = parse_rule_file("u.toml", src).unwrap_err();
        assert!(err.to_string().contains("severty"), "{err}");
    }

    #[test]
    fn rules_without_examples_are_rejected() {
        let src = "version = 1\n[[rule]]\nid='USER-X-1'\nname='x'\nowasp='MCP06'\nseverity='high'\nscope=['text']\ndescription='d'\npattern='x'\nnegative_examples=['y']\n";
        let err = parse_rule_file("u.toml", src).unwrap_err();
        assert!(err.to_string().contains("no `examples`"), "{err}");
    }

    #[test]
    fn wrong_version_is_rejected() {
        let err = parse_rule_file("u.toml", "version = 2\n").unwrap_err();
        assert!(matches!(err, RuleError::Version { found: 2, .. }));
    }
}
