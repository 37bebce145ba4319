//! The scanner's own rules (`MOAT-SCAN-0xx`): each has an OWASP MCP risk, a default severity
//! and a description, which SARIF output and `docs/scan.md` repeat.
//!
//! What a server offers (tool poisoning, hidden text, a tool name offered by two servers, a
//! description that names another server's tool) is judged by `moat-detect`'s rules
//! (`MOAT-TP-*`, `MOAT-HID-*`, ...); configuration values are checked for secrets with its
//! secret rules (`MOAT-SEC-*`). The rules here cover what only the scanner can see.

use moat_detect::{Owasp, Severity};

/// Metadata of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRule {
    pub id: &'static str,
    /// Short name, in the style of SARIF `rule.name` (`UnpinnedPackage`).
    pub name: &'static str,
    pub owasp: Owasp,
    /// Further OWASP risks the rule also answers (SARIF tags).
    pub also: &'static [Owasp],
    pub severity: Severity,
    /// One sentence: what the rule finds.
    pub summary: &'static str,
    /// What to do about it.
    pub help: &'static str,
}

pub const CONFIG_UNREADABLE: &str = "MOAT-SCAN-001";
pub const UNPINNED_PACKAGE: &str = "MOAT-SCAN-010";
pub const MUTABLE_IMAGE: &str = "MOAT-SCAN-011";
pub const PLAIN_HTTP: &str = "MOAT-SCAN-012";
pub const PIPED_DOWNLOAD: &str = "MOAT-SCAN-013";
pub const INLINE_SECRET: &str = "MOAT-SCAN-014";
pub const UNREGISTERED: &str = "MOAT-SCAN-015";
pub const CONNECT_FAILED: &str = "MOAT-SCAN-020";
pub const PIN_NEW: &str = "MOAT-SCAN-030";
pub const PIN_CHANGED: &str = "MOAT-SCAN-031";
pub const PIN_REMOVED: &str = "MOAT-SCAN-032";

/// Every scanner rule, in id order.
pub const RULES: &[ScanRule] = &[
    ScanRule {
        id: CONFIG_UNREADABLE,
        name: "UnreadableConfig",
        owasp: Owasp::Mcp09,
        also: &[],
        severity: Severity::Low,
        summary: "A client configuration file exists but could not be read or parsed, so the servers it defines were not checked.",
        help: "Fix the file's syntax (the client may be ignoring it too) or its permissions, then scan again.",
    },
    ScanRule {
        id: UNPINNED_PACKAGE,
        name: "UnpinnedPackage",
        owasp: Owasp::Mcp04,
        also: &[],
        severity: Severity::Medium,
        summary: "A server is launched from a package registry without an exact version (`npx pkg`, `pkg@latest`, `uvx pkg` without `==`), so every start may run different code.",
        help: "Pin an exact version (`npx -y pkg@1.2.3`, `uvx pkg==1.2.3`, `uvx --from pkg==1.2.3 cmd`).",
    },
    ScanRule {
        id: MUTABLE_IMAGE,
        name: "MutableContainerImage",
        owasp: Owasp::Mcp04,
        also: &[],
        severity: Severity::Medium,
        summary: "A server runs from a container image referenced by a tag (or no tag) instead of an immutable `@sha256:` digest.",
        help: "Reference the image by digest: `image@sha256:<digest>`.",
    },
    ScanRule {
        id: PLAIN_HTTP,
        name: "PlainHttpRemote",
        owasp: Owasp::Mcp07,
        also: &[Owasp::Mcp04],
        severity: Severity::High,
        summary: "A remote server is reached over plain `http://` on a host that is not loopback, so its traffic (and any token) can be read or altered on the network.",
        help: "Use `https://`.",
    },
    ScanRule {
        id: PIPED_DOWNLOAD,
        name: "DownloadPipedToShell",
        owasp: Owasp::Mcp05,
        also: &[Owasp::Mcp04],
        severity: Severity::High,
        summary: "A server's launch command downloads code and runs it at once (`curl ... | sh`, `iwr ... | iex`), with no version, digest or review.",
        help: "Install the server once from a pinned, verified release and launch the installed binary.",
    },
    ScanRule {
        id: INLINE_SECRET,
        name: "InlineSecret",
        owasp: Owasp::Mcp01,
        also: &[],
        severity: Severity::High,
        summary: "A secret (API key, token, password) is written in plain text in a client configuration file.",
        help: "Move the secret to the OS keychain or an environment variable the client expands (`${env:NAME}`, `${input:...}`), and rotate it: it has been on disk in clear.",
    },
    ScanRule {
        id: UNREGISTERED,
        name: "UnregisteredServer",
        owasp: Owasp::Mcp09,
        also: &[],
        severity: Severity::Medium,
        summary: "A configured server is not in the approved registry given with `--registry`.",
        help: "Remove the server, or have it reviewed and added to the registry.",
    },
    ScanRule {
        id: CONNECT_FAILED,
        name: "ServerUnreachable",
        owasp: Owasp::Mcp09,
        also: &[],
        severity: Severity::Info,
        summary: "The live scan could not start, reach or initialize a server, so its tools were not checked.",
        help: "Read the captured stderr in the report; the server may need credentials or a network the scan does not give it.",
    },
    ScanRule {
        id: PIN_NEW,
        name: "UnpinnedDefinition",
        owasp: Owasp::Mcp03,
        also: &[],
        severity: Severity::Low,
        summary: "A tool, prompt or resource is not in the pin file: it has not been reviewed before.",
        help: "Review it, then record it with `moat scan --connect --write-pins`.",
    },
    ScanRule {
        id: PIN_CHANGED,
        name: "ChangedDefinition",
        owasp: Owasp::Mcp03,
        also: &[],
        severity: Severity::High,
        summary: "A tool, prompt or resource differs from its pinned definition (a possible rug pull).",
        help: "Read the diff. If the change is expected, re-pin with `--write-pins`; if not, remove the server.",
    },
    ScanRule {
        id: PIN_REMOVED,
        name: "RemovedDefinition",
        owasp: Owasp::Mcp03,
        also: &[],
        severity: Severity::Low,
        summary: "A pinned tool, prompt or resource is no longer offered by its server.",
        help: "If the removal is expected, re-pin with `--write-pins`.",
    },
];

/// The rule with this id, if it is a scanner rule.
pub fn rule(id: &str) -> Option<&'static ScanRule> {
    RULES.iter().find(|r| r.id == id)
}

/// The SARIF `security-severity` score (0.0–10.0) GitHub uses to rank a severity.
pub fn security_severity(sev: Severity) -> &'static str {
    match sev {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        for r in RULES {
            assert!(r.id.starts_with("MOAT-SCAN-0"), "{}", r.id);
            assert!(!r.summary.is_empty() && !r.help.is_empty());
        }
    }
}
