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
