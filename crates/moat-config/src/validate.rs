//! Checks of meaning that serde cannot make. Every problem is collected and reported at once.

use std::collections::HashSet;

use crate::auth::url_problem;
use crate::auth::AuthMode;
use crate::secret::inline_secret_reason;
use crate::upstream::{UpstreamGrant, UpstreamOAuthConfig};
use crate::{Config, ConfigError, ConfigErrors, EnvValue, Origin, UpstreamConfig};

pub(crate) fn validate(config: &Config, source: &str, origin: &Origin) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let mut err = |key: &str, msg: String, help: Option<&str>| {
        let e = ConfigError::at(origin, source, key, msg);
        errors.push(match help {
            Some(h) => e.with_help(h),
            None => e,
        });
    };

    let g = &config.gateway;
    if !g.path.starts_with('/') || g.path.contains(['?', '#', ' ']) {
        err(
            "gateway.path",
            format!("invalid endpoint path `{}`; expected an absolute path such as `/mcp`", g.path),
            None,
        );
    }
    if let Some(url) = &g.public_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            err("gateway.public_url", format!("invalid public URL `{url}`; expected an `https://` URL"), None);
        }
    }
    match (&g.tls_cert, &g.tls_key) {
        (Some(_), None) => {
            err("gateway.tls_cert", "`tls_cert` is set without `tls_key`".into(), Some("set both to serve HTTPS"))
        }
        (None, Some(_)) => {
            err("gateway.tls_key", "`tls_key` is set without `tls_cert`".into(), Some("set both to serve HTTPS"))
        }
        _ => {}
    }
    if !g.listen.ip().is_loopback() && g.tls_cert.is_none() && !g.allow_plain_http {
        err(
            "gateway.listen",
            format!("plain HTTP on non-loopback address `{}` would expose tokens on the network", g.listen),
            Some("set `tls_cert` and `tls_key`, or `allow_plain_http = true` if a TLS-terminating proxy is in front"),
        );
    }
    if g.max_body_bytes < 1024 {
        err(
            "gateway.max_body_bytes",
            format!("body limit {} is too small; expected at least 1024 bytes", g.max_body_bytes),
            None,
        );
    }
    if g.max_json_depth == 0 || g.max_json_depth > 1024 {
        err(
            "gateway.max_json_depth",
            format!("JSON depth limit {} is out of range; expected 1 to 1024", g.max_json_depth),
            None,
        );
    }
    if g.name_separator.is_empty() {
        err("gateway.name_separator", "the name separator is empty".into(), Some("the default is `__`"));
    }
    if g.max_sessions == 0 {
        err("gateway.max_sessions", "`max_sessions` is 0; no client could connect".into(), None);
    }
    for (i, o) in g.allowed_origins.iter().enumerate() {
        let ok = (o.starts_with("https://") || o.starts_with("http://"))
            && !o.trim_end_matches('/').split("://").nth(1).unwrap_or_default().contains('/');
        if !ok {
            err(
                &format!("gateway.allowed_origins[{i}]"),
                format!("invalid origin `{o}`; expected `scheme://host[:port]`"),
                None,
            );
        }
    }

    let s = &config.sessions;
    if s.idle_timeout.0.is_zero() {
        err("sessions.idle_timeout", "idle timeout is zero".into(), None);
    }
    if s.max_lifetime < s.idle_timeout {
        err(
            "sessions.max_lifetime",
            format!("max lifetime {} is shorter than idle timeout {}", s.max_lifetime, s.idle_timeout),
            None,
        );
    }

    let mut names = HashSet::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        let at = |k: &str| format!("upstream[{i}].{k}");
        let valid_name = !u.name.is_empty()
            && u.name.len() <= 64
            && u.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            err(
                &at("name"),
                format!("invalid upstream name `{}`; expected 1 to 64 letters, digits, `-` or `_`", u.name),
                None,
            );
        } else if u.name.contains(g.name_separator.as_str()) {
            err(
                &at("name"),
                format!(
                    "upstream name `{}` contains the name separator `{}`, so its tool names would be ambiguous",
                    u.name, g.name_separator
                ),
                None,
            );
        }
        if !names.insert(u.name.as_str()) {
            err(&at("name"), format!("upstream name `{}` is used twice", u.name), None);
        }
        match (&u.command, &u.url) {
            (Some(_), Some(_)) => err(&at("url"), "an upstream has either `command` or `url`, not both".into(), None),
            (None, None) => err(
                &at("name"),
                format!("upstream `{}` has neither `command` nor `url`", u.name),
                Some("add `command = [\"prog\", \"arg\"]` for a stdio server or `url = \"https://...\"`"),
            ),
            (Some(cmd), None) if cmd.first().is_none_or(|p| p.is_empty()) => {
                err(&at("command"), "the command is empty; expected `[\"program\", \"arg\", ...]`".into(), None)
            }
            (None, Some(url)) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                err(&at("url"), format!("invalid upstream URL `{url}`; expected `http://` or `https://`"), None)
            }
            _ => {}
        }
        if u.url.is_some() && (!u.env.is_empty() || u.cwd.is_some()) {
            err(&at("env"), "`env` and `cwd` apply only to stdio upstreams (`command`)".into(), None);
        }
        if u.url.is_none() && (u.credential.is_some() || !u.headers.is_empty()) {
            err(&at("credential"), "`credential` and `headers` apply only to HTTP upstreams (`url`)".into(), None);
        }
        for (name, value) in &u.headers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                err(&format!("upstream[{i}].headers"), format!("invalid header name `{name}`"), None);
            }
            if name.eq_ignore_ascii_case("authorization") && u.credential.is_some() {
                err(
                    &format!("upstream[{i}].headers"),
                    "`Authorization` is set twice: by `credential` and in `headers`".into(),
                    None,
                );
            }
            if let EnvValue::Literal(v) = value {
                let secretish = name.eq_ignore_ascii_case("authorization")
                    || name.to_ascii_lowercase().contains("key")
                    || name.to_ascii_lowercase().contains("token");
                if let Some(reason) = inline_secret_reason(name, v).or(secretish.then_some("it is a credential header"))
                {
                    err(
                        &format!("upstream[{i}].headers.{name}"),
                        format!("inline secret refused: {reason}"),
                        Some("reference it instead: `env:NAME` or `file:/path/to/secret`"),
                    );
                }
            }
        }
        if let Some(oauth) = &u.oauth {
            let at = |k: &str| format!("upstream[{i}].oauth.{k}");
            upstream_oauth_problems(oauth, u, config.auth.mode, &at, &mut err);
        }
        for (name, value) in &u.env {
            if let EnvValue::Literal(v) = value {
                if let Some(reason) = inline_secret_reason(name, v) {
                    err(
                        &format!("upstream[{i}].env.{name}"),
                        format!("inline secret refused: {reason}"),
                        Some(&format!(
                            "reference it instead: `{name} = \"env:{name}\"` or `{name} = \"file:/path/to/secret\"`"
                        )),
                    );
                }
            }
        }
        if u.timeout.0.is_zero() {
            err(&at("timeout"), "timeout is zero".into(), None);
        }
    }

    for p in config.auth.problems().into_iter().chain(config.policy.problems(config.auth.mode)) {
        let e = ConfigError::at(origin, source, &p.key, p.message);
        errors.push(match p.help {
            Some(h) => e.with_help(h),
            None => e,
        });
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Problems of one `[upstream.oauth]` table; `at("token_url")` is the located key.
fn upstream_oauth_problems(
    oauth: &UpstreamOAuthConfig,
    u: &UpstreamConfig,
    auth_mode: AuthMode,
    at: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(&str, String, Option<&str>),
) {
    let table = at("").trim_end_matches('.').to_owned();
    if u.url.is_none() {
        err(&table, "`oauth` applies only to HTTP upstreams (`url`)".into(), None);
    }
    if u.credential.is_some() {
        err(
            &table,
            "`Authorization` is set twice: by `credential` and by `[upstream.oauth]`".into(),
            Some("keep one: `credential` for a static token, `oauth` for tokens Moat obtains itself"),
        );
    }
    if u.headers.keys().any(|k| k.eq_ignore_ascii_case("authorization")) {
        err(&table, "`Authorization` is set twice: in `headers` and by `[upstream.oauth]`".into(), None);
    }
    if let Some(message) = url_problem(&oauth.token_url) {
        err(&at("token_url"), message, Some("http is accepted only for loopback hosts (development)"));
    }
    if oauth.client_id.is_empty() {
        err(&at("client_id"), "the client id is empty".into(), None);
    }
    for scope in &oauth.scope.0 {
        let valid = !scope.is_empty()
            && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            err(&at("scope"), format!("`{scope}` is not a valid scope"), None);
        }
    }
    if let Some(resource) = oauth.resource.as_ref().filter(|r| !r.is_empty()) {
        // RFC 8707 §2: an absolute URI without a fragment.
        let absolute = resource.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.is_empty()
        });
        if !absolute || resource.contains('#') {
            err(
                &at("resource"),
                format!("invalid resource indicator `{resource}`; expected an absolute URI without a fragment"),
                Some("leave it out to use the upstream's `url`"),
            );
        }
    }
    if oauth.audience.as_deref().is_some_and(str::is_empty) {
        err(&at("audience"), "the audience is empty".into(), None);
    }
    if oauth.grant == UpstreamGrant::TokenExchange && auth_mode != AuthMode::Oauth {
        // Without OAuth callers there is no token to exchange; acting as Moat instead would
        // give every caller Moat's own rights at the upstream.
        err(
            &at("grant"),
            "`grant = \"token_exchange\"` needs callers with OAuth access tokens".into(),
            Some("set `[auth] mode = \"oauth\"`, or use `grant = \"client_credentials\"`"),
        );
    }
}
