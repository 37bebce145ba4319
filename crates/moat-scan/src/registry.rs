//! The approved-server registry (`--registry FILE`): servers outside it are shadow servers
//! (OWASP MCP09).
//!
//! ```toml
//! [[server]]
//! name = "github"                                   # optional
//! command = "npx -y @modelcontextprotocol/server-github@2025.4.8"
//!
//! [[server]]
//! url = "https://api.githubcopilot.com/mcp/"
//!
//! [[server]]
//! sha256 = "sha256:3b1f…"                           # `launch_sha256` from `moat scan --list --format json`
//! ```
//!
//! An entry allows a server when every field it gives matches. `command` is compared with
//! the whole command line (command and arguments joined by spaces); a trailing `*` makes it
//! a prefix. `url` is compared without a trailing `/`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use crate::model::ServerEntry;
use moat_detect::canonical::canonical_sha256;

/// Why a registry file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("cannot read registry `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("registry `{path}` is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    server: Vec<RegistryEntry>,
}

/// One approved server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    pub name: Option<String>,
    pub command: Option<String>,
    pub url: Option<String>,
    pub sha256: Option<String>,
}

/// A loaded registry.
#[derive(Debug, Clone)]
pub struct Registry {
    source: PathBuf,
    entries: Vec<RegistryEntry>,
}

impl Registry {
    /// Loads a registry file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, is not valid TOML, has unknown keys, or has an entry
    /// that names no field at all (which would allow every server).
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RegistryError::Io { path: path.to_path_buf(), source })?;
        Registry::parse(path, &text)
    }

    /// Parses registry text; `path` is only used in messages.
    ///
    /// # Errors
    ///
    /// As for [`Registry::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Registry, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid { path: path.to_path_buf(), message };
        let file: RegistryFile = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        for (i, e) in file.server.iter().enumerate() {
            if e.name.is_none() && e.command.is_none() && e.url.is_none() && e.sha256.is_none() {
                return Err(invalid(format!(
                    "entry {} names no field; give `name`, `command`, `url` or `sha256`",
                    i + 1
                )));
            }
        }
        Ok(Registry { source: path.to_path_buf(), entries: file.server })
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Whether some entry allows `server`.
    pub fn allows(&self, server: &ServerEntry) -> bool {
        self.entries.iter().any(|e| entry_matches(e, server))
    }
}

fn entry_matches(e: &RegistryEntry, s: &ServerEntry) -> bool {
    if e.name.as_ref().is_some_and(|n| n != &s.name) {
        return false;
    }
    if let Some(pattern) = &e.command {
        if s.command.is_none() {
            return false;
        }
        let line = s.target();
        let ok = match pattern.strip_suffix('*') {
            Some(prefix) => line.starts_with(prefix),
            None => &line == pattern,
        };
        if !ok {
            return false;
        }
    }
    if let Some(url) = &e.url {
        match &s.url {
            Some(u) if u.trim_end_matches('/') == url.trim_end_matches('/') => {}
            _ => return false,
        }
    }
    if let Some(hash) = &e.sha256 {
        let want = hash.strip_prefix("sha256:").unwrap_or(hash);
        let have = launch_sha256(s);
        if !have.strip_prefix("sha256:").unwrap_or(&have).eq_ignore_ascii_case(want) {
            return false;
        }
    }
    true
}

/// The hash of how a server is launched or reached: `sha256` of the RFC 8785 form of
/// `{"command": [argv...]}` for stdio servers or `{"url": "..."}` for remote ones. Names,
/// environment and headers are left out, so the hash names the code, not the credentials.
pub fn launch_sha256(s: &ServerEntry) -> String {
    let value = match &s.command {
        Some(cmd) => {
            let mut argv = vec![cmd.clone()];
            argv.extend(s.args.iter().cloned());
            json!({ "command": argv })
        }
        None => json!({ "url": s.url.clone().unwrap_or_default() }),
    };
    canonical_sha256(&value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Client, Scope, Transport};

    fn server(name: &str, cmd: Option<&str>, args: &[&str], url: Option<&str>) -> ServerEntry {
        ServerEntry {
            client: Client::Cursor,
            scope: Scope::User,
            file: PathBuf::from("/x"),
            line: None,
            project: None,
            name: name.into(),
            transport: if cmd.is_some() { Transport::Stdio } else { Transport::Http },
            command: cmd.map(Into::into),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            cwd: None,
            url: url.map(Into::into),
            headers: BTreeMap::new(),
            disabled: false,
            pointer: String::new(),
        }
    }

    #[test]
    fn entries_match_by_command_url_name_and_hash() {
        let gh = server("github", Some("npx"), &["-y", "gh@1.0.0"], None);
        let hash = launch_sha256(&gh);
        let text = format!(
            "[[server]]\nname = \"github\"\ncommand = \"npx -y gh@1.0.0\"\n\n[[server]]\nurl = \"https://r.example/mcp/\"\n\n[[server]]\nsha256 = \"{hash}\"\n\n[[server]]\ncommand = \"uvx mcp-server-git==*\"\n"
        );
        let reg = Registry::parse(Path::new("r.toml"), &text).unwrap();
        assert!(reg.allows(&gh));
        assert!(reg.allows(&server("other-name", Some("npx"), &["-y", "gh@1.0.0"], None)), "by hash");
        assert!(!reg.allows(&server("github", Some("npx"), &["-y", "gh@2.0.0"], None)));
        assert!(reg.allows(&server("r", None, &[], Some("https://r.example/mcp"))));
        assert!(reg.allows(&server("g", Some("uvx"), &["mcp-server-git==1.2"], None)));
        assert!(!reg.allows(&server("x", None, &[], Some("https://evil.example/mcp"))));
    }

    #[test]
    fn an_empty_entry_or_unknown_key_is_an_error() {
        assert!(Registry::parse(Path::new("r.toml"), "[[server]]\n").is_err());
        let err = Registry::parse(Path::new("r.toml"), "[[server]]\nnmae = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("r.toml"), "{err}");
    }
}
