//! `[store]`: where sessions, pins, rate-limit buckets, API keys and audit records live
//! (docs/store.md).

use serde::{Deserialize, Serialize};

/// `[store]`: the state store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (optionally `?synchronous=full`), `redis://HOST[:PORT][/DB]` or
    /// `memory`. Default (`None`): `sqlite://` under the user's data directory,
    /// e.g. `~/.local/share/moat/moat.db`. Messages print a Redis URL with its password
    /// replaced by `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn url_is_optional_and_unknown_keys_are_refused() {
        assert_eq!(toml::from_str::<StoreConfig>("").unwrap().url, None);
        let c: StoreConfig = toml::from_str("url = \"sqlite:///var/lib/moat/moat.db\"").unwrap();
        assert_eq!(c.url.as_deref(), Some("sqlite:///var/lib/moat/moat.db"));
        assert!(toml::from_str::<StoreConfig>("uri = \"memory\"").is_err());
    }
}
