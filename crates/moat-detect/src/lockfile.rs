//! The lock file (`moat.lock`): the reviewed definition of every tool, prompt, resource
//! template and set of server instructions, per upstream. It is meant to be committed next to
//! `moat.toml`. `moat pins export` writes it from the gateway's pin store, `moat scan --pins`
//! compares live servers with it, and the gateway can enforce it (a definition whose hash is
//! not the one the lock names is quarantined).
//!
//! ```json
//! {
//!   "version": 1,
//!   "upstreams": {
//!     "github|stdio:npx -y @modelcontextprotocol/server-github@2025.4.8": {
//!       "tools": {
//!         "create_issue": { "sha256": "sha256:9f2c…", "definition": { "name": "create_issue", … } }
//!       },
//!       "prompts": {},
//!       "resource_templates": {},
//!       "instructions": { "sha256": "sha256:…", "definition": "…" }
//!     }
//!   }
//! }
//! ```
//!
//! The key of an upstream is its identity, `<name>|stdio:<command line>` or `<name>|http:<url>`
//! (`moat-config`'s `UpstreamConfig::identity`), so a new version of a server is a new
//! upstream. Every `sha256` is a [`pin_hash`] (a domain-separated SHA-256 of the RFC 8785
//! canonical form of the members a pin covers): the same value the gateway stores, so a lock
//! and a pin store can be compared hash for hash. `definition` holds those members, so that a
//! change can be shown field by field; when present it must hash to `sha256`, otherwise the
//! file is refused (a reviewer reads `definition`, the gateway enforces `sha256`: they must
//! not disagree). Resource templates are keyed by `uriTemplate`; concrete resources are not
//! pinned (they are data, and change).
//!
//! This module is pure: parsing from and printing to text. Reading and writing files is the
//! caller's business.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{pin_hash, pinned_definition, PinDomain};

/// The lock file format version this build reads and writes.
pub const LOCK_FILE_VERSION: u32 = 1;

/// Why a lock file's text is not a valid lock file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockFileError {
    /// Not JSON, or not the lock file's shape.
    #[error("{0}")]
    Syntax(String),
    /// Another format version.
    #[error("format version {found} is not supported (expected {LOCK_FILE_VERSION})")]
    Version { found: u32 },
    /// A pin whose hash is malformed or does not match its definition.
    #[error("{kind} `{name}` of upstream `{upstream}`: {reason}")]
    Pin { upstream: String, kind: &'static str, name: String, reason: String },
}

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    /// Upstream identity → its pins.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamPins>,
}

impl Default for LockFile {
    fn default() -> Self {
        LockFile { version: LOCK_FILE_VERSION, upstreams: BTreeMap::new() }
    }
}

/// The pins of one upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamPins {
    #[serde(default)]
    pub tools: BTreeMap<String, Pin>,
    #[serde(default)]
    pub prompts: BTreeMap<String, Pin>,
    #[serde(default)]
    pub resource_templates: BTreeMap<String, Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Pin>,
}

/// One pinned definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The [`pin_hash`] of the definition.
    pub sha256: String,
    /// The pinned members of the definition (see [`pinned_definition`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
}

impl Pin {
    /// The pin of a definition of the given kind (the whole definition as a server lists it;
    /// only the pinned members are kept).
    pub fn of(domain: PinDomain, definition: &Value) -> Pin {
        Pin { sha256: pin_hash(domain, definition), definition: Some(pinned_definition(domain, definition)) }
    }
}

impl LockFile {
    /// Parses a lock file, checking its version and that every pin's definition hashes to
    /// its `sha256`.
    ///
    /// # Errors
    ///
    /// [`LockFileError::Syntax`] for text that is not a lock file (unknown keys included),
    /// [`LockFileError::Version`] for another format version, [`LockFileError::Pin`] for a
    /// malformed hash or one its definition does not produce.
    pub fn parse(text: &str) -> Result<LockFile, LockFileError> {
        let file: LockFile = serde_json::from_str(text).map_err(|e| LockFileError::Syntax(e.to_string()))?;
        if file.version != LOCK_FILE_VERSION {
            return Err(LockFileError::Version { found: file.version });
        }
        for (upstream, pins) in &file.upstreams {
            for (domain, name, pin) in pins.iter() {
                check_pin(domain, pin).map_err(|reason| LockFileError::Pin {
                    upstream: upstream.clone(),
                    kind: noun(domain),
                    name: name.to_owned(),
                    reason,
                })?;
            }
        }
        Ok(file)
    }

    /// The lock file as text: pretty JSON with sorted keys and a final newline, so that a
    /// committed lock diffs line by line.
    pub fn to_json_string(&self) -> String {
        // Serializing maps with string keys and `Value`s cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The pin the lock holds for `name` of `kind` of the upstream `identity` (the name is
    /// ignored for instructions).
    pub fn pin(&self, identity: &str, kind: PinDomain, name: &str) -> Option<&Pin> {
        let pins = self.upstreams.get(identity)?;
        match kind {
            PinDomain::Tool => pins.tools.get(name),
            PinDomain::Prompt => pins.prompts.get(name),
            PinDomain::ResourceTemplate => pins.resource_templates.get(name),
            PinDomain::Instructions => pins.instructions.as_ref(),
        }
    }

    /// The hash the lock expects for `name` of `kind` of the upstream `identity`, or `None`
    /// when the lock does not name it (the name is ignored for instructions).
    pub fn expected_hash(&self, identity: &str, kind: PinDomain, name: &str) -> Option<&str> {
        self.pin(identity, kind, name).map(|p| p.sha256.as_str())
    }

    /// Whether the lock has an entry for the upstream `identity` at all (a gateway enforcing
    /// a lock treats any definition of such an upstream that the lock does not name as new).
    pub fn has_upstream(&self, identity: &str) -> bool {
        self.upstreams.contains_key(identity)
    }

    /// Sets (or replaces) one pin.
    pub fn insert(&mut self, identity: &str, kind: PinDomain, name: &str, pin: Pin) {
        let pins = self.upstreams.entry(identity.to_owned()).or_default();
        match kind {
            PinDomain::Tool => {
                pins.tools.insert(name.to_owned(), pin);
            }
            PinDomain::Prompt => {
                pins.prompts.insert(name.to_owned(), pin);
            }
            PinDomain::ResourceTemplate => {
                pins.resource_templates.insert(name.to_owned(), pin);
            }
            PinDomain::Instructions => pins.instructions = Some(pin),
        }
    }

    /// Removes the pins of the upstream `identity` for which `remove(kind, name)` is true,
    /// and the upstream itself if nothing is left.
    pub fn remove_where(&mut self, identity: &str, mut remove: impl FnMut(PinDomain, &str) -> bool) {
        let Some(pins) = self.upstreams.get_mut(identity) else { return };
        pins.tools.retain(|n, _| !remove(PinDomain::Tool, n));
        pins.prompts.retain(|n, _| !remove(PinDomain::Prompt, n));
        pins.resource_templates.retain(|n, _| !remove(PinDomain::ResourceTemplate, n));
        if pins.instructions.is_some() && remove(PinDomain::Instructions, "") {
            pins.instructions = None;
        }
        if pins.is_empty() {
            self.upstreams.remove(identity);
        }
    }
}

impl UpstreamPins {
    /// Every pin with its kind and name (empty for instructions).
    pub fn iter(&self) -> impl Iterator<Item = (PinDomain, &str, &Pin)> {
        fn keyed(domain: PinDomain, map: &BTreeMap<String, Pin>) -> impl Iterator<Item = (PinDomain, &str, &Pin)> {
            map.iter().map(move |(n, p)| (domain, n.as_str(), p))
        }
        keyed(PinDomain::Tool, &self.tools)
            .chain(keyed(PinDomain::Prompt, &self.prompts))
            .chain(keyed(PinDomain::ResourceTemplate, &self.resource_templates))
            .chain(self.instructions.iter().map(|p| (PinDomain::Instructions, "", p)))
    }

    /// Whether it holds no pin.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
            && self.prompts.is_empty()
            && self.resource_templates.is_empty()
            && self.instructions.is_none()
    }
}

/// The word a message uses for a kind of pin.
fn noun(domain: PinDomain) -> &'static str {
    match domain {
        PinDomain::Tool => "tool",
        PinDomain::Prompt => "prompt",
        PinDomain::ResourceTemplate => "resource template",
        PinDomain::Instructions => "instructions",
    }
}

fn check_pin(domain: PinDomain, pin: &Pin) -> Result<(), String> {
    let hex = pin.sha256.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("`{}` is not a `sha256:` followed by 64 lowercase hex digits", pin.sha256));
    }
    if let Some(definition) = &pin.definition {
        let actual = pin_hash(domain, definition);
        if actual != pin.sha256 {
            return Err(format!("its definition hashes to `{actual}`, not to its `sha256`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use serde_json::json;

    use super::*;

    const ID: &str = "demo|stdio:moat demo-server";

    fn sample() -> LockFile {
        let mut lock = LockFile::default();
        let tool = json!({"name": "add", "description": "Adds.", "inputSchema": {"type": "object"}, "icons": []});
        lock.insert(ID, PinDomain::Tool, "add", Pin::of(PinDomain::Tool, &tool));
        lock.insert(ID, PinDomain::Instructions, "", Pin::of(PinDomain::Instructions, &json!("Be nice.")));
        lock
    }

    #[test]
    fn round_trips_and_looks_up_pin_hashes() {
        let lock = sample();
        let text = lock.to_json_string();
        assert!(text.ends_with("}\n"));
        let back = LockFile::parse(&text).unwrap();
        assert_eq!(back, lock);
        let tool = json!({"name": "add", "description": "Adds.", "inputSchema": {"type": "object"}});
        assert_eq!(back.expected_hash(ID, PinDomain::Tool, "add"), Some(pin_hash(PinDomain::Tool, &tool).as_str()));
        assert_eq!(
            back.expected_hash(ID, PinDomain::Instructions, "ignored"),
            Some(pin_hash(PinDomain::Instructions, &json!("Be nice.")).as_str())
        );
        assert_eq!(back.expected_hash(ID, PinDomain::Prompt, "add"), None, "kinds are separate");
        assert_eq!(back.expected_hash("demo|stdio:other", PinDomain::Tool, "add"), None);
        assert!(!text.contains("icons"), "only pinned members are kept: {text}");
    }

    #[test]
    fn refuses_other_versions_unknown_keys_and_mismatched_hashes() {
        assert_eq!(LockFile::parse(r#"{"version": 2}"#).unwrap_err(), LockFileError::Version { found: 2 });
        assert!(matches!(LockFile::parse(r#"{"version": 1, "extra": 1}"#), Err(LockFileError::Syntax(_))));
        assert!(matches!(LockFile::parse("not json"), Err(LockFileError::Syntax(_))));

        let mut lock = sample();
        if let Some(p) = lock.upstreams.get_mut(ID).and_then(|u| u.tools.get_mut("add")) {
            p.definition = Some(json!({"name": "add", "description": "Adds. And reads ~/.ssh."}));
        }
        let err = LockFile::parse(&lock.to_json_string()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("tool `add` of upstream `demo|stdio:moat demo-server`: its definition hashes to"),
            "{err}"
        );

        let bad = format!(r#"{{"version":1,"upstreams":{{"{ID}":{{"tools":{{"add":{{"sha256":"md5:00"}}}}}}}}}}"#);
        assert!(LockFile::parse(&bad).unwrap_err().to_string().contains("64 lowercase hex digits"));
        let hash_only = format!(
            r#"{{"version":1,"upstreams":{{"{ID}":{{"tools":{{"add":{{"sha256":"sha256:{}"}}}}}}}}}}"#,
            "a".repeat(64)
        );
        assert!(LockFile::parse(&hash_only).is_ok(), "a pin may hold only its hash");
    }

    #[test]
    fn remove_where_drops_empty_upstreams() {
        let mut lock = sample();
        lock.remove_where(ID, |k, _| k == PinDomain::Tool);
        assert!(lock.has_upstream(ID));
        assert_eq!(lock.expected_hash(ID, PinDomain::Tool, "add"), None);
        lock.remove_where(ID, |_, _| true);
        assert!(!lock.has_upstream(ID));
    }
}
