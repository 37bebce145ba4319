//! Checking a log: the chain, the seals, and the first record where either breaks.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use moat_store::{AuditStore, UnixMillis};

use crate::record::{parse_time, record_hash, AuditRecord, Seal, GENESIS_HASH};
use crate::sink::{parse_line, Line};
use crate::{AuditError, AuditVerifyingKey};

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Check each seal's signature with this key. Without it, seals are checked only for
    /// naming the right chain head: anyone can forge an unsigned seal.
    pub public_key: Option<AuditVerifyingKey>,
    /// Start at the first record at or after this time, trusting its link to the record
    /// before it (for logs too long to check whole).
    pub since: Option<UnixMillis>,
    /// Treat records after the last seal as a problem. A writer that stopped cleanly seals
    /// its tail, so on a stopped gateway an unsealed tail means truncation or a crash.
    pub require_sealed: bool,
}

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A record's bytes were changed (its hash or its link does not match).
    Edited,
    /// A record is missing from the sequence (deleted).
    Missing,
    /// The file ends in the middle of a line.
    Truncated,
    /// A seal does not match the chain or its signature does not verify.
    BadSeal,
    /// Records after the last seal (only with `require_sealed`).
    Unsealed,
}

impl ProblemKind {
    /// A one-word name for output.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Edited => "edited",
            ProblemKind::Missing => "missing",
            ProblemKind::Truncated => "truncated",
            ProblemKind::BadSeal => "bad seal",
            ProblemKind::Unsealed => "unsealed",
        }
    }
}

/// The first broken record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The sequence number of the first record that cannot be trusted.
    pub seq: u64,
    /// What kind of break.
    pub kind: ProblemKind,
    /// The line of the file (from 1), for JSON-lines logs.
    pub line: Option<u64>,
    /// One sentence on what was found.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}", self.seq)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, ": {}: {}", self.kind.as_str(), self.detail)
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Seals checked.
    pub seals: u64,
    /// The first record checked.
    pub first_seq: Option<u64>,
    /// The last record checked.
    pub last_seq: Option<u64>,
    /// The last record a seal covers.
    pub last_sealed_seq: Option<u64>,
    /// Whether seal signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// The first problem; `None` when the log verifies.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// Whether the log verified.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }

    /// How many records come after the last seal.
    pub fn unsealed_records(&self) -> u64 {
        match (self.last_seq, self.last_sealed_seq, self.first_seq) {
            (Some(last), Some(sealed), _) => last.saturating_sub(sealed),
            (Some(last), None, Some(first)) => last - first + 1,
            _ => 0,
        }
    }
}

/// Verifies a JSON-lines audit file.
///
/// # Errors
/// Only when the file cannot be read; everything wrong with its contents is in the report.
pub fn verify_jsonl(path: &Path, options: &VerifyOptions) -> Result<VerifyReport, AuditError> {
    let io = |source| AuditError::Io { action: "read", path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut v = Verifier::new(options);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if buf.last() != Some(&b'\n') {
            v.fail(
                v.expected_seq(),
                ProblemKind::Truncated,
                Some(line_no),
                "the file ends in the middle of a line (truncated)".to_owned(),
            );
            break;
        }
        let Ok(text) = std::str::from_utf8(buf.get(..buf.len() - 1).unwrap_or_default()) else {
            v.fail(v.expected_seq(), ProblemKind::Edited, Some(line_no), "the line is not UTF-8 (edited)".to_owned());
            break;
        };
        let step = match parse_line(text) {
            Ok(Line::Record { body, hash }) => v.record(body, &hash, Some(line_no), None),
            Ok(Line::Seal(seal)) => v.seal(&seal, Some(line_no)),
            Err(e) => {
                v.fail(v.expected_seq(), ProblemKind::Edited, Some(line_no), format!("{e} (edited)"));
                false
            }
        };
        if !step {
            break;
        }
    }
    Ok(v.finish())
}

/// Verifies the audit records in a store.
///
/// # Errors
/// Only when the store cannot be read.
pub async fn verify_store(store: &dyn AuditStore, options: &VerifyOptions) -> Result<VerifyReport, AuditError> {
    const PAGE: usize = 2000;
    let mut seals: VecDeque<_> = store.audit_seals(0, 0).await?.into();
    let mut v = Verifier::new(options);
    let mut after = 0;
    'pages: loop {
        let rows = store.audit_records(after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in rows {
            while seals.front().is_some_and(|s| s.seq < row.seq) {
                let Some(s) = seals.pop_front() else { break };
                if !v.seal_body(&s.body, s.seq) {
                    break 'pages;
                }
            }
            if !v.record(&row.body, &row.hash, None, Some(&row)) {
                break 'pages;
            }
            while seals.front().is_some_and(|s| s.seq == row.seq) {
                let Some(s) = seals.pop_front() else { break };
                if !v.seal_body(&s.body, s.seq) {
                    break 'pages;
                }
            }
        }
    }
    if v.problem.is_none() {
        // Seals past the last record: the records they covered were deleted.
        if let Some(s) = seals.pop_front() {
            v.seal_body(&s.body, s.seq);
        }
    }
    Ok(v.finish())
}

/// The fields of a record the chain check reads.
#[derive(Deserialize)]
struct Link {
    seq: u64,
    time: String,
    prev: String,
}

struct Verifier<'o> {
    options: &'o VerifyOptions,
    report: VerifyReport,
    /// Set once the first record to check is found (at once without `since`).
    anchored: bool,
    expected: u64,
    last_hash: String,
    problem: Option<Problem>,
}

impl<'o> Verifier<'o> {
    fn new(options: &'o VerifyOptions) -> Self {
        Verifier {
            options,
            report: VerifyReport { signatures_checked: options.public_key.is_some(), ..VerifyReport::default() },
            anchored: false,
            expected: 1,
            last_hash: GENESIS_HASH.to_owned(),
            problem: None,
        }
    }

    fn expected_seq(&self) -> u64 {
        self.expected
    }

    fn fail(&mut self, seq: u64, kind: ProblemKind, line: Option<u64>, detail: String) {
        if self.problem.is_none() {
            self.problem = Some(Problem { seq, kind, line, detail });
        }
    }

    /// Checks one record; false once a problem is found.
    fn record(&mut self, body: &str, stored_hash: &str, line: Option<u64>, row: Option<&moat_store::AuditRow>) -> bool {
        let expected = self.expected;
        let link: Link = match serde_json::from_str(body) {
            Ok(l) => l,
            Err(e) => {
                self.fail(expected, ProblemKind::Edited, line, format!("the record is not a valid audit record ({e})"));
                return false;
            }
        };
        if !self.anchored {
            if let Some(since) = self.options.since {
                if parse_time(&link.time).is_none_or(|t| t < since) {
                    return true;
                }
                // Trust the first record's link: the records before it are not checked.
                self.expected = link.seq;
                self.last_hash = link.prev.clone();
            }
            self.anchored = true;
            self.report.first_seq = Some(self.expected);
        }
        let expected = self.expected;
        let hash = record_hash(body.as_bytes());
        if hash != stored_hash {
            let seq = if link.seq == expected { link.seq } else { expected };
            self.fail(seq, ProblemKind::Edited, line, "the record does not match its hash (edited)".to_owned());
            return false;
        }
        if link.seq > expected {
            let what = if link.seq - expected == 1 {
                format!("record {expected} is missing (deleted); the next record is {}", link.seq)
            } else {
                format!("records {expected} to {} are missing (deleted)", link.seq - 1)
            };
            self.fail(expected, ProblemKind::Missing, line, what);
            return false;
        }
        if link.seq < expected {
            self.fail(
                link.seq,
                ProblemKind::Edited,
                line,
                format!("record {} appears again, out of order (edited)", link.seq),
            );
            return false;
        }
        if link.prev != self.last_hash {
            let detail = if link.seq == 1 {
                "the first record does not start a chain (records before it were removed)".to_owned()
            } else {
                format!(
                    "record {} does not link to record {}: record {} was rewritten, or records were removed and renumbered",
                    link.seq,
                    link.seq - 1,
                    link.seq - 1
                )
            };
            self.fail(link.seq.saturating_sub(1).max(1), ProblemKind::Edited, line, detail);
            return false;
        }
        if let Some(row) = row {
            // The store copies a few fields into columns for filtering; they must agree
            // with the hashed body, or a query would show something the chain does not.
            let agrees = serde_json::from_str::<AuditRecord>(body).is_ok_and(|r| {
                r.unix_millis() == Some(row.time)
                    && r.principal.map(|p| p.subject) == row.principal
                    && r.target == row.tool
                    && r.decision.as_str() == row.decision
            });
            if !agrees {
                self.fail(
                    link.seq,
                    ProblemKind::Edited,
                    line,
                    "the record's indexed columns disagree with its content (edited)".to_owned(),
                );
                return false;
            }
        }
        self.last_hash = hash;
        self.expected = link.seq + 1;
        self.report.records += 1;
        self.report.last_seq = Some(link.seq);
        true
    }

    fn seal_body(&mut self, body: &str, seq: u64) -> bool {
        match serde_json::from_str::<Seal>(body) {
            Ok(seal) => self.seal(&seal, None),
            Err(e) => {
                self.fail(seq, ProblemKind::BadSeal, None, format!("the seal is unreadable ({e})"));
                false
            }
        }
    }

    /// Checks one seal; false once a problem is found.
    fn seal(&mut self, seal: &Seal, line: Option<u64>) -> bool {
        if !self.anchored {
            return true;
        }
        let last = self.report.last_seq.unwrap_or(0);
        if seal.seq > last {
            let what = if seal.seq == self.expected {
                format!("record {} is missing (deleted); its seal is still there", seal.seq)
            } else {
                format!(
                    "records {} to {} are missing (deleted); the seal for record {} is still there",
                    self.expected, seal.seq, seal.seq
                )
            };
            self.fail(self.expected, ProblemKind::Missing, line, what);
            return false;
        }
        if seal.seq < last {
            self.fail(seal.seq, ProblemKind::BadSeal, line, "the seal is out of place (moved or edited)".to_owned());
            return false;
        }
        let from = self.report.last_sealed_seq.map_or(self.report.first_seq.unwrap_or(1), |s| s + 1);
        if seal.head != self.last_hash {
            let detail = format!(
                "the seal names another hash for record {}: a record from {from} to {} was rewritten with recomputed hashes",
                seal.seq, seal.seq
            );
            self.fail(from, ProblemKind::BadSeal, line, detail);
            return false;
        }
        if let Some(key) = &self.options.public_key {
            if let Err(e) = key.check(seal) {
                self.fail(
                    from,
                    ProblemKind::BadSeal,
                    line,
                    format!("the seal over records {from} to {}: {e}", seal.seq),
                );
                return false;
            }
        }
        self.report.seals += 1;
        self.report.last_sealed_seq = Some(seal.seq);
        true
    }

    fn finish(mut self) -> VerifyReport {
        if self.problem.is_none() && self.options.require_sealed && self.report.unsealed_records() > 0 {
            let from = self.report.last_sealed_seq.map_or(self.report.first_seq.unwrap_or(1), |s| s + 1);
            let to = self.report.last_seq.unwrap_or(from);
            self.fail(
                from,
                ProblemKind::Unsealed,
                None,
                format!(
                    "records {from} to {to} are not sealed (the log was truncated, or the writer did not stop cleanly)"
                ),
            );
        }
        self.report.problem = self.problem;
        self.report
    }
}
