//! `[gateway]` and `[sessions]`: the Streamable HTTP front.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{Duration, SecretRef};

/// `[gateway]`: where and how the gateway listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on. Loopback by default; anything else needs TLS or `allow_plain_http`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The one MCP endpoint path.
    #[serde(default = "default_path")]
    pub path: String,
    /// Canonical URI of the endpoint (OAuth audience, protected-resource metadata).
    /// Default: derived from `listen` and `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Origins allowed to call the endpoint from a browser. Loopback origins are allowed by
    /// default only while listening on loopback.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Largest request body accepted, in bytes (413 above it).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a message.
    #[serde(default = "default_max_depth")]
    pub max_json_depth: usize,
    /// Separator between upstream and tool name when several upstreams are served.
    #[serde(default = "default_separator")]
    pub name_separator: String,
    /// Most concurrent client sessions; new `initialize` requests beyond it get 503.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// PEM certificate chain (`file:PATH`); with `tls_key`, serves HTTPS (HTTP/2 by ALPN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<SecretRef>,
    /// PEM private key (`file:PATH` or `env:NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<SecretRef>,
    /// Serve plain HTTP on a non-loopback address because a TLS-terminating proxy is in front.
    #[serde(default)]
    pub allow_plain_http: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: default_listen(),
            path: default_path(),
            public_url: None,
            allowed_origins: Vec::new(),
            max_body_bytes: default_max_body(),
            max_json_depth: default_max_depth(),
            name_separator: default_separator(),
            max_sessions: default_max_sessions(),
            tls_cert: None,
            tls_key: None,
            allow_plain_http: false,
        }
    }
}

impl GatewayConfig {
    /// The canonical URI of the endpoint: `public_url`, or one derived from `listen` and `path`.
    pub fn canonical_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.listen, self.path)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}
fn default_path() -> String {
    "/mcp".to_string()
}
fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_max_depth() -> usize {
    128
}
fn default_separator() -> String {
    "__".to_string()
}
fn default_max_sessions() -> usize {
    10_000
}

/// `[sessions]`: lifetimes of client sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// A session unused this long is deleted.
    #[serde(default = "default_idle")]
    pub idle_timeout: Duration,
    /// A session older than this is deleted, used or not.
    #[serde(default = "default_lifetime")]
    pub max_lifetime: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig { idle_timeout: default_idle(), max_lifetime: default_lifetime() }
    }
}

fn default_idle() -> Duration {
    Duration::secs(30 * 60)
}
fn default_lifetime() -> Duration {
    Duration::secs(24 * 3600)
}
