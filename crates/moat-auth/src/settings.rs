//! Resolved OAuth resource-server settings: what [`crate::OAuthValidator`] runs with.
//!
//! `moat-config` holds what the user wrote (`[auth]`); the gateway resolves secret references
//! and builds these. [`OAuthSettings::validate`] reports every problem at once.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;
use zeroize::Zeroizing;

use crate::error::ConfigError;

/// The largest clock leeway accepted for `exp` and `nbf`.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
/// The default clock leeway.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;

/// Settings of the OAuth 2.1 resource server.
#[derive(Clone)]
pub struct OAuthSettings {
    /// Moat's canonical URI (`[gateway] public_url`): the `resource` of the metadata.
    pub public_url: String,
    /// The value `aud` must contain. Default: `public_url`.
    pub audience: Option<String>,
    /// The authorization server's issuer identifier, compared exactly with `iss`. Required for
    /// JWTs; with it, the JWKS is discovered unless `jwks_uri` is set.
    pub issuer: Option<String>,
    /// Where the JWKS is, when discovery should not be used.
    pub jwks_uri: Option<String>,
    /// RFC 7662 endpoint for opaque tokens.
    pub introspection_url: Option<String>,
    /// Moat's own client id at the authorization server (introspection client authentication;
    /// also whose `resource_access.<client>.roles` Keycloak roles are read from).
    pub client_id: Option<String>,
    /// Moat's client secret for introspection, already resolved from its `env:`/`file:` reference.
    pub client_secret: Option<ClientSecret>,
    /// Scopes every request needs.
    pub required_scopes: Vec<String>,
    /// Claims (dotted paths) roles are read from. `None`: the defaults (see [`crate::ClaimMapping`]).
    pub roles_claims: Option<Vec<String>>,
    /// Claims (dotted paths) groups are read from. `None`: `groups`.
    pub groups_claims: Option<Vec<String>>,
    /// Clock leeway for `exp` and `nbf`, at most [`MAX_LEEWAY_SECONDS`].
    pub leeway_seconds: u64,
    /// `authorization_servers` of the metadata. Default: `[issuer]`.
    pub authorization_servers: Vec<String>,
    /// `scopes_supported` of the metadata. Default: `required_scopes`.
    pub scopes_supported: Vec<String>,
    /// Least time between two JWKS fetches caused by an unknown `kid` (a flood of tokens with
    /// random `kid`s must not become a flood of requests to the issuer).
    pub jwks_refetch_interval: Duration,
    /// How long a fetched JWKS is used before it is fetched again.
    pub jwks_max_age: Duration,
    /// Upper bound on how long an introspection answer is reused (it is never reused past the
    /// token's `exp`). Bounds how long a revoked token keeps working.
    pub introspection_cache_ttl: Duration,
}

/// A client secret: not printable, zeroized on drop.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(Zeroizing::new(secret.into()))
    }
    /// The secret itself (for the introspection request only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

impl fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("public_url", &self.public_url)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("jwks_uri", &self.jwks_uri)
            .field("introspection_url", &self.introspection_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("required_scopes", &self.required_scopes)
            .field("leeway_seconds", &self.leeway_seconds)
            .finish_non_exhaustive()
    }
}

impl OAuthSettings {
    /// Settings with defaults for everything but the resource URL and the issuer.
    pub fn new(public_url: impl Into<String>, issuer: Option<String>) -> Self {
        OAuthSettings {
            public_url: public_url.into(),
            audience: None,
            issuer,
            jwks_uri: None,
            introspection_url: None,
            client_id: None,
            client_secret: None,
            required_scopes: Vec::new(),
            roles_claims: None,
            groups_claims: None,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            jwks_refetch_interval: Duration::from_secs(10),
            jwks_max_age: Duration::from_secs(15 * 60),
            introspection_cache_ttl: Duration::from_secs(5 * 60),
        }
    }

    /// The audience tokens must name.
    pub fn effective_audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(&self.public_url)
    }

    /// `authorization_servers`, or `[issuer]`.
    pub fn effective_authorization_servers(&self) -> Vec<String> {
        if !self.authorization_servers.is_empty() {
            return self.authorization_servers.clone();
        }
        self.issuer.iter().cloned().collect()
    }

    /// `scopes_supported`, or the required scopes.
    pub fn effective_scopes_supported(&self) -> Vec<String> {
        if !self.scopes_supported.is_empty() {
            return self.scopes_supported.clone();
        }
        self.required_scopes.clone()
    }

    /// Checks every setting and returns all problems.
    ///
    /// # Errors
    /// One [`ConfigError`] per problem: URLs that are not https on a non-loopback host, missing
    /// issuer, introspection without client credentials, leeway above the maximum.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        match Url::parse(&self.public_url) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {}
            _ => errors.push(ConfigError::InvalidUrl { key: "gateway.public_url", url: self.public_url.clone() }),
        }
        let urls = [
            ("auth.issuer", &self.issuer),
            ("auth.jwks_uri", &self.jwks_uri),
            ("auth.introspection_url", &self.introspection_url),
        ];
        for (key, value) in urls {
            if let Some(url) = value {
                if let Err(e) = require_https_or_loopback(key, url) {
                    errors.push(e);
                }
            }
        }
        for server in &self.authorization_servers {
            if let Err(e) = require_https_or_loopback("auth.authorization_servers", server) {
                errors.push(e);
            }
        }
        if self.issuer.is_none() && self.introspection_url.is_none() {
            errors.push(ConfigError::Missing {
                key: "auth.issuer",
                when: "`mode = \"oauth\"` (or set `introspection_url` for opaque tokens only)",
            });
        }
        if self.jwks_uri.is_some() && self.issuer.is_none() {
            errors.push(ConfigError::Missing {
                key: "auth.issuer",
                when: "`jwks_uri` is set (the `iss` of every token is checked against it)",
            });
        }
        if self.introspection_url.is_some() {
            if self.client_id.is_none() {
                errors.push(ConfigError::Missing { key: "auth.client_id", when: "`introspection_url` is set" });
            }
            if self.client_secret.is_none() {
                errors.push(ConfigError::Missing { key: "auth.client_secret", when: "`introspection_url` is set" });
            }
        }
        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            errors.push(ConfigError::LeewayTooLarge { value: self.leeway_seconds, max: MAX_LEEWAY_SECONDS });
        }
        if self.effective_audience().is_empty() {
            errors.push(ConfigError::Invalid { key: "auth.audience", detail: "empty".into() });
        }
        for scope in self.required_scopes.iter().chain(&self.scopes_supported) {
            if scope.is_empty() || !scope.bytes().all(is_scope_char) {
                errors.push(ConfigError::Invalid {
                    key: "auth.required_scopes",
                    detail: format!("`{scope}` is not a valid scope token"),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// Accepts `https` URLs, and `http` only when the host is loopback (`127.0.0.0/8`, `::1`,
/// `localhost`): development and tests.
///
/// # Errors
/// [`ConfigError::InvalidUrl`] or [`ConfigError::InsecureUrl`], naming `key`.
pub fn require_https_or_loopback(key: &'static str, url: &str) -> Result<Url, ConfigError> {
    let parsed = Url::parse(url).map_err(|_| ConfigError::InvalidUrl { key, url: url.to_owned() })?;
    if parsed.host_str().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::InvalidUrl { key, url: url.to_owned() });
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback_url(&parsed) => Ok(parsed),
        _ => Err(ConfigError::InsecureUrl { key, url: url.to_owned() }),
    }
}

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn https_required_except_loopback() {
        assert!(require_https_or_loopback("k", "https://login.example/x").is_ok());
        assert!(require_https_or_loopback("k", "http://127.0.0.1:8080/").is_ok());
        assert!(require_https_or_loopback("k", "http://127.8.9.1/").is_ok());
        assert!(require_https_or_loopback("k", "http://[::1]:9/").is_ok());
        assert!(require_https_or_loopback("k", "http://localhost:3000").is_ok());
        assert!(matches!(
            require_https_or_loopback("k", "http://login.example/"),
            Err(ConfigError::InsecureUrl { .. })
        ));
        assert!(matches!(require_https_or_loopback("k", "http://10.0.0.1/"), Err(ConfigError::InsecureUrl { .. })));
        assert!(matches!(
            require_https_or_loopback("k", "http://localhost.evil.example/"),
            Err(ConfigError::InsecureUrl { .. })
        ));
        assert!(matches!(require_https_or_loopback("k", "ftp://x/"), Err(ConfigError::InsecureUrl { .. })));
        assert!(matches!(require_https_or_loopback("k", "not a url"), Err(ConfigError::InvalidUrl { .. })));
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut s = OAuthSettings::new("https://moat.example/mcp", None);
        s.jwks_uri = Some("http://keys.example/jwks".into());
        s.introspection_url = Some("https://as.example/introspect".into());
        s.leeway_seconds = 3600;
        let errors = s.validate().err().unwrap_or_default();
        assert!(errors.iter().any(|e| matches!(e, ConfigError::InsecureUrl { key: "auth.jwks_uri", .. })));
        assert!(errors.iter().any(|e| matches!(e, ConfigError::Missing { key: "auth.issuer", .. })));
        assert!(errors.iter().any(|e| matches!(e, ConfigError::Missing { key: "auth.client_id", .. })));
        assert!(errors.iter().any(|e| matches!(e, ConfigError::Missing { key: "auth.client_secret", .. })));
        assert!(errors.iter().any(|e| matches!(e, ConfigError::LeewayTooLarge { .. })));
    }

    #[test]
    fn defaults_follow_the_public_url_and_issuer() {
        let s = OAuthSettings::new("https://moat.example/mcp", Some("https://as.example".into()));
        assert_eq!(s.effective_audience(), "https://moat.example/mcp");
        assert_eq!(s.effective_authorization_servers(), vec!["https://as.example".to_owned()]);
        assert!(s.validate().is_ok());
        let dbg = format!("{:?}", OAuthSettings { client_secret: Some(ClientSecret::new("hunter2")), ..s });
        assert!(!dbg.contains("hunter2"));
    }
}
