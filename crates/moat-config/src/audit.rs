//! `[audit]`: the hash-chained audit log (docs/audit.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Duration, SecretRef};

/// `[audit]`: where audit records go and how they are sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Write records to the store (`[store] url`, SQLite or memory). A Redis store keeps no
    /// audit records: use `jsonl` there.
    #[serde(default = "default_true")]
    pub store: bool,
    /// Also append records, one JSON object a line, to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonl: Option<PathBuf>,
    /// Put the (already redacted) arguments of each call in its record, not only their
    /// SHA-256 digest. Off by default: arguments can hold personal data.
    #[serde(default)]
    pub include_arguments: bool,
    /// Refuse a call whose record cannot be written, and make each record durable before
    /// the response leaves. Default: on in `oauth` mode, off otherwise (`None` = that default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// The Ed25519 private key that seals the chain, by reference (`file:PATH` or
    /// `env:NAME`; PKCS#8 PEM from `moat audit keygen`). Without it the chain is kept but
    /// not sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SecretRef>,
    /// Seal after this many records...
    #[serde(default = "default_seal_every")]
    pub seal_every: u64,
    /// ...or this long after the first unsealed record, whichever comes first.
    #[serde(default = "default_seal_interval")]
    pub seal_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            store: true,
            jsonl: None,
            include_arguments: false,
            required: None,
            signing_key: None,
            seal_every: default_seal_every(),
            seal_interval: default_seal_interval(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_seal_every() -> u64 {
    1000
}

fn default_seal_interval() -> Duration {
    Duration::secs(10)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_unknown_keys_are_refused() {
        let c: AuditConfig = toml::from_str("").unwrap();
        assert!(c.store && !c.include_arguments);
        assert_eq!((c.required, c.seal_every, c.seal_interval), (None, 1000, Duration::secs(10)));
        let c: AuditConfig = toml::from_str(
            "jsonl = \"/var/log/moat/audit.jsonl\"\nrequired = true\nsigning_key = \"file:/etc/moat/audit.key\"\nseal_every = 50\nseal_interval = \"2s\"",
        )
        .unwrap();
        assert_eq!(c.signing_key, Some(SecretRef::File("/etc/moat/audit.key".into())));
        assert_eq!((c.required, c.seal_every, c.seal_interval), (Some(true), 50, Duration::secs(2)));
        assert!(toml::from_str::<AuditConfig>("jsnol = \"x\"").is_err());
        assert!(toml::from_str::<AuditConfig>("seal_interval = \"soon\"").is_err());
        // A key written inline is refused: keys only by reference.
        assert!(toml::from_str::<AuditConfig>("signing_key = \"MC4CAQAwBQYDK2VwBCIEIA\"").is_err());
    }
}
