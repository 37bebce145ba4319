//! The one finding type that every detector returns and every consumer renders.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown severity `{s}`; expected one of info, low, medium, high, critical"))
    }
}

/// The OWASP MCP Top 10 risk a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Owasp {
    #[serde(rename = "MCP01")]
    Mcp01,
    #[serde(rename = "MCP02")]
    Mcp02,
    #[serde(rename = "MCP03")]
    Mcp03,
    #[serde(rename = "MCP04")]
    Mcp04,
    #[serde(rename = "MCP05")]
    Mcp05,
    #[serde(rename = "MCP06")]
    Mcp06,
    #[serde(rename = "MCP07")]
    Mcp07,
    #[serde(rename = "MCP08")]
    Mcp08,
    #[serde(rename = "MCP09")]
    Mcp09,
    #[serde(rename = "MCP10")]
    Mcp10,
}

impl Owasp {
    pub fn as_str(self) -> &'static str {
        match self {
            Owasp::Mcp01 => "MCP01",
            Owasp::Mcp02 => "MCP02",
            Owasp::Mcp03 => "MCP03",
            Owasp::Mcp04 => "MCP04",
            Owasp::Mcp05 => "MCP05",
            Owasp::Mcp06 => "MCP06",
            Owasp::Mcp07 => "MCP07",
            Owasp::Mcp08 => "MCP08",
            Owasp::Mcp09 => "MCP09",
            Owasp::Mcp10 => "MCP10",
        }
    }
}

impl fmt::Display for Owasp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a detector found. The same value feeds the gateway's decision, the audit
/// record, the scanner's table and SARIF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id, e.g. `MOAT-TP-001`.
    pub rule: String,
    pub severity: Severity,
    pub owasp: Owasp,
    /// JSON pointer into the scanned value (`/tools/3/description`), or `""` for plain text.
    pub location: String,
    /// What a person should know and do.
    pub message: String,
    /// The matched text (secrets masked), short enough for a table cell.
    pub evidence: String,
    /// Byte range of the evidence in the scanned string, when there is one.
    #[serde(skip)]
    pub span: Option<std::ops::Range<usize>>,
}
