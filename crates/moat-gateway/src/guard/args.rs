//! Argument checks (MCP05: command injection; SSRF; path traversal; MCP01 secrets).
//!
//! Before a call leaves, its arguments are validated against the pinned `inputSchema`
//! (JSON Schema, draft by `$schema`, 2020-12 by default; no remote `$ref` is ever fetched),
//! then every string in them passes the policies that apply: paths (no `..`, no sensitive
//! files, inside allowed roots), URLs (allowed schemes; no private, loopback, link-local or
//! metadata address after DNS resolution), shell metacharacters and SQL statements for
//! tools configured as such, and secrets.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use moat_config::guards::{glob_match, ArgumentsGuard, SecretAction, ToolRule};
use moat_detect::Detector;
use moat_mcp::jsonrpc::code;
use serde_json::Value;

use super::Denial;

/// Paths no argument may name (`~` is the gateway user's home).
const SENSITIVE_PATHS: &[&str] = &[
    "~/.ssh",
    "~/.aws",
    "~/.gnupg",
    "~/.kube",
    "~/.docker/config.json",
    "~/.netrc",
    "~/.git-credentials",
    "~/.config/gcloud",
    "~/.azure",
    "~/.npmrc",
    "~/.pypirc",
    "~/.bash_history",
    "~/.zsh_history",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/ssh",
    "/root",
    "/proc/self/environ",
    "/proc/1/environ",
];
/// File names no argument may name, wherever they are.
const SENSITIVE_NAMES: &[&str] = &[".env", "id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", ".pgpass", "credentials.json"];
/// Argument names that hold paths.
const PATH_KEYS: &[&str] = &[
    "path",
    "file",
    "filename",
    "dir",
    "directory",
    "folder",
    "root",
    "source",
    "destination",
    "target",
    "dest",
    "src",
];
/// Argument names that hold URLs.
const URL_KEYS: &[&str] = &["url", "uri", "endpoint", "href", "link", "webhook"];
const SHELL_META: &[char] =
    &[';', '|', '&', '$', '`', '>', '<', '\n', '\r', '(', ')', '{', '}', '\\', '!', '*', '?', '~'];
const SQL_WRITES: &[&str] = &[
    "insert", "update", "delete", "drop", "alter", "create", "truncate", "grant", "revoke", "attach", "detach",
    "pragma", "replace", "merge", "copy", "vacuum", "call", "exec", "execute",
];

/// The argument guard.
pub struct ArgumentGuard {
    config: ArgumentsGuard,
    tools: Vec<ToolRule>,
    detector: Detector,
    home: Option<PathBuf>,
}

impl ArgumentGuard {
    pub fn new(config: ArgumentsGuard, tools: Vec<ToolRule>, detector: Detector) -> Self {
        ArgumentGuard { config, tools, detector, home: std::env::var_os("HOME").map(PathBuf::from) }
    }

    /// Compiles a tool's `inputSchema`; `Err` names why it cannot be used.
    pub fn compile(schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        jsonschema::validator_for(schema).map(Arc::new).map_err(|e| e.to_string())
    }

    /// Checks one call's arguments. `tool` is the public name.
    pub async fn check(
        &self,
        tool: &str,
        schema: Option<&Result<Arc<jsonschema::Validator>, String>>,
        arguments: &Value,
    ) -> Result<Vec<String>, Denial> {
        let mut flagged = Vec::new();
        if !self.config.enabled {
            return Ok(flagged);
        }
        if self.config.validate_schema {
            match schema {
                Some(Ok(v)) => {
                    let errors: Vec<String> = v
                        .iter_errors(arguments)
                        .take(3)
                        .map(|e| {
                            let at = e.instance_path.to_string();
                            if at.is_empty() {
                                e.to_string()
                            } else {
                                format!("{at}: {e}")
                            }
                        })
                        .collect();
                    if !errors.is_empty() {
                        return Err(Denial::new(
                            code::INVALID_PARAMS,
                            format!("arguments do not match the tool's input schema: {}", errors.join("; ")),
                        )
                        .with_rules(vec!["MOAT-ARG-001".into()]));
                    }
                }
                Some(Err(e)) => {
                    return Err(Denial::new(
                        code::INVALID_PARAMS,
                        format!("the tool's input schema is invalid, so its arguments cannot be checked: {e}"),
                    )
                    .with_rules(vec!["MOAT-ARG-001".into()]));
                }
                None => {}
            }
        }
        let rules: Vec<&ToolRule> = self.tools.iter().filter(|r| glob_match(&r.pattern, tool)).collect();
        let mut roots: Vec<PathBuf> = self.config.allowed_roots.iter().map(|r| self.expand(r)).collect();
        roots.extend(rules.iter().flat_map(|r| r.allowed_roots.iter()).map(|r| self.expand(r)));
        let shell = rules.iter().any(|r| r.shell);
        let sql = rules.iter().any(|r| r.sql);

        let mut strings = Vec::new();
        collect_strings(arguments, "", &mut strings);
        for (key, pointer, value) in strings {
            let key_l = key.to_ascii_lowercase();
            if is_path_like(&key_l, value) {
                self.check_path(&pointer, value, &roots)?;
            }
            if is_url_like(&key_l, value) {
                self.check_url(&pointer, value).await?;
            }
            if shell {
                if let Some(c) = value.chars().find(|c| SHELL_META.contains(c)) {
                    return Err(Denial::new(
                        code::INVALID_PARAMS,
                        format!("argument `{pointer}` contains the shell metacharacter `{}`", c.escape_default()),
                    )
                    .with_rules(vec!["MOAT-ARG-004".into()]));
                }
            }
            if sql {
                check_sql(&pointer, value)?;
            }
            let secrets: Vec<String> = self
                .detector
                .scan_text(value)
                .into_iter()
                .filter(|f| f.rule.starts_with("MOAT-SEC-"))
                .map(|f| f.rule)
                .collect();
            if !secrets.is_empty() {
                if self.config.secrets == SecretAction::Block {
                    return Err(Denial::new(
                        code::INVALID_PARAMS,
                        format!("argument `{pointer}` contains a secret ({})", secrets.join(", ")),
                    )
                    .with_rules(secrets));
                }
                flagged.extend(secrets);
            }
        }
        Ok(flagged)
    }

    fn expand(&self, p: &str) -> PathBuf {
        match (p.strip_prefix("~/"), &self.home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ if p == "~" => self.home.clone().unwrap_or_else(|| PathBuf::from(p)),
            _ => PathBuf::from(p),
        }
    }

    fn check_path(&self, pointer: &str, value: &str, roots: &[PathBuf]) -> Result<(), Denial> {
        let deny = |what: String| Err(Denial::new(code::INVALID_PARAMS, what).with_rules(vec!["MOAT-ARG-002".into()]));
        let raw = value.strip_prefix("file://").unwrap_or(value);
        let path = self.expand(raw);
        if path.components().any(|c| c == Component::ParentDir) {
            return deny(format!("argument `{pointer}` escapes its directory with `..`"));
        }
        let normal = normalize(&path);
        for s in
            SENSITIVE_PATHS.iter().map(|s| self.expand(s)).chain(self.config.deny_paths.iter().map(|s| self.expand(s)))
        {
            if normal.starts_with(&s) {
                return deny(format!("argument `{pointer}` names a sensitive path (`{}`)", s.display()));
            }
        }
        if let Some(name) = normal
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => n.to_str(),
                _ => None,
            })
            .find(|n| SENSITIVE_NAMES.iter().any(|s| n == s || (*s == ".env" && n.starts_with(".env."))))
        {
            return deny(format!("argument `{pointer}` names a sensitive file (`{name}`)"));
        }
        if !roots.is_empty() && normal.is_absolute() && !roots.iter().any(|r| normal.starts_with(normalize(r))) {
            return deny(format!("argument `{pointer}` is outside the allowed roots"));
        }
        Ok(())
    }

    async fn check_url(&self, pointer: &str, value: &str) -> Result<(), Denial> {
        let deny = |what: String| Err(Denial::new(code::INVALID_PARAMS, what).with_rules(vec!["MOAT-ARG-003".into()]));
        let Some((scheme, rest)) = value.split_once("://") else { return Ok(()) };
        let scheme = scheme.to_ascii_lowercase();
        if !self.config.url_schemes.iter().any(|s| s.eq_ignore_ascii_case(&scheme)) {
            return deny(format!("argument `{pointer}` uses the URL scheme `{scheme}`, which is not allowed"));
        }
        if !self.config.deny_private_networks {
            return Ok(());
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_host_port(host_port, if scheme == "https" { 443 } else { 80 });
        let host_l = host.to_ascii_lowercase();
        if host_l.is_empty() {
            return deny(format!("argument `{pointer}` is a URL without a host"));
        }
        if host_l == "localhost"
            || host_l.ends_with(".localhost")
            || host_l == "metadata.google.internal"
            || host_l.ends_with(".internal")
        {
            return deny(format!("argument `{pointer}` points at an internal host (`{host}`)"));
        }
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                match tokio::time::timeout(std::time::Duration::from_secs(3), tokio::net::lookup_host((host, port)))
                    .await
                {
                    Ok(Ok(it)) => it.map(|a| a.ip()).collect(),
                    // A name that does not resolve reaches nothing internal through the upstream
                    // either, unless its resolver differs; fail closed.
                    _ => {
                        return deny(format!(
                            "argument `{pointer}`: host `{host}` does not resolve, so it cannot be checked"
                        ))
                    }
                }
            }
        };
        if let Some(ip) = addrs.iter().find(|ip| is_internal(ip)) {
            return deny(format!("argument `{pointer}` points at the internal address {ip} (SSRF)"));
        }
        Ok(())
    }
}

fn split_host_port(hp: &str, default: u16) -> (&str, u16) {
    if let Some(rest) = hp.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').unwrap_or((rest, ""));
        return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(default));
    }
    match hp.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => (h, p.parse().unwrap_or(default)),
        _ => (hp, default),
    }
}

/// Private, loopback, link-local (cloud metadata), CGNAT, unspecified and multicast.
pub fn is_internal(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(&IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn is_path_like(key: &str, value: &str) -> bool {
    PATH_KEYS
        .iter()
        .any(|k| key == *k || key.ends_with(&format!("_{k}")) || key.ends_with(k) && key.len() <= k.len() + 6)
        || value.starts_with('/')
        || value.starts_with("~/")
        || value.starts_with("./")
        || value.starts_with("../")
        || value.starts_with("file://")
}

fn is_url_like(key: &str, value: &str) -> bool {
    value.contains("://")
        && (URL_KEYS.iter().any(|k| key.contains(k))
            || value.starts_with("http://")
            || value.starts_with("https://")
            || !value.contains(' '))
}

fn check_sql(pointer: &str, value: &str) -> Result<(), Denial> {
    let deny = |what: String| Err(Denial::new(code::INVALID_PARAMS, what).with_rules(vec!["MOAT-ARG-005".into()]));
    let text = value.trim().trim_end_matches(';');
    if text.contains(';') {
        return deny(format!("argument `{pointer}` holds more than one SQL statement"));
    }
    let lower = text.to_ascii_lowercase();
    let first = lower.split_whitespace().next().unwrap_or_default();
    if !matches!(first, "select" | "with" | "explain" | "show" | "describe") {
        return deny(format!("argument `{pointer}` is not a read-only query (`{first}`)"));
    }
    if let Some(w) = lower.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').find(|w| SQL_WRITES.contains(w)) {
        return deny(format!("argument `{pointer}` contains the SQL keyword `{w}`"));
    }
    Ok(())
}

/// (key, JSON pointer, value) of every string in `v`.
fn collect_strings<'a>(v: &'a Value, pointer: &str, out: &mut Vec<(String, String, &'a str)>) {
    match v {
        Value::String(s) => {
            let key = pointer.rsplit('/').next().unwrap_or_default().to_string();
            out.push((key, if pointer.is_empty() { "/".into() } else { pointer.to_string() }, s));
        }
        Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                collect_strings(item, &format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                collect_strings(item, &format!("{pointer}/{}", moat_detect::escape_pointer(k)), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn guard() -> ArgumentGuard {
        ArgumentGuard::new(
            ArgumentsGuard::default(),
            vec![
                ToolRule { pattern: "sh".into(), allowed_roots: vec![], shell: true, sql: false, output: None },
                ToolRule {
                    pattern: "db".into(),
                    allowed_roots: vec!["/srv".into()],
                    shell: false,
                    sql: true,
                    output: None,
                },
            ],
            Detector::builtin().unwrap(),
        )
    }

    #[tokio::test]
    async fn paths_urls_shell_and_sql() {
        let g = guard();
        let j = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert!(g.check("read", None, &j(r#"{"path":"/tmp/x/../../etc/passwd"}"#)).await.is_err());
        assert!(g.check("read", None, &j(r#"{"path":"~/.ssh/id_rsa"}"#)).await.is_err());
        assert!(g.check("read", None, &j(r#"{"path":"/app/.env"}"#)).await.is_err());
        assert!(g.check("read", None, &j(r#"{"path":"/tmp/notes.txt"}"#)).await.is_ok());
        assert!(g.check("fetch", None, &j(r#"{"url":"http://169.254.169.254/latest/meta-data/"}"#)).await.is_err());
        assert!(g.check("fetch", None, &j(r#"{"url":"http://127.0.0.1:8080/admin"}"#)).await.is_err());
        assert!(g.check("fetch", None, &j(r#"{"url":"http://[::ffff:10.0.0.1]/"}"#)).await.is_err());
        assert!(g.check("fetch", None, &j(r#"{"url":"file:///etc/passwd"}"#)).await.is_err());
        assert!(g.check("fetch", None, &j(r#"{"url":"https://93.184.215.14/page"}"#)).await.is_ok());
        assert!(g.check("sh", None, &j(r#"{"host":"8.8.8.8; cat /etc/passwd"}"#)).await.is_err());
        assert!(g.check("sh", None, &j(r#"{"host":"8.8.8.8"}"#)).await.is_ok());
        assert!(g.check("db", None, &j(r#"{"q":"SELECT * FROM t; DROP TABLE t"}"#)).await.is_err());
        assert!(g.check("db", None, &j(r#"{"q":"DELETE FROM t"}"#)).await.is_err());
        assert!(g.check("db", None, &j(r#"{"q":"select name from users where id = 1"}"#)).await.is_ok());
        assert!(g.check("db", None, &j(r#"{"path":"/etc/hosts"}"#)).await.is_err(), "outside roots");
    }

    #[tokio::test]
    async fn schema_violations_are_named() {
        let g = guard();
        let schema = ArgumentGuard::compile(
            &serde_json::json!({"type":"object","properties":{"a":{"type":"number"}},"required":["a"],"additionalProperties":false}),
        );
        let d = g.check("add", Some(&schema), &serde_json::json!({"a":"x","b":1})).await.unwrap_err();
        assert!(d.message.contains("input schema"), "{}", d.message);
        assert!(g.check("add", Some(&schema), &serde_json::json!({"a":1})).await.is_ok());
    }
}
