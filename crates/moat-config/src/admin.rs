//! `[admin]`: the admin listener that serves `/metrics`, `/healthz` and `/readyz`
//! (docs/telemetry.md).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[admin]`: where the admin endpoints listen. It is a separate listener from the MCP
/// endpoint, on loopback by default, because metrics name upstreams, methods and rule ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve the admin endpoints at all.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Address the admin endpoints listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { enabled: default_enabled(), listen: default_listen() }
    }
}

fn default_enabled() -> bool {
    true
}

/// `127.0.0.1:8788`: loopback, next to the gateway's default port.
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8788))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        admin: AdminConfig,
    }

    #[test]
    fn defaults_are_loopback_and_enabled() {
        let d: Doc = toml::from_str("").unwrap();
        assert_eq!(d.admin, AdminConfig::default());
        assert!(d.admin.enabled);
        assert_eq!(d.admin.listen, "127.0.0.1:8788".parse::<SocketAddr>().unwrap());
        assert!(d.admin.listen.ip().is_loopback());
    }

    #[test]
    fn keys_are_read() {
        let d: Doc = toml::from_str("[admin]\nenabled = false\nlisten = \"0.0.0.0:9100\"\n").unwrap();
        assert!(!d.admin.enabled);
        assert_eq!(d.admin.listen, "0.0.0.0:9100".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn unknown_key_is_rejected() {
        let e = toml::from_str::<Doc>("[admin]\nlisen = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
    }

    #[test]
    fn bad_address_is_rejected() {
        assert!(toml::from_str::<Doc>("[admin]\nlisten = \"localhost\"\n").is_err());
    }
}
