//! Suppressions: `--ignore RULE` on the command line, and an ignore file that records why
//! each suppression exists.
//!
//! ```toml
//! [[ignore]]
//! rule = "MOAT-SCAN-010"          # required
//! server = "filesystem"           # optional: only this server
//! file = "/home/me/.cursor/mcp.json"  # optional: only definitions in this file
//! tool = "read_file"              # optional: only this tool (live findings)
//! reason = "pinned by our internal npm mirror"   # required, non-empty
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::ScanFinding;

/// Why an ignore file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IgnoreError {
    #[error("cannot read ignore file `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("ignore file `{path}` is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreFile {
    #[serde(default)]
    ignore: Vec<IgnoreEntry>,
}

/// One suppression.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreEntry {
    pub rule: String,
    pub server: Option<String>,
    pub file: Option<PathBuf>,
    pub tool: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// Every suppression in force for one run.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    /// Rules suppressed everywhere with `--ignore`.
    rules: Vec<String>,
    entries: Vec<IgnoreEntry>,
}

impl Suppressions {
    pub fn new(rules: Vec<String>) -> Suppressions {
        Suppressions { rules, entries: Vec::new() }
    }

    /// Adds the entries of an ignore file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed, has unknown keys, or has an entry without a
    /// reason.
    pub fn load_file(&mut self, path: &Path) -> Result<(), IgnoreError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| IgnoreError::Io { path: path.to_path_buf(), source })?;
        self.add_text(path, &text)
    }

    /// As [`Suppressions::load_file`], from text; `path` is only used in messages.
    ///
    /// # Errors
    ///
    /// As for [`Suppressions::load_file`].
    pub fn add_text(&mut self, path: &Path, text: &str) -> Result<(), IgnoreError> {
        let invalid = |message: String| IgnoreError::Invalid { path: path.to_path_buf(), message };
        let file: IgnoreFile = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        for (i, e) in file.ignore.iter().enumerate() {
            if e.reason.trim().is_empty() {
                return Err(invalid(format!(
                    "entry {} (rule `{}`) has no `reason`; every suppression must say why",
                    i + 1,
                    e.rule
                )));
            }
        }
        self.entries.extend(file.ignore);
        Ok(())
    }

    /// Whether `f` is suppressed.
    pub fn suppresses(&self, f: &ScanFinding) -> bool {
        if self.rules.iter().any(|r| r.eq_ignore_ascii_case(&f.finding.rule)) {
            return true;
        }
        self.entries.iter().any(|e| {
            e.rule.eq_ignore_ascii_case(&f.finding.rule)
                && e.server.as_ref().is_none_or(|s| s == &f.server)
                && e.file.as_ref().is_none_or(|p| p == &f.file)
                && e.tool.as_ref().is_none_or(|t| Some(t) == f.tool.as_ref())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use moat_detect::{Finding, Owasp, Severity};

    use super::*;
    use crate::model::Client;

    fn f(rule: &str, server: &str) -> ScanFinding {
        ScanFinding {
            finding: Finding {
                rule: rule.into(),
                severity: Severity::Low,
                owasp: Owasp::Mcp04,
                location: String::new(),
                message: String::new(),
                evidence: String::new(),
                span: None,
            },
            client: Client::Cursor,
            server: server.into(),
            file: PathBuf::from("/a"),
            line: None,
            tool: None,
            diff: Vec::new(),
        }
    }

    #[test]
    fn entries_need_a_reason() {
        let mut s = Suppressions::default();
        let err = s.add_text(Path::new("i.toml"), "[[ignore]]\nrule = \"MOAT-SCAN-010\"\n").unwrap_err();
        assert!(err.to_string().contains("reason"), "{err}");
        let err =
            s.add_text(Path::new("i.toml"), "[[ignore]]\nrule = \"MOAT-SCAN-010\"\nreason = \"  \"\n").unwrap_err();
        assert!(err.to_string().contains("reason"), "{err}");
    }

    #[test]
    fn entries_scope_by_server() {
        let mut s = Suppressions::new(vec!["MOAT-SCAN-015".into()]);
        s.add_text(
            Path::new("i.toml"),
            "[[ignore]]\nrule = \"MOAT-SCAN-010\"\nserver = \"a\"\nreason = \"mirror pins it\"\n",
        )
        .unwrap();
        assert!(s.suppresses(&f("MOAT-SCAN-010", "a")));
        assert!(!s.suppresses(&f("MOAT-SCAN-010", "b")));
        assert!(s.suppresses(&f("MOAT-SCAN-015", "b")));
        assert!(!s.suppresses(&f("MOAT-SCAN-012", "a")));
    }
}
