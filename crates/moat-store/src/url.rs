use std::path::PathBuf;

use crate::StoreError;

/// A parsed `[store] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory`: nothing survives a restart (tests, demos).
    Memory,
    /// `sqlite://PATH[?synchronous=full]`: one file, one gateway process.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// `synchronous=FULL` instead of `NORMAL`: commits survive power loss, not only a
        /// crash of the process, at the cost of an fsync per commit.
        synchronous_full: bool,
    },
    /// `redis://…` or `rediss://…`: shared by several gateway replicas. Kept as given,
    /// since it may carry a password; never log it.
    Redis(String),
}

impl StoreUrl {
    /// Parses a store URL.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`] when the scheme is unknown or the path is empty.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidUrl { url: redact_url(url), reason: reason.to_owned() };
        if url == "memory" || url == "memory://" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(invalid("the database path is empty"));
            }
            let mut synchronous_full = false;
            if let Some(query) = query {
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    match pair {
                        "synchronous=full" | "synchronous=FULL" => synchronous_full = true,
                        "synchronous=normal" | "synchronous=NORMAL" => synchronous_full = false,
                        _ => return Err(invalid("the only option is `synchronous=normal|full`")),
                    }
                }
            }
            return Ok(StoreUrl::Sqlite { path: expand_home(path), synchronous_full });
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return Ok(StoreUrl::Redis(url.to_owned()));
        }
        Err(invalid("expected `sqlite://PATH`, `redis://HOST[:PORT][/DB]` or `memory`"))
    }

    /// A form safe to print: a Redis password is replaced with `***`.
    pub fn display_redacted(&self) -> String {
        match self {
            StoreUrl::Memory => "memory".to_owned(),
            StoreUrl::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            StoreUrl::Redis(url) => redact_url(url),
        }
    }
}

/// Replaces the user-info part of a URL (`user:password@`) so it can appear in a message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", url.get(..scheme_end + 3).unwrap_or(""), url.get(at..).unwrap_or(""))
        }
        _ => url.to_owned(),
    }
}

fn expand_home(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        assert_eq!(StoreUrl::parse("memory").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/moat/moat.db").unwrap(),
            StoreUrl::Sqlite { path: "/var/lib/moat/moat.db".into(), synchronous_full: false }
        );
        assert_eq!(
            StoreUrl::parse("sqlite://moat.db?synchronous=full").unwrap(),
            StoreUrl::Sqlite { path: "moat.db".into(), synchronous_full: true }
        );
        assert!(matches!(StoreUrl::parse("redis://127.0.0.1:6379/0").unwrap(), StoreUrl::Redis(_)));
    }

    #[test]
    fn rejects_unknown_and_redacts_passwords() {
        assert!(StoreUrl::parse("postgres://x").is_err());
        assert!(StoreUrl::parse("sqlite://").is_err());
        assert!(StoreUrl::parse("sqlite://a.db?journal=off").is_err());
        let url = StoreUrl::parse("redis://user:hunter2@host:6379").unwrap();
        assert_eq!(url.display_redacted(), "redis://***@host:6379");
        let err = StoreUrl::parse("rdis://user:hunter2@host").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
