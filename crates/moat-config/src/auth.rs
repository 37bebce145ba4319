//! `[auth]` (who may call the gateway) and `[policy]` (what they may do).
//!
//! These are the types users write; `moat-auth` turns them into a running authenticator
//! (`moat_auth::OAuthSettings`, `moat_auth::apikey`, `moat_auth::policy::Authorizer`).
//! [`AuthConfig::problems`] lists every meaning error so the loader can locate and report them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// The largest accepted `leeway_seconds`.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// `[auth]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `none` (loopback only), `oauth`, or `api_key`.
    #[serde(default)]
    pub mode: AuthMode,
    /// Issuer identifier of the authorization server (compared exactly with `iss`). The JWKS is
    /// discovered from it (RFC 8414, then OpenID Connect discovery) unless `jwks_uri` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// JWKS location, to skip discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// What `aud` must contain. Default: `[gateway] public_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// RFC 7662 introspection endpoint, for opaque access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_url: Option<String>,
    /// Moat's client id at the authorization server (introspection; Keycloak client roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Moat's client secret for introspection: `env:NAME` or `file:PATH` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// Scopes every request must carry.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Claims (dotted paths) roles come from. Default: `roles`, `realm_access.roles`,
    /// `resource_access.<client_id>.roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_claims: Option<Vec<String>>,
    /// Claims (dotted paths) groups come from. Default: `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claims: Option<Vec<String>>,
    /// Clock leeway for `exp`/`nbf`, 0 to 300 seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// `authorization_servers` of the protected-resource metadata. Default: `[issuer]`.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// `scopes_supported` of the protected-resource metadata. Default: `required_scopes`.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// API key file for `mode = "api_key"` (managed with `moat keys`). Default:
    /// `<data dir>/moat/api-keys.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys_file: Option<PathBuf>,
}

/// `[auth] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication; allowed only when the gateway listens on loopback.
    #[default]
    None,
    /// OAuth 2.1 resource server.
    Oauth,
    /// Moat API keys.
    ApiKey,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Cedar policy files. None: every authenticated request is permitted.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Scopes that particular methods or tools need on top of `[auth] required_scopes`
    /// (`[[policy.scopes]]`). A caller without them gets 403 `insufficient_scope` and can step up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<ScopeRule>,
}

/// One `[[policy.scopes]]` rule: a request that matches `method` and `tool` needs `scopes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    /// MCP method, `*` wildcards allowed (`tools/call`, `resources/*`). Default: `tools/call`
    /// when `tool` is set, else every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Tool name as clients see it through the gateway, `*` wildcards allowed; the rule then
    /// applies to `tools/call` of matching tools only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Scopes the request needs.
    pub scopes: Vec<String>,
}

impl ScopeRule {
    /// True when this rule applies to a `method` request (and, for `tools/call`, to `tool`).
    pub fn applies(&self, method: &str, tool: Option<&str>) -> bool {
        let method_pattern = self.method.as_deref().unwrap_or(if self.tool.is_some() { "tools/call" } else { "*" });
        if !crate::guards::glob_match(method_pattern, method) {
            return false;
        }
        match (&self.tool, tool) {
            (None, _) => true,
            (Some(pattern), Some(name)) => crate::guards::glob_match(pattern, name),
            (Some(_), None) => false,
        }
    }
}

impl PolicyConfig {
    /// The scopes a `method` request (naming `tool`, for `tools/call`) needs by `[[policy.scopes]]`,
    /// each once, in rule order.
    pub fn scopes_for(&self, method: &str, tool: Option<&str>) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for rule in self.scopes.iter().filter(|r| r.applies(method, tool)) {
            for s in &rule.scopes {
                if !out.contains(&s.as_str()) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// Every meaning error; scope rules need a mode in which callers have scopes.
    pub fn problems(&self, mode: AuthMode) -> Vec<AuthProblem> {
        let mut out = Vec::new();
        for (i, rule) in self.scopes.iter().enumerate() {
            let key = format!("policy.scopes[{i}]");
            if mode == AuthMode::None {
                out.push(AuthProblem {
                    key: key.clone(),
                    message: "scope rules need `auth.mode = \"oauth\"` or `\"api_key\"`; without authentication no caller has scopes".into(),
                    help: None,
                });
            }
            if rule.scopes.is_empty() {
                out.push(AuthProblem {
                    key: format!("{key}.scopes"),
                    message: "the rule lists no scopes".into(),
                    help: None,
                });
            }
            for scope in &rule.scopes {
                if !valid_scope(scope) {
                    out.push(AuthProblem {
                        key: format!("{key}.scopes"),
                        message: format!("`{scope}` is not a valid scope"),
                        help: None,
                    });
                }
            }
            if let (Some(m), Some(_)) = (&rule.method, &rule.tool) {
                if !crate::guards::glob_match(m, "tools/call") {
                    out.push(AuthProblem {
                        key: format!("{key}.tool"),
                        message: format!("`tool` applies to `tools/call` only, but `method` is `{m}`"),
                        help: Some("leave `method` out, or write a separate rule"),
                    });
                }
            }
        }
        out
    }
}

/// RFC 6749 §3.3 scope-token characters.
fn valid_scope(scope: &str) -> bool {
    !scope.is_empty() && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// One meaning error in `[auth]`: the key (`auth.issuer`), a message, and optional help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthProblem {
    pub key: String,
    pub message: String,
    pub help: Option<&'static str>,
}

fn default_leeway() -> u64 {
    60
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::None,
            issuer: None,
            jwks_uri: None,
            audience: None,
            introspection_url: None,
            client_id: None,
            client_secret: None,
            required_scopes: Vec::new(),
            roles_claims: None,
            groups_claims: None,
            leeway_seconds: default_leeway(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            api_keys_file: None,
        }
    }
}

impl AuthConfig {
    /// Every meaning error (serde already rejected unknown keys and wrong types).
    pub fn problems(&self) -> Vec<AuthProblem> {
        let mut out = Vec::new();
        let mut push = |key: &str, message: String, help: Option<&'static str>| {
            out.push(AuthProblem { key: key.to_owned(), message, help });
        };
        let urls = [
            ("auth.issuer", &self.issuer),
            ("auth.jwks_uri", &self.jwks_uri),
            ("auth.introspection_url", &self.introspection_url),
        ];
        for (key, value) in urls {
            if let Some(url) = value {
                if let Some(message) = url_problem(url) {
                    push(key, message, Some("http is accepted only for loopback hosts (development)"));
                }
            }
        }
        for (i, url) in self.authorization_servers.iter().enumerate() {
            if let Some(message) = url_problem(url) {
                push(&format!("auth.authorization_servers[{i}]"), message, None);
            }
        }
        if self.mode == AuthMode::Oauth {
            if self.issuer.is_none() && self.introspection_url.is_none() {
                push(
                    "auth.issuer",
                    "`mode = \"oauth\"` needs `issuer` (or `introspection_url` for opaque tokens only)".into(),
                    None,
                );
            }
            if self.jwks_uri.is_some() && self.issuer.is_none() {
                push(
                    "auth.issuer",
                    "`jwks_uri` is set without `issuer`; every token's `iss` is checked against it".into(),
                    None,
                );
            }
            if self.introspection_url.is_some() {
                if self.client_id.is_none() {
                    push("auth.client_id", "`introspection_url` needs `client_id`".into(), None);
                }
                if self.client_secret.is_none() {
                    push(
                        "auth.client_secret",
                        "`introspection_url` needs `client_secret`".into(),
                        Some("write it as `env:NAME` or `file:PATH`"),
                    );
                }
            }
        }
        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            push(
                "auth.leeway_seconds",
                format!("leeway {} is too large; expected at most {MAX_LEEWAY_SECONDS} seconds", self.leeway_seconds),
                None,
            );
        }
        if self.audience.as_deref().is_some_and(str::is_empty) {
            push("auth.audience", "the audience is empty".into(), Some("leave it out to use `gateway.public_url`"));
        }
        for (i, scope) in self.required_scopes.iter().chain(&self.scopes_supported).enumerate() {
            if !valid_scope(scope) {
                let key = if i < self.required_scopes.len() { "auth.required_scopes" } else { "auth.scopes_supported" };
                push(key, format!("`{scope}` is not a valid scope"), None);
            }
        }
        out
    }
}

/// `None` when `url` is `https://host…`, or `http://` on a loopback host.
pub(crate) fn url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some(format!("invalid URL `{url}`"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Some(format!("invalid URL `{url}`"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    match scheme {
        "https" => None,
        "http" if is_loopback_host(host) => None,
        "http" => Some(format!("`{url}` uses plain http on a non-loopback host")),
        _ => Some(format!("`{url}` is not an https URL")),
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_section() {
        let text = r#"
            mode = "oauth"
            issuer = "https://login.microsoftonline.com/tid/v2.0"
            audience = "api://moat"
            introspection_url = "https://as.example/introspect"
            client_id = "moat"
            client_secret = "env:MOAT_CLIENT_SECRET"
            required_scopes = ["mcp.read"]
            roles_claims = ["roles"]
            groups_claims = ["groups"]
            leeway_seconds = 30
            authorization_servers = ["https://login.microsoftonline.com/tid/v2.0"]
            scopes_supported = ["mcp.read", "mcp.write"]
        "#;
        let c: AuthConfig = toml::from_str(text).unwrap_or_default();
        assert_eq!(c.mode, AuthMode::Oauth);
        assert_eq!(c.client_secret, Some(SecretRef::Env("MOAT_CLIENT_SECRET".into())));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn scope_rules_match_methods_and_tools_and_take_the_union() {
        let text = r#"
            [[scopes]]
            tool = "files__write_*"
            scopes = ["files:write"]
            [[scopes]]
            method = "resources/*"
            scopes = ["files:read"]
            [[scopes]]
            scopes = ["mcp:use", "files:write"]
        "#;
        let p: PolicyConfig = toml::from_str(text).unwrap();
        assert_eq!(p.scopes_for("tools/call", Some("files__write_file")), ["files:write", "mcp:use"]);
        assert_eq!(p.scopes_for("tools/call", Some("files__read_file")), ["mcp:use", "files:write"]);
        assert_eq!(p.scopes_for("resources/read", None), ["files:read", "mcp:use", "files:write"]);
        // A tool rule never applies to another method, nor to a call that names no tool.
        assert_eq!(p.scopes_for("prompts/get", Some("files__write_file")), ["mcp:use", "files:write"]);
        assert_eq!(p.scopes_for("tools/call", None), ["mcp:use", "files:write"]);
        assert!(p.problems(AuthMode::ApiKey).is_empty());
    }

    #[test]
    fn scope_rules_need_authentication_and_valid_scopes() {
        let p: PolicyConfig =
            toml::from_str("[[scopes]]\nmethod = \"prompts/get\"\ntool = \"x\"\nscopes = [\"a b\"]").unwrap();
        let keys: Vec<String> = p.problems(AuthMode::None).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["policy.scopes[0]", "policy.scopes[0].scopes", "policy.scopes[0].tool"]);
        assert!(toml::from_str::<PolicyConfig>("[[scopes]]\ntool = \"x\"").is_err(), "scopes is required");
    }

    #[test]
    fn rejects_unknown_keys_and_inline_secrets() {
        assert!(toml::from_str::<AuthConfig>("mode = \"oauth\"\nverify_audience = false").is_err());
        assert!(toml::from_str::<AuthConfig>("client_secret = \"hunter2\"").is_err());
        assert!(toml::from_str::<AuthConfig>("mode = \"jwt\"").is_err());
        assert!(toml::from_str::<PolicyConfig>("files = [\"a.cedar\"]\nextra = 1").is_err());
    }

    #[test]
    fn reports_insecure_urls_and_missing_keys() {
        let c = AuthConfig {
            mode: AuthMode::Oauth,
            jwks_uri: Some("http://keys.example/jwks".into()),
            introspection_url: Some("http://127.0.0.1:9000/introspect".into()),
            leeway_seconds: 301,
            ..AuthConfig::default()
        };
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["auth.jwks_uri", "auth.issuer", "auth.client_id", "auth.client_secret", "auth.leeway_seconds"]
        );
        assert_eq!(url_problem("http://[::1]:8080/x"), None);
        assert_eq!(url_problem("http://localhost/x"), None);
        assert!(url_problem("http://localhost.evil.example/").is_some());
        assert!(url_problem("ftp://x/").is_some());
        assert!(url_problem("login.example").is_some());
    }
}
