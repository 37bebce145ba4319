//! `[guards]`: the runtime guards every message passes (docs/guards.md). Every guard is on
//! by default; turning one off is explicit (`enabled = false`) and logged at start.

use serde::{Deserialize, Serialize};

use crate::Duration;

/// `[guards]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardsConfig {
    /// A lock file (`moat.lock`, from `moat pins export`) to enforce: every tool, prompt,
    /// template and instructions must match it, or it is quarantined. Relative to the
    /// configuration file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub tool_metadata: ToolMetadataGuard,
    #[serde(default)]
    pub arguments: ArgumentsGuard,
    #[serde(default)]
    pub output: OutputGuard,
    /// Overrides for tools whose public name matches `match` (a glob with `*`).
    #[serde(default, rename = "tool")]
    pub tools: Vec<ToolRule>,
    /// Token buckets.
    #[serde(default, rename = "rate_limit")]
    pub rate_limits: Vec<RateLimit>,
}

/// A severity name as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// `[guards.tool_metadata]`: poisoned definitions are quarantined.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolMetadataGuard {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Findings at or above this severity quarantine the tool.
    #[serde(default = "high")]
    pub block_at: Level,
}

impl Default for ToolMetadataGuard {
    fn default() -> Self {
        ToolMetadataGuard { enabled: true, block_at: Level::High }
    }
}

/// `[guards.arguments]`: calls are checked before they reach an upstream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentsGuard {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Validate arguments against the pinned `inputSchema`.
    #[serde(default = "yes")]
    pub validate_schema: bool,
    /// Paths no argument may name (after `~` expansion and normalization), on top of the
    /// built-in list (`~/.ssh`, `~/.aws`, `/etc/shadow`, `.env`, ...).
    #[serde(default)]
    pub deny_paths: Vec<String>,
    /// When set, path arguments must lie under one of these roots.
    #[serde(default)]
    pub allowed_roots: Vec<String>,
    /// Schemes a URL argument may use.
    #[serde(default = "default_schemes")]
    pub url_schemes: Vec<String>,
    /// Refuse URLs whose host resolves to a private, loopback, link-local or cloud-metadata
    /// address (SSRF).
    #[serde(default = "yes")]
    pub deny_private_networks: bool,
    /// What to do with a secret found in arguments: `flag` (audit) or `block`.
    #[serde(default = "flag")]
    pub secrets: SecretAction,
}

impl Default for ArgumentsGuard {
    fn default() -> Self {
        ArgumentsGuard {
            enabled: true,
            validate_schema: true,
            deny_paths: Vec::new(),
            allowed_roots: Vec::new(),
            url_schemes: default_schemes(),
            deny_private_networks: true,
            secrets: SecretAction::Flag,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretAction {
    Flag,
    Block,
}

/// What happens to a result with injection findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputAction {
    /// Replace the result with an error naming the rule.
    Block,
    /// Replace the offending spans.
    Redact,
    /// Wrap the untrusted content in delimiters with a per-session boundary, datamarked.
    Spotlight,
    /// Pass it, annotated in `_meta` and audited.
    Flag,
}

/// `[guards.output]`: tool results, resource contents and prompts on their way to the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputGuard {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Strip terminal escapes and invisible characters.
    #[serde(default = "yes")]
    pub sanitize: bool,
    /// Injection findings at or above this severity are blocked.
    #[serde(default = "high")]
    pub block_at: Level,
    /// What happens to injection findings below `block_at`.
    #[serde(default = "spotlight")]
    pub injection: OutputAction,
    #[serde(default = "yes")]
    pub redact_secrets: bool,
    #[serde(default = "yes")]
    pub redact_pii: bool,
    /// Largest result passed to a client, in bytes; larger ones become an error.
    #[serde(default = "default_max_result")]
    pub max_result_bytes: usize,
}

impl Default for OutputGuard {
    fn default() -> Self {
        OutputGuard {
            enabled: true,
            sanitize: true,
            block_at: Level::High,
            injection: OutputAction::Spotlight,
            redact_secrets: true,
            redact_pii: true,
            max_result_bytes: default_max_result(),
        }
    }
}

/// `[[guards.tool]]`: settings for the tools whose public name matches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    /// Public tool name or glob (`files__*`).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Path arguments must lie under these roots.
    #[serde(default)]
    pub allowed_roots: Vec<String>,
    /// The tool runs shell commands: refuse shell metacharacters in its arguments.
    #[serde(default)]
    pub shell: bool,
    /// The tool runs SQL: refuse statements other than a single read-only query.
    #[serde(default)]
    pub sql: bool,
    /// Injection action for this tool's results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputAction>,
}

/// `[[guards.rate_limit]]`: a token bucket per principal, per tool or per upstream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub scope: RateScope,
    /// Tool or upstream name or glob this bucket applies to (default: all).
    #[serde(default = "star", rename = "match")]
    pub pattern: String,
    /// Requests allowed per `per` (also the burst size).
    pub requests: u32,
    pub per: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateScope {
    Principal,
    Tool,
    Upstream,
}

/// How an upstream's definitions are trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pinning {
    /// Pin on first sight; quarantine on change.
    #[default]
    TrustOnFirstUse,
    /// Quarantine every new or changed definition until approved.
    RequireApproval,
}

/// True when `pattern` (with `*` wildcards) matches `name`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = rest.get(pos + part.len()..).unwrap_or_default(),
                None => return false,
            }
        }
    }
    true
}

fn yes() -> bool {
    true
}
fn high() -> Level {
    Level::High
}
fn flag() -> SecretAction {
    SecretAction::Flag
}
fn spotlight() -> OutputAction {
    OutputAction::Spotlight
}
fn star() -> String {
    "*".into()
}
fn default_schemes() -> Vec<String> {
    vec!["https".into(), "http".into()]
}
fn default_max_result() -> usize {
    4 * 1024 * 1024
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "x"));
        assert!(glob_match("files__*", "files__read"));
        assert!(!glob_match("files__*", "demo__read"));
        assert!(glob_match("*__read_*", "a__read_file"));
        assert!(glob_match("echo", "echo"));
        assert!(!glob_match("echo", "echo2"));
    }
}
