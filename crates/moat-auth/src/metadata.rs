//! RFC 9728 OAuth 2.0 Protected Resource Metadata for Moat's endpoint.

use reqwest::Url;
use serde::Serialize;

use crate::error::ConfigError;
use crate::settings::OAuthSettings;

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata document (RFC 9728 §2) the gateway serves at both [`WellKnownPaths`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    /// Moat's canonical URI; clients send it as the RFC 8707 `resource` parameter, and it is
    /// the audience tokens must carry (unless `[auth] audience` says otherwise).
    pub resource: String,
    /// Issuers of the authorization servers clients should use.
    pub authorization_servers: Vec<String>,
    /// Scopes a client may ask for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Always `["header"]`: tokens in query strings or bodies are not accepted.
    pub bearer_methods_supported: Vec<String>,
    /// Human-readable name.
    pub resource_name: String,
}

/// Where the metadata is served (paths on Moat's own origin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WellKnownPaths {
    /// `/.well-known/oauth-protected-resource<path of public_url>` (RFC 9728 §3.1); equal to
    /// `root` when `public_url` has no path.
    pub path_inserted: String,
    /// `/.well-known/oauth-protected-resource`, which MCP clients try second.
    pub root: String,
    /// Absolute URL of the path-inserted form: the `resource_metadata` of every challenge.
    pub resource_metadata_url: String,
}

impl ProtectedResourceMetadata {
    /// The metadata for these settings.
    pub fn from_settings(settings: &OAuthSettings) -> Self {
        ProtectedResourceMetadata {
            resource: settings.public_url.clone(),
            authorization_servers: settings.effective_authorization_servers(),
            scopes_supported: settings.effective_scopes_supported(),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: "Moat MCP gateway".to_owned(),
        }
    }

    /// The JSON body (`application/json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

impl WellKnownPaths {
    /// The well-known locations for `public_url`.
    ///
    /// # Errors
    /// When `public_url` is not an absolute http(s) URL.
    pub fn for_public_url(public_url: &str) -> Result<Self, ConfigError> {
        let url = Url::parse(public_url)
            .map_err(|_| ConfigError::InvalidUrl { key: "gateway.public_url", url: public_url.to_owned() })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::InvalidUrl { key: "gateway.public_url", url: public_url.to_owned() });
        }
        let path = url.path().trim_end_matches('/');
        let path_inserted = format!("{WELL_KNOWN}{path}");
        let origin = url.origin().ascii_serialization();
        Ok(WellKnownPaths {
            resource_metadata_url: format!("{origin}{path_inserted}"),
            path_inserted,
            root: WELL_KNOWN.to_owned(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn paths_for_a_url_with_a_path() {
        let p = WellKnownPaths::for_public_url("https://moat.example:8443/mcp").ok();
        assert_eq!(
            p,
            Some(WellKnownPaths {
                path_inserted: "/.well-known/oauth-protected-resource/mcp".into(),
                root: "/.well-known/oauth-protected-resource".into(),
                resource_metadata_url: "https://moat.example:8443/.well-known/oauth-protected-resource/mcp".into(),
            })
        );
    }

    #[test]
    fn paths_for_a_root_url() {
        let p = WellKnownPaths::for_public_url("https://moat.example/").ok();
        assert_eq!(p.as_ref().map(|p| p.path_inserted.as_str()), Some(WELL_KNOWN));
        assert!(WellKnownPaths::for_public_url("moat.example").is_err());
    }

    #[test]
    fn metadata_json_has_the_required_members() {
        let mut s = OAuthSettings::new("https://moat.example/mcp", Some("https://as.example".into()));
        s.required_scopes = vec!["mcp:read".into()];
        let json: serde_json::Value =
            serde_json::from_str(&ProtectedResourceMetadata::from_settings(&s).to_json()).unwrap_or_default();
        assert_eq!(json["resource"], "https://moat.example/mcp");
        assert_eq!(json["authorization_servers"], serde_json::json!(["https://as.example"]));
        assert_eq!(json["scopes_supported"], serde_json::json!(["mcp:read"]));
        assert_eq!(json["bearer_methods_supported"], serde_json::json!(["header"]));
    }
}
