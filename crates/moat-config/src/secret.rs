//! Secrets by reference: `env:NAME` or `file:PATH`, resolved when Moat starts.
//!
//! A [`Secret`] has no `Debug` and no `Display`, and its bytes are zeroized on drop, so a
//! resolved value cannot end up in a log line or a config dump by accident.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Where a secret comes from. The reference itself is not secret and may be printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable of the Moat process.
    Env(String),
    /// A file; relative paths are resolved against the configuration file's folder.
    File(PathBuf),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`; anything else is not a reference.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(name) = s.strip_prefix("env:") {
            (!name.is_empty()).then(|| SecretRef::Env(name.to_string()))
        } else if let Some(path) = s.strip_prefix("file:") {
            (!path.is_empty()).then(|| SecretRef::File(PathBuf::from(path)))
        } else {
            None
        }
    }

    /// Reads the secret. Trailing newlines of files are dropped.
    pub fn resolve(&self, base_dir: &Path) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match std::env::var_os(name) {
                Some(v) => Ok(Secret(Zeroizing::new(v.into_encoded_bytes()))),
                None => Err(SecretError {
                    reference: self.to_string(),
                    reason: "the environment variable is not set".into(),
                }),
            },
            SecretRef::File(path) => {
                let full = if path.is_absolute() { path.clone() } else { base_dir.join(path) };
                let mut bytes = std::fs::read(&full).map_err(|e| SecretError {
                    reference: self.to_string(),
                    reason: format!("cannot read `{}`: {e}", full.display()),
                })?;
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                Ok(Secret(Zeroizing::new(bytes)))
            }
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SecretRef::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(
                "expected a secret reference, `env:NAME` or `file:PATH`; secrets are never written inline",
            )
        })
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A resolved secret. Deliberately neither `Debug` nor `Display`.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// The secret as UTF-8 text, when it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

/// A reference that could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot resolve secret `{reference}`: {reason}")]
pub struct SecretError {
    pub reference: String,
    pub reason: String,
}

/// Why a literal value looks like a secret that should have been a reference, if it does.
pub fn inline_secret_reason(key: &str, value: &str) -> Option<&'static str> {
    if value.is_empty() || SecretRef::parse(value).is_some() {
        return None;
    }
    let k = key.to_ascii_uppercase();
    const SECRET_NAMES: [&str; 9] =
        ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "PRIVATE_KEY", "CREDENTIAL", "ACCESS_KEY"];
    if SECRET_NAMES.iter().any(|n| k.contains(n)) {
        return Some("its name says it holds a secret");
    }
    const PREFIXES: [(&str, usize); 14] = [
        ("AKIA", 20),
        ("ASIA", 20),
        ("ghp_", 30),
        ("gho_", 30),
        ("ghs_", 30),
        ("github_pat_", 30),
        ("glpat-", 20),
        ("xoxb-", 20),
        ("xoxp-", 20),
        ("sk-ant-", 30),
        ("sk-", 30),
        ("sk_live_", 20),
        ("rk_live_", 20),
        ("AIza", 35),
    ];
    if PREFIXES.iter().any(|(p, min)| value.starts_with(p) && value.len() >= *min && !value.contains(' ')) {
        return Some("it has the format of an access token");
    }
    if value.contains("PRIVATE KEY-----") {
        return Some("it is a private key");
    }
    if value.starts_with("eyJ") && value.matches('.').count() == 2 {
        return Some("it is a JSON Web Token");
    }
    if let Some((scheme_rest, _)) = value.split_once('@') {
        if let Some((_, creds)) = scheme_rest.split_once("://") {
            if creds.contains(':') {
                return Some("it is a URL with a password in it");
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_print() {
        assert_eq!(SecretRef::parse("env:TOKEN"), Some(SecretRef::Env("TOKEN".into())));
        assert_eq!(SecretRef::parse("file:/run/key"), Some(SecretRef::File("/run/key".into())));
        assert_eq!(SecretRef::parse("env:"), None);
        assert_eq!(SecretRef::parse("hunter2"), None);
        assert_eq!(SecretRef::Env("A".into()).to_string(), "env:A");
    }

    #[test]
    fn file_secret_drops_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("moat-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("k"), b"s3cr3t\n").unwrap();
        let s = SecretRef::File("k".into()).resolve(&dir).unwrap();
        assert_eq!(s.expose(), b"s3cr3t");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inline_secrets_are_recognised() {
        assert!(inline_secret_reason("GITHUB_TOKEN", "abc").is_some());
        assert!(inline_secret_reason("X", "AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(inline_secret_reason("X", "ghp_0123456789abcdefghijklmnopqrstuvwxyz").is_some());
        assert!(inline_secret_reason("DB", "postgres://app:pw@db/x").is_some());
        assert!(inline_secret_reason("GITHUB_TOKEN", "env:GITHUB_TOKEN").is_none());
        assert!(inline_secret_reason("LOG_LEVEL", "debug").is_none());
        assert!(inline_secret_reason("URL", "https://example.com/a@b").is_none());
    }
}
