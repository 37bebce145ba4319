//! `[[upstream]]`: the MCP servers behind the gateway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Duration, SecretRef};

/// One upstream MCP server: a stdio child (`command`) or a Streamable HTTP server (`url`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Unique name; prefixes this upstream's tool and prompt names when several are served.
    pub name: String,
    /// Program and arguments of a stdio server. `moat` as the program means this binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Environment of the stdio server: only these entries (and `PATH`) are passed.
    /// Values are literals or `env:NAME` / `file:PATH` references; secrets must be references.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Working directory of the stdio server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Endpoint of a Streamable HTTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Moat's own credential for an HTTP upstream (`env:NAME` or `file:PATH`), sent as
    /// `Authorization: Bearer <value>`. The client's token is never forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<SecretRef>,
    /// Extra request headers for an HTTP upstream; values are literals or references.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, EnvValue>,
    /// `[upstream.oauth]`: Moat obtains its own OAuth access token for this HTTP upstream
    /// (client credentials, or RFC 8693 token exchange of the caller's token). Exclusive with
    /// `credential` and with an `Authorization` entry in `headers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<UpstreamOAuthConfig>,
    /// How a stdio upstream is confined (docs/sandbox.md). Absent: the safe defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::sandbox::SandboxConfig>,
    /// How this upstream's tool, prompt and template definitions are trusted.
    #[serde(default)]
    pub pinning: crate::guards::Pinning,
    /// Most calls in flight to this upstream at once; further calls wait.
    #[serde(default = "default_concurrency")]
    pub max_concurrent: usize,
    /// Longest time one request to this upstream may take.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn default_concurrency() -> usize {
    64
}

fn default_timeout() -> Duration {
    Duration::secs(120)
}

impl UpstreamConfig {
    /// What the upstream is, for pinning and logs: its name plus its command or URL.
    pub fn identity(&self) -> String {
        match (&self.command, &self.url) {
            (Some(cmd), _) => format!("{}|stdio:{}", self.name, cmd.join(" ")),
            (None, Some(url)) => format!("{}|http:{url}", self.name),
            (None, None) => self.name.clone(),
        }
    }
}

/// `[upstream.oauth]`: how Moat gets its own access token for an HTTP upstream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamOAuthConfig {
    /// The authorization server's token endpoint (`https`, or `http` on a loopback host).
    pub token_url: String,
    /// Moat's client id at that authorization server.
    pub client_id: String,
    /// Moat's client secret (`env:NAME` or `file:PATH`), sent with HTTP Basic authentication.
    pub client_secret: SecretRef,
    /// Scopes to ask for: a list, or one space-separated string.
    #[serde(default, skip_serializing_if = "Scopes::is_empty")]
    pub scope: Scopes,
    /// RFC 8707 resource indicator of the upstream. Default: the upstream's `url`. `""` sends
    /// none (Microsoft Entra ID v2 refuses the parameter; it takes the target from `scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `audience` parameter, for authorization servers that name targets that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `client_credentials` (default): one token for Moat itself. `token_exchange` (RFC 8693):
    /// each call is made with a token exchanged for the caller's, so the upstream sees the user.
    #[serde(default)]
    pub grant: UpstreamGrant,
}

impl UpstreamOAuthConfig {
    /// The resource indicator sent: `resource`, else the upstream's URL; none for `""`.
    pub fn effective_resource<'a>(&'a self, upstream_url: Option<&'a str>) -> Option<&'a str> {
        self.resource.as_deref().or(upstream_url).filter(|r| !r.is_empty())
    }
}

/// `[upstream.oauth] grant`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamGrant {
    /// RFC 6749 §4.4: Moat's own token.
    #[default]
    ClientCredentials,
    /// RFC 8693: the caller's token exchanged for one whose audience is the upstream.
    TokenExchange,
}

/// A scope list written as `["a", "b"]` or `"a b"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(pub Vec<String>);

impl Scopes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Scopes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of scopes or one space-separated string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Scopes, E> {
                Ok(Scopes(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scopes, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Scopes(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// An environment value: a reference resolved at start, or a literal that is not a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Reference(SecretRef),
    Literal(String),
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match SecretRef::parse(&s) {
            Some(r) => EnvValue::Reference(r),
            None => EnvValue::Literal(s),
        })
    }
}

impl Serialize for EnvValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EnvValue::Reference(r) => r.serialize(s),
            EnvValue::Literal(v) => s.serialize_str(v),
        }
    }
}
