//! The compiled rule set and the text scanner every other entry point builds on.
//!
//! Design: one Aho–Corasick automaton holds every rule keyword (ASCII case-insensitive). A pass
//! over the normalized text yields keyword hits; each rule's regex then runs only on bounded
//! windows around its own hits. The few rules that have no literal anchor (numbers: cards, phones,
//! IP addresses) are compiled into one `RegexSet`, which tells in a single linear pass which of
//! them can match at all. Clean text therefore costs one automaton pass and one set pass. Every
//! engine is linear-time; user patterns are capped in size and nesting.

use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::finding::{Finding, Owasp, Severity};
use crate::normalize::{normalize, HiddenKind, HiddenRun, Normalized};
use crate::rules::{
    parse_rule_file, Anchor, Builtin, RuleError, RuleSyntax, Scope, Validator, BUILTIN_PATTERN_SIZE_LIMIT,
    BUILTIN_RULE_FILES, DEFAULT_WINDOW, PATTERN_NEST_LIMIT, PATTERN_SIZE_LIMIT,
};
use crate::validate;

/// Most findings one scan returns; adversarial input cannot make a report unbounded.
pub const MAX_FINDINGS_PER_SCAN: usize = 256;
/// Longest evidence string, in characters.
pub const MAX_EVIDENCE_CHARS: usize = 120;
/// Longest encoded run (base64/hex) that is decoded and rescanned; bigger blobs are data, not prose.
const MAX_ENCODED_RUN: usize = 16 * 1024;
/// Total bytes decoded and rescanned per scan.
const MAX_DECODED_TOTAL: usize = 64 * 1024;
/// Longest HTML comment body that is rescanned.
const MAX_COMMENT_LEN: usize = 8 * 1024;
/// How far back (bytes) a negation cue may stand before a match, within the same clause.
const NEGATION_REACH: usize = 60;
/// How far around a match (bytes) we look for words that show the text discusses attacks.
const MENTION_REACH: usize = 160;

/// A compiled, checked rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub spec: RuleSyntax,
    pub source: String,
    regex: Option<Regex>,
    /// Index of the capture group whose span is the finding (`secret`), if any.
    secret_group: Option<usize>,
    window: usize,
    text: bool,
    tool: bool,
    pub server_set: bool,
}

impl Rule {
    pub(crate) fn in_scope(&self, scope: Scope) -> bool {
        match scope {
            Scope::Text => self.text,
            Scope::Tool => self.tool,
            Scope::ServerSet => self.server_set,
        }
    }

    fn injection_like(&self) -> bool {
        matches!(self.spec.owasp, Owasp::Mcp03 | Owasp::Mcp06) && self.regex.is_some()
    }
}

#[derive(Debug)]
struct Engine {
    rules: Vec<Rule>,
    keywords: Option<AhoCorasick>,
    /// For each keyword pattern id: the rules that listen to it.
    keyword_rules: Vec<Vec<usize>>,
    /// Pattern rules with no keywords, per scope, and the set that prefilters them.
    unanchored_text: Option<(RegexSet, Vec<usize>)>,
    unanchored_tool: Option<(RegexSet, Vec<usize>)>,
    /// Rules anchored on digit clusters, per scope.
    digits_text: Option<(RegexSet, Vec<usize>)>,
    digits_tool: Option<(RegexSet, Vec<usize>)>,
}

/// The detection engine: built-in rules plus any user rules, compiled once. Cheap to clone
/// (an `Arc`), `Send + Sync`, and pure: no I/O, no globals.
#[derive(Debug, Clone)]
pub struct Detector {
    engine: Arc<Engine>,
}

/// Where a scanned string sits, for the findings' locations and for the rules that apply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub scope: Scope,
    pub location: &'a str,
}

impl Detector {
    /// The engine with the built-in rules only.
    ///
    /// # Errors
    /// Only if a built-in rule file is broken, which the test suite rules out.
    pub fn builtin() -> Result<Self, RuleError> {
        Self::with_user_rules(&[])
    }

    /// The engine with the built-in rules and user rule files, given as `(file name, contents)`.
    /// User rules go through the same loader and checks as the built-in ones; run
    /// [`Detector::check_examples`] to test their examples.
    ///
    /// # Errors
    /// A [`RuleError`] naming the file and rule when a file does not parse, a pattern does not
    /// compile (or exceeds the size and nesting limits), or an id is used twice.
    pub fn with_user_rules(user_files: &[(&str, &str)]) -> Result<Self, RuleError> {
        let mut rules: Vec<Rule> = Vec::new();
        let builtin = BUILTIN_RULE_FILES.iter().map(|f| (f.0, f.1, BUILTIN_PATTERN_SIZE_LIMIT));
        let user = user_files.iter().map(|f| (f.0, f.1, PATTERN_SIZE_LIMIT));
        for (file, src, size_limit) in builtin.chain(user) {
            for spec in parse_rule_file(file, src)? {
                if let Some(prev) = rules.iter().find(|r| r.spec.id == spec.id) {
                    return Err(RuleError::DuplicateId {
                        id: spec.id.clone(),
                        first: prev.source.clone(),
                        second: file.to_owned(),
                    });
                }
                rules.push(compile_rule(file, spec, size_limit)?);
            }
        }
        let mut keyword_index: Vec<(String, Vec<usize>)> = Vec::new();
        let mut unanchored = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.regex.is_none() {
                continue;
            }
            if rule.spec.keywords.is_empty() {
                unanchored.push(i);
            }
            for kw in &rule.spec.keywords {
                let kw = kw.to_ascii_lowercase();
                match keyword_index.iter_mut().find(|(k, _)| *k == kw) {
                    Some((_, ids)) => ids.push(i),
                    None => keyword_index.push((kw, vec![i])),
                }
            }
        }
        // The automaton reports the longest keyword at each position; a keyword that contains
        // another (e.g. `ignore` ⊃ `ignor`) must also wake the rules of the shorter one.
        let closure: Vec<Vec<usize>> = keyword_index
            .iter()
            .map(|(k, _)| {
                let mut ids: Vec<usize> = keyword_index
                    .iter()
                    .filter(|(other, _)| k.contains(other.as_str()))
                    .flat_map(|(_, ids)| ids.iter().copied())
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            })
            .collect();
        for ((_, ids), all) in keyword_index.iter_mut().zip(closure) {
            *ids = all;
        }
        let keywords = if keyword_index.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(keyword_index.iter().map(|(k, _)| k.as_str()))
                    .map_err(|e| RuleError::Prefilter(e.to_string()))?,
            )
        };
        let unanchored_set = |scope: Scope, digits: bool| -> Result<Option<(RegexSet, Vec<usize>)>, RuleError> {
            let ids: Vec<usize> = unanchored
                .iter()
                .copied()
                .filter(|&i| {
                    rules.get(i).is_some_and(|r| r.in_scope(scope) && (r.spec.anchor == Some(Anchor::Digits)) == digits)
                })
                .collect();
            if ids.is_empty() {
                return Ok(None);
            }
            let pats: Vec<&str> =
                ids.iter().filter_map(|&i| rules.get(i).and_then(|r| r.spec.pattern.as_deref())).collect();
            let set = RegexSetBuilder::new(pats)
                .size_limit(BUILTIN_PATTERN_SIZE_LIMIT)
                .nest_limit(PATTERN_NEST_LIMIT)
                .build()
                .map_err(|e| RuleError::Prefilter(e.to_string()))?;
            Ok(Some((set, ids)))
        };
        let unanchored_text = unanchored_set(Scope::Text, false)?;
        let unanchored_tool = unanchored_set(Scope::Tool, false)?;
        let digits_text = unanchored_set(Scope::Text, true)?;
        let digits_tool = unanchored_set(Scope::Tool, true)?;
        Ok(Self {
            engine: Arc::new(Engine {
                rules,
                keywords,
                keyword_rules: keyword_index.into_iter().map(|(_, ids)| ids).collect(),
                unanchored_text,
                unanchored_tool,
                digits_text,
                digits_tool,
            }),
        })
    }

    /// Every rule the engine runs, built-in first.
    pub fn rules(&self) -> impl Iterator<Item = &RuleSyntax> {
        self.engine.rules.iter().map(|r| &r.spec)
    }

    pub(crate) fn rule(&self, id: &str) -> Option<&Rule> {
        self.engine.rules.iter().find(|r| r.spec.id == id)
    }

    pub(crate) fn builtin_rule(&self, b: Builtin) -> Option<&Rule> {
        self.engine.rules.iter().find(|r| r.spec.builtin == Some(b))
    }

    /// Scan text such as a tool result or a document: injection, hidden text, secrets, PII.
    /// Spans are byte ranges of `text`; locations are empty.
    pub fn scan_text(&self, text: &str) -> Vec<Finding> {
        self.scan_str(text, Context { scope: Scope::Text, location: "" })
    }

    /// Scan one string of tool metadata (a description, a parameter name…) found at `location`.
    pub(crate) fn scan_str(&self, text: &str, ctx: Context<'_>) -> Vec<Finding> {
        let norm = normalize(text);
        let mut findings = Vec::new();
        self.hidden_findings(&norm, ctx, &mut findings);
        let mut budget = MAX_DECODED_TOTAL;
        self.pattern_findings(&norm, ctx, 0, &mut budget, &mut findings);
        finish(&mut findings);
        findings
    }

    /// Replace the span of every finding whose rule names a placeholder type (secrets, PII)
    /// with `[REDACTED:<type>]`. Findings without a span, or from rules without a type, are
    /// left alone. Overlapping spans are merged.
    pub fn redact(&self, text: &str, findings: &[Finding]) -> String {
        crate::redact::redact_with(text, findings, |rule| self.rule(rule).and_then(|r| r.spec.redact_as.clone()))
    }

    fn hidden_findings(&self, norm: &Normalized<'_>, ctx: Context<'_>, out: &mut Vec<Finding>) {
        for run in &norm.hidden {
            let builtin = match run.kind {
                HiddenKind::Tag => Builtin::UnicodeTags,
                HiddenKind::Invisible => Builtin::InvisibleFormat,
                HiddenKind::Bidi => Builtin::BidiControls,
                HiddenKind::PrivateUse => Builtin::PrivateUse,
                HiddenKind::AnsiStyle => Builtin::AnsiStyle,
                HiddenKind::AnsiControl => Builtin::AnsiEscape,
                HiddenKind::Control => Builtin::ControlChars,
            };
            let Some(rule) = self.builtin_rule(builtin).filter(|r| r.in_scope(ctx.scope)) else {
                continue;
            };
            if run.kind == HiddenKind::Tag && is_flag_sequence(run) {
                continue;
            }
            let mut severity = rule.spec.severity;
            let mut message = rule.spec.message().to_owned();
            let evidence = match run.kind {
                HiddenKind::Tag => {
                    let inner = self.scan_decoded(&run.decoded);
                    if let Some(worst) = inner.iter().max_by_key(|f| f.severity) {
                        message = format!("{message}; the hidden text is itself an instruction ({})", worst.rule);
                        severity = severity.max(worst.severity);
                    }
                    format!("decoded: {}", truncate(&run.decoded))
                }
                HiddenKind::AnsiControl if !run.decoded.is_empty() => {
                    format!("terminal hyperlink to {}", truncate(&run.decoded))
                }
                _ => {
                    let total: usize = norm.hidden.iter().filter(|h| h.kind == run.kind).map(|h| h.count).sum();
                    if run.kind == HiddenKind::Invisible && ctx.scope == Scope::Text && total <= 2 {
                        severity = Severity::Low;
                    }
                    format!("{} hidden character(s) at byte {}", run.count, run.span.start)
                }
            };
            push(out, finding(rule, severity, ctx.location, message, evidence, Some(run.span.clone())));
        }
    }

    fn pattern_findings(
        &self,
        norm: &Normalized<'_>,
        ctx: Context<'_>,
        depth: u8,
        budget: &mut usize,
        out: &mut Vec<Finding>,
    ) {
        let text: &str = &norm.text;
        let engine = &*self.engine;
        // 1. Keyword hits → windows per rule.
        let mut windows: Vec<(usize, usize, usize)> = Vec::new(); // (rule, start, end)
        if let Some(ac) = &engine.keywords {
            // Restart one byte after each hit's start, so that overlapping keywords are all seen
            // while the search between hits keeps the automaton's prefilter.
            let mut pos = 0;
            while pos < text.len() {
                let Some(hit) = ac.find(aho_corasick::Input::new(text).range(pos..)) else { break };
                pos = hit.start() + 1;
                let Some(ids) = engine.keyword_rules.get(hit.pattern().as_usize()) else { continue };
                for &ri in ids {
                    let Some(rule) = engine.rules.get(ri) else { continue };
                    if !rule.in_scope(ctx.scope) || (depth > 0 && !rule.injection_like()) {
                        continue;
                    }
                    let start = floor_char(text, hit.start().saturating_sub(rule.window));
                    let end = ceil_char(text, hit.end().saturating_add(rule.window));
                    windows.push((ri, start, end));
                }
            }
        }
        windows.sort_unstable();
        let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(windows.len());
        for w in windows {
            match merged.last_mut() {
                Some(last) if last.0 == w.0 && w.1 <= last.2 => last.2 = last.2.max(w.2),
                _ => merged.push(w),
            }
        }
        let mut seen: Vec<(usize, Range<usize>)> = Vec::new();
        for (ri, start, end) in merged {
            let (Some(rule), Some(window)) = (engine.rules.get(ri), text.get(start..end)) else { continue };
            self.run_rule(rule, window, start, norm, ctx, &mut seen, ri, out);
        }
        // 2. Rules without keywords, prefiltered by one set pass.
        let unanchored = match ctx.scope {
            Scope::Text => engine.unanchored_text.as_ref(),
            Scope::Tool => engine.unanchored_tool.as_ref(),
            Scope::ServerSet => None,
        };
        if let Some((set, ids)) = unanchored.filter(|_| depth == 0) {
            for idx in set.matches(text).iter() {
                let Some(&ri) = ids.get(idx) else { continue };
                let Some(rule) = engine.rules.get(ri) else { continue };
                self.run_rule(rule, text, 0, norm, ctx, &mut seen, ri, out);
            }
        }
        // 3. Number rules, only around clusters of digits.
        let digits = match ctx.scope {
            Scope::Text => engine.digits_text.as_ref(),
            Scope::Tool => engine.digits_tool.as_ref(),
            Scope::ServerSet => None,
        };
        if let Some((set, ids)) = digits.filter(|_| depth == 0) {
            for (start, end) in digit_windows(text) {
                let Some(window) = text.get(start..end) else { continue };
                for idx in set.matches(window).iter() {
                    let Some(&ri) = ids.get(idx) else { continue };
                    let Some(rule) = engine.rules.get(ri) else { continue };
                    self.run_rule(rule, window, start, norm, ctx, &mut seen, ri, out);
                }
            }
        }
        // 4. Encoded payloads: decode, rescan with the injection rules, report as hidden text.
        if depth == 0 {
            self.payload_findings(norm, ctx, budget, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_rule(
        &self,
        rule: &Rule,
        window: &str,
        offset: usize,
        norm: &Normalized<'_>,
        ctx: Context<'_>,
        seen: &mut Vec<(usize, Range<usize>)>,
        ri: usize,
        out: &mut Vec<Finding>,
    ) {
        let Some(re) = &rule.regex else { return };
        let text: &str = &norm.text;
        let mut emit = |m: Range<usize>, whole: Range<usize>| {
            let span = m.start + offset..m.end + offset;
            let whole = whole.start + offset..whole.end + offset;
            if seen.iter().any(|(r, s)| *r == ri && s.start < span.end && span.start < s.end) {
                return;
            }
            let matched = text.get(span.clone()).unwrap_or("");
            if let Some(v) = rule.spec.validate {
                if !validate::check(v, matched) {
                    return;
                }
            }
            if rule.spec.negation && negated(text, whole.start) {
                return;
            }
            let mut severity = rule.spec.severity;
            let mut message = rule.spec.message().to_owned();
            if rule.spec.mention_aware && mentioned(text, whole.clone()) {
                severity = Severity::Low;
                message = format!("{message} (quoted in text that discusses attacks)");
            }
            let evidence = if rule.spec.mask_evidence { mask(matched) } else { truncate(matched) };
            seen.push((ri, span.clone()));
            push(out, finding(rule, severity, ctx.location, message, evidence, Some(norm.input_span(span))));
        };
        match rule.secret_group {
            Some(g) => {
                for caps in re.captures_iter(window) {
                    let (Some(m), Some(whole)) = (caps.get(g), caps.get(0)) else { continue };
                    emit(m.range(), whole.range());
                }
            }
            None => {
                for m in re.find_iter(window) {
                    emit(m.range(), m.range());
                }
            }
        }
    }

    fn payload_findings(&self, norm: &Normalized<'_>, ctx: Context<'_>, budget: &mut usize, out: &mut Vec<Finding>) {
        let text: &str = &norm.text;
        let b64 = self.builtin_rule(Builtin::Base64Payload).filter(|r| r.in_scope(ctx.scope));
        let hex = self.builtin_rule(Builtin::HexPayload).filter(|r| r.in_scope(ctx.scope));
        let html = self.builtin_rule(Builtin::HtmlCommentPayload).filter(|r| r.in_scope(ctx.scope));
        let mut candidates: Vec<(&Rule, Range<usize>, String)> = Vec::new();
        if b64.is_some() || hex.is_some() {
            for run in encoded_runs(text) {
                let Some(run_text) = text.get(run.clone()) else { continue };
                if run.len() > MAX_ENCODED_RUN || run.len() > *budget {
                    continue;
                }
                let as_hex = is_hex(run_text) && run.len() >= MIN_HEX_RUN && run.len() % 2 == 0;
                let (rule, decoded) = if as_hex { (hex, decode_hex(run_text)) } else { (b64, decode_base64(run_text)) };
                let (Some(rule), Some(decoded)) = (rule, decoded) else { continue };
                *budget -= run.len();
                candidates.push((rule, run, decoded));
            }
        }
        if let Some(rule) = html {
            let mut from = 0;
            while let Some(open) = text.get(from..).and_then(|t| t.find("<!--")) {
                let body_start = from + open + 4;
                let rest = text.get(body_start..).unwrap_or("");
                let close = rest.find("-->").unwrap_or(rest.len());
                let body_end = body_start + close;
                if close <= MAX_COMMENT_LEN && close <= *budget {
                    *budget -= close;
                    if let Some(body) = text.get(body_start..body_end) {
                        candidates.push((rule, from + open..(body_end + 3).min(text.len()), body.to_owned()));
                    }
                }
                from = body_end;
                if from >= text.len() {
                    break;
                }
            }
        }
        for (rule, span, decoded) in candidates {
            let inner = self.scan_decoded(&decoded);
            let Some(worst) = inner.iter().max_by_key(|f| f.severity) else { continue };
            if worst.severity < Severity::Medium {
                continue;
            }
            let severity = rule.spec.severity.max(worst.severity);
            let message = format!("{} (decoded text matches {}: {})", rule.spec.message(), worst.rule, worst.message);
            let evidence = format!("decoded: {}", truncate(&decoded));
            push(out, finding(rule, severity, ctx.location, message, evidence, Some(norm.input_span(span))));
        }
    }

    /// Rescan decoded or hidden text with the injection and poisoning rules only (one level deep).
    fn scan_decoded(&self, decoded: &str) -> Vec<Finding> {
        let norm = normalize(decoded);
        let mut inner = Vec::new();
        let mut budget = 0;
        for scope in [Scope::Text, Scope::Tool] {
            self.pattern_findings(&norm, Context { scope, location: "" }, 1, &mut budget, &mut inner);
        }
        inner
    }

    /// Run every rule's `examples` and `negative_examples`: each example must produce a finding of
    /// its rule and each negative example must not. Returns one line per problem; empty when all
    /// pass. `moat` runs this on user rules at load time and the test suite on the built-in ones.
    pub fn check_examples(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for rule in &self.engine.rules {
            let id = &rule.spec.id;
            for ex in &rule.spec.examples {
                if !self.example_hits(rule, ex) {
                    problems.push(format!("rule `{id}` does not match its example `{}`", truncate(ex)));
                }
            }
            for ex in &rule.spec.negative_examples {
                if self.example_hits(rule, ex) {
                    problems.push(format!("rule `{id}` matches its negative example `{}`", truncate(ex)));
                }
            }
        }
        problems
    }

    /// Does `example` produce a finding of `rule` at medium or above (or at the rule's own
    /// severity when that is lower)?
    fn example_hits(&self, rule: &Rule, example: &str) -> bool {
        let as_servers = rule.server_set.then(|| serde_json::from_str::<serde_json::Value>(example).ok()).flatten();
        let server_findings = as_servers.as_ref().and_then(|v| {
            let servers = crate::tool::servers_from_value(v).ok()?;
            Some(self.scan_tools(&servers).into_iter().flat_map(|s| s.all_findings()).collect::<Vec<_>>())
        });
        let findings = if let Some(f) = server_findings {
            f
        } else if rule.text {
            self.scan_text(&unescape_example(example))
        } else {
            let tool = if example.trim_start().starts_with('{') {
                serde_json::from_str(example).unwrap_or(serde_json::Value::Null)
            } else {
                serde_json::json!({ "name": "example_tool", "description": unescape_example(example) })
            };
            self.scan_tool(&tool)
        };
        let floor = rule.spec.severity.min(Severity::Medium);
        findings.iter().any(|f| f.rule == rule.spec.id && f.severity >= floor)
    }
}

/// Examples in rule files may write invisible characters as `\u{…}` so that the file stays readable.
pub(crate) fn unescape_example(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("\\u{") {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let after = rest.get(pos + 3..).unwrap_or("");
        match after.find('}').and_then(|end| {
            let cp = u32::from_str_radix(after.get(..end)?, 16).ok()?;
            Some((char::from_u32(cp)?, end))
        }) {
            Some((c, end)) => {
                out.push(c);
                rest = after.get(end + 1..).unwrap_or("");
            }
            None => {
                out.push_str("\\u{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn compile_rule(file: &str, spec: RuleSyntax, size_limit: usize) -> Result<Rule, RuleError> {
    let problem = |p: String| RuleError::Rule { file: file.to_owned(), id: spec.id.clone(), problem: p };
    let regex = match &spec.pattern {
        Some(p) => Some(
            RegexBuilder::new(p)
                .size_limit(size_limit)
                .nest_limit(PATTERN_NEST_LIMIT)
                .build()
                .map_err(|e| problem(format!("pattern does not compile: {}", e.to_string().replace('\n', " "))))?,
        ),
        None => None,
    };
    let secret_group = regex.as_ref().and_then(|r| r.capture_names().position(|n| n == Some("secret")));
    if spec.validate == Some(Validator::Entropy) && secret_group.is_none() {
        return Err(problem("the entropy check needs a `(?P<secret>…)` group".to_owned()));
    }
    Ok(Rule {
        regex,
        secret_group,
        window: spec.window.unwrap_or(DEFAULT_WINDOW),
        text: spec.scope.contains(&Scope::Text),
        tool: spec.scope.contains(&Scope::Tool),
        server_set: spec.scope.contains(&Scope::ServerSet),
        source: file.to_owned(),
        spec,
    })
}

pub(crate) fn finding(
    rule: &Rule,
    severity: Severity,
    location: &str,
    message: String,
    evidence: String,
    span: Option<Range<usize>>,
) -> Finding {
    Finding {
        rule: rule.spec.id.clone(),
        severity,
        owasp: rule.spec.owasp,
        location: location.to_owned(),
        message,
        evidence,
        span,
    }
}

pub(crate) fn push(out: &mut Vec<Finding>, f: Finding) {
    if out.len() < MAX_FINDINGS_PER_SCAN {
        out.push(f);
    }
}

/// Order by position (the most severe first among equals), then drop exact repeats.
pub(crate) fn finish(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        let sa = a.span.as_ref().map_or((usize::MAX, 0), |s| (s.start, s.end));
        let sb = b.span.as_ref().map_or((usize::MAX, 0), |s| (s.start, s.end));
        sa.cmp(&sb).then_with(|| a.rule.cmp(&b.rule)).then_with(|| b.severity.cmp(&a.severity))
    });
    findings
        .dedup_by(|a, b| a.rule == b.rule && a.span == b.span && a.location == b.location && a.evidence == b.evidence);
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The clause before `at`, at most `reach` bytes, cut at sentence punctuation.
fn clause_before(text: &str, at: usize, reach: usize) -> &str {
    let start = floor_char(text, at.saturating_sub(reach));
    let before = text.get(start..at).unwrap_or("");
    let mut clause = match before.rfind(['.', ';', '!', '?', '\n', ':', ',', '(', ')']) {
        Some(p) => before.get(p + 1..).unwrap_or(""),
        None => before,
    };
    for joiner in [" and ", " then ", " but ", " And ", " Then ", " But "] {
        if let Some(p) = clause.rfind(joiner) {
            clause = clause.get(p + joiner.len()..).unwrap_or("");
        }
    }
    clause
}

/// A negation cue in the clause before `at`: "this tool never reads ~/.ssh". A double negative
/// ("do not forget to read") is not one.
fn negated(text: &str, at: usize) -> bool {
    let clause = clause_before(text, at, NEGATION_REACH).to_ascii_lowercase();
    const CUES: [&str; 22] = [
        "never",
        "not ",
        "n't ",
        "no ",
        "without",
        "nor ",
        "neither",
        "prevent",
        "block",
        "refuse",
        "avoid",
        "disallow",
        "forbid",
        "prohibit",
        "deny",
        "denies",
        "won't",
        "cannot",
        "instead of",
        "rather than",
        "except",
        "excluding",
    ];
    const DOUBLE: [&str; 7] = ["forget", "fail", "hesitate", "omit", "skip", "neglect", "miss"];
    for cue in CUES {
        if let Some(p) = clause.rfind(cue) {
            let after = clause.get(p + cue.len()..).unwrap_or("");
            if DOUBLE.iter().any(|d| after.trim_start().starts_with(d) || after.contains(d)) {
                return false;
            }
            return true;
        }
    }
    false
}

/// The match is quoted and the text around it discusses attacks ("phrases like 'ignore previous
/// instructions' are a common injection"): a mention, not a use.
fn mentioned(text: &str, m: Range<usize>) -> bool {
    let before = text.get(floor_char(text, m.start.saturating_sub(3))..m.start).unwrap_or("");
    let after = text.get(m.end..ceil_char(text, m.end + 3)).unwrap_or("");
    let quote = |s: &str| s.contains(['"', '\'', '“', '”', '‘', '’', '«', '»', '`', '「', '」']);
    if !(quote(before) || quote(after)) {
        return false;
    }
    let lo = floor_char(text, m.start.saturating_sub(MENTION_REACH));
    let hi = ceil_char(text, m.end + MENTION_REACH);
    let around = text.get(lo..hi).unwrap_or("").to_ascii_lowercase();
    const CUES: [&str; 20] = [
        "attack",
        "injection",
        "jailbreak",
        "malicious",
        "adversar",
        "example",
        "e.g.",
        "such as",
        "phrase",
        "detect",
        "classifier",
        "red team",
        "payload",
        "owasp",
        "exploit",
        "vulnerab",
        "security",
        "guardrail",
        "defen",
        "mitigat",
    ];
    CUES.iter().any(|c| around.contains(c))
}

/// A subdivision flag (🏴 + tag letters + cancel tag, e.g. `gbeng`) is an emoji, not hidden text:
/// at most seven lower-case letters or digits. Hidden instructions need more, and capitals or spaces.
fn is_flag_sequence(run: &HiddenRun) -> bool {
    run.decoded.len() <= 7 && run.decoded.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Digits further apart than this start a new cluster.
const DIGIT_GAP: usize = 4;
/// A cluster needs this many digits before number rules look at it.
const MIN_CLUSTER_DIGITS: usize = 4;
/// Bytes either side of a digit cluster that number rules see (IBAN country codes, `+`, brackets).
const DIGIT_MARGIN: usize = 24;

/// Windows around clusters of at least [`MIN_CLUSTER_DIGITS`] digits, merged, on char boundaries.
fn digit_windows(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut cluster: Option<(usize, usize, usize)> = None; // (first digit, last digit, count)
    let flush = |c: (usize, usize, usize), out: &mut Vec<(usize, usize)>| {
        if c.2 >= MIN_CLUSTER_DIGITS {
            let start = floor_char(text, c.0.saturating_sub(DIGIT_MARGIN));
            let end = ceil_char(text, c.1 + 1 + DIGIT_MARGIN);
            match out.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => out.push((start, end)),
            }
        }
    };
    for (i, b) in bytes.iter().enumerate() {
        if !b.is_ascii_digit() {
            continue;
        }
        cluster = match cluster {
            Some((first, last, n)) if i - last <= DIGIT_GAP => Some((first, i, n + 1)),
            Some(c) => {
                flush(c, &mut out);
                Some((i, i, 1))
            }
            None => Some((i, i, 1)),
        };
    }
    if let Some(c) = cluster {
        flush(c, &mut out);
    }
    out
}

/// Shortest base64 run worth decoding (18 bytes of text).
const MIN_BASE64_RUN: usize = 24;
/// Shortest hex run worth decoding (16 bytes of text).
const MIN_HEX_RUN: usize = 32;

/// Runs of base64/base64url alphabet characters (plus trailing `=`) at least
/// [`MIN_BASE64_RUN`] long: one tight byte loop, no regex.
fn encoded_runs(text: &str) -> Vec<Range<usize>> {
    #[expect(clippy::indexing_slicing, reason = "const loop over 0..256 indexes a [bool; 256]")]
    const B64: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'_' || c == b'-';
            b += 1;
        }
        t
    };
    let is_b64 = |b: &u8| B64.get(*b as usize).copied().unwrap_or(false);
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // Skip to the next run, then measure it; short runs (words) cost one pass each.
        let rest = bytes.get(i..).unwrap_or(&[]);
        let len = rest.iter().take_while(|b| is_b64(b)).count();
        if len == 0 {
            i += 1 + rest.iter().skip(1).take_while(|b| !is_b64(b)).count();
            continue;
        }
        let start = i;
        i += len;
        let mut end = i;
        while end < start + MAX_ENCODED_RUN && end - i < 2 && bytes.get(end) == Some(&b'=') {
            end += 1;
        }
        if end - start >= MIN_BASE64_RUN {
            runs.push(start..end);
        }
        i = end.max(i);
    }
    runs
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn decode_hex(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = s
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect();
    printable(bytes?)
}

fn decode_base64(s: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let trimmed = s.trim_end_matches('=');
    let bytes = if trimmed.contains(['-', '_']) {
        URL_SAFE_NO_PAD.decode(trimmed).ok()?
    } else {
        STANDARD_NO_PAD.decode(trimmed).ok()?
    };
    printable(bytes)
}

/// Decoded bytes that read as text: valid UTF-8, mostly letters and spaces, with a space.
fn printable(bytes: Vec<u8>) -> Option<String> {
    let s = String::from_utf8(bytes).ok()?;
    let total = s.chars().count();
    if total < 8 {
        return None;
    }
    let good = s.chars().filter(|c| c.is_alphanumeric() || c.is_whitespace() || c.is_ascii_punctuation()).count();
    (good * 10 >= total * 9 && s.contains(' ')).then_some(s)
}

pub(crate) fn truncate(s: &str) -> String {
    let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.chars().count() <= MAX_EVIDENCE_CHARS {
        return clean;
    }
    let mut t: String = clean.chars().take(MAX_EVIDENCE_CHARS).collect();
    t.push('…');
    t
}

/// Show enough of a secret to recognise it, never enough to use it.
pub(crate) fn mask(s: &str) -> String {
    let n = s.chars().count();
    let keep = if n >= 16 { 4 } else { 2 }.min(n);
    let head: String = s.chars().take(keep).collect();
    format!("{head}{} ({n} chars)", "*".repeat(8))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn negation_cues() {
        let t = "This tool never reads ~/.ssh";
        assert!(negated(t, t.find("reads").unwrap()));
        let t = "Do not forget to read ~/.ssh";
        assert!(!negated(t, t.find("read ").unwrap()));
        let t = "It is not a problem. Read ~/.ssh";
        assert!(!negated(t, t.find("Read").unwrap()));
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_example("a\\u{200b}b"), "a\u{200b}b");
        assert_eq!(unescape_example("x\\u{zz}"), "x\\u{zz}");
    }

    #[test]
    fn masking() {
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA******** (20 chars)");
    }
}
