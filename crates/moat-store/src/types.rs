//! The records the store keeps. They are plain data: the state machines that move a
//! session or a pin from one state to the next live with their consumers.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC). Passed in by callers; stores never read the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The system clock, now. A clock before 1970 reads as 0.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        UnixMillis(ms)
    }

    /// `self + ms`, saturating.
    pub fn plus_ms(self, ms: u64) -> Self {
        UnixMillis(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

// ---------------------------------------------------------------------------------------
// Sessions

/// The key of a session: `<principal>:<session>`. A session id alone finds nothing, so a
/// session can only be used by the principal that created it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The principal's stable identifier (issuer + subject, or API key id).
    pub principal: String,
    /// The `Mcp-Session-Id` value.
    pub session: String,
}

impl SessionKey {
    /// A key from its two parts.
    pub fn new(principal: impl Into<String>, session: impl Into<String>) -> Self {
        SessionKey { principal: principal.into(), session: session.into() }
    }
}

impl std::fmt::Display for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal, self.session)
    }
}

/// One MCP session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Who created the session.
    pub principal: String,
    /// The session id.
    pub session: String,
    /// When it was created.
    pub created: UnixMillis,
    /// The last request that used it.
    pub last_seen: UnixMillis,
    /// Idle lifetime: the session ends this long after `last_seen`.
    pub idle_timeout_ms: u64,
    /// Absolute lifetime: the session ends this long after `created`, however busy.
    pub max_lifetime_ms: u64,
    /// The negotiated `MCP-Protocol-Version`.
    pub protocol_version: String,
    /// The client's `clientInfo` from `initialize`, as sent.
    pub client_info: serde_json::Value,
}

impl SessionRecord {
    /// The key this record is stored under.
    pub fn key(&self) -> SessionKey {
        SessionKey::new(self.principal.clone(), self.session.clone())
    }

    /// The first instant at which the session is no longer valid: the earlier of the idle
    /// and the absolute deadline.
    pub fn expires_at(&self) -> UnixMillis {
        self.last_seen.plus_ms(self.idle_timeout_ms).min(self.created.plus_ms(self.max_lifetime_ms))
    }

    /// Whether the session is still valid at `now`.
    pub fn is_live(&self, now: UnixMillis) -> bool {
        now < self.expires_at()
    }
}

// ---------------------------------------------------------------------------------------
// Pins

/// What a pin holds the definition of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinKind {
    /// A tool from `tools/list`.
    Tool,
    /// A prompt from `prompts/list`.
    Prompt,
    /// A resource template from `resources/templates/list`.
    ResourceTemplate,
    /// The server's `instructions` from `initialize` (name is empty).
    Instructions,
}

impl PinKind {
    /// The name used in storage and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PinKind::Tool => "tool",
            PinKind::Prompt => "prompt",
            PinKind::ResourceTemplate => "resource_template",
            PinKind::Instructions => "instructions",
        }
    }

    /// The inverse of [`PinKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tool" => PinKind::Tool,
            "prompt" => PinKind::Prompt,
            "resource_template" => PinKind::ResourceTemplate,
            "instructions" => PinKind::Instructions,
            _ => return None,
        })
    }
}

/// Where a pinned definition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinState {
    /// Seen and trusted on first use.
    Pinned,
    /// Changed since it was trusted, or revoked: not served until approved.
    Quarantined,
    /// Approved by an operator in its current form.
    Approved,
}

impl PinState {
    /// The name used in storage and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PinState::Pinned => "pinned",
            PinState::Quarantined => "quarantined",
            PinState::Approved => "approved",
        }
    }

    /// The inverse of [`PinState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pinned" => PinState::Pinned,
            "quarantined" => PinState::Quarantined,
            "approved" => PinState::Approved,
            _ => return None,
        })
    }
}

/// Which definition a pin is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PinKey {
    /// The upstream's identity (its name, and for stdio servers the executable's hash, as
    /// the caller composes it).
    pub upstream: String,
    /// What is pinned.
    pub kind: PinKind,
    /// The tool, prompt or template name as the upstream gives it.
    pub name: String,
}

impl PinKey {
    /// A key from its parts.
    pub fn new(upstream: impl Into<String>, kind: PinKind, name: impl Into<String>) -> Self {
        PinKey { upstream: upstream.into(), kind, name: name.into() }
    }
}

/// A pinned definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRecord {
    /// Which definition.
    pub key: PinKey,
    /// Where it stands.
    pub state: PinState,
    /// The definition last seen, as canonical JSON text (the bytes that were hashed).
    pub definition: String,
    /// SHA-256 (lowercase hex) of `definition`, as the caller computed it.
    pub hash: String,
    /// The definition that was trusted before it changed (pinned or approved), kept so an
    /// operator can see the difference; `None` while the current one is trusted.
    pub trusted_definition: Option<String>,
    /// The hash of `trusted_definition`.
    pub trusted_hash: Option<String>,
    /// When this key was first pinned.
    pub first_seen: UnixMillis,
    /// The last change of state or definition.
    pub updated: UnixMillis,
}

// ---------------------------------------------------------------------------------------
// Rate limits

/// The answer of a token-bucket take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether a token was taken.
    pub allowed: bool,
    /// Whole tokens left after this take.
    pub remaining: u32,
    /// When refused, how long until a token is available (`u64::MAX` if it never refills).
    pub retry_after_ms: u64,
}

// ---------------------------------------------------------------------------------------
// API keys

/// An API key, stored only as a salted hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The public part of the key, by which it is looked up.
    pub key_id: String,
    /// The salt (encoded as the auth code chooses, e.g. hex).
    pub salt: String,
    /// The salted hash of the secret part (encoded as the auth code chooses). The store
    /// never sees the secret; comparing is the caller's job, in constant time.
    pub hash: String,
    /// The principal the key authenticates as.
    pub principal: String,
    /// Roles granted to that principal.
    pub roles: Vec<String>,
    /// A note for operators.
    pub description: String,
    /// When it was created.
    pub created: UnixMillis,
    /// When it was revoked; a revoked key authenticates nobody.
    pub revoked: Option<UnixMillis>,
}

// ---------------------------------------------------------------------------------------
// Audit

/// One audit record as the store keeps it: the record's canonical JSON (`body`, the bytes
/// the hash chain covers) plus a few columns copied out of it for filtering. The store does
/// not interpret the chain; `moat-audit` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The record's time.
    pub time: UnixMillis,
    /// The principal's subject, if any.
    pub principal: Option<String>,
    /// The tool, prompt or resource, if any.
    pub tool: Option<String>,
    /// `allow`, `deny`, `modify` or `quarantine`.
    pub decision: String,
    /// The record's chain hash (lowercase hex).
    pub hash: String,
    /// The record's canonical JSON.
    pub body: String,
}

/// One seal (a signature over the chain head at `seq`), as canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRow {
    /// The sequence number of the record the seal covers.
    pub seq: u64,
    /// The seal's JSON.
    pub body: String,
}

/// A filter over audit records. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records with `seq > after_seq`.
    pub after_seq: Option<u64>,
    /// Only records at or after this time.
    pub since: Option<UnixMillis>,
    /// Only records before this time.
    pub until: Option<UnixMillis>,
    /// Only this principal (subject).
    pub principal: Option<String>,
    /// Only this tool, prompt or resource.
    pub tool: Option<String>,
    /// Only this decision.
    pub decision: Option<String>,
    /// At most this many records (0: no limit).
    pub limit: usize,
    /// Newest first (for `tail`) instead of oldest first.
    pub newest_first: bool,
}

impl AuditQuery {
    /// Whether `row` passes every filter but `limit` and order.
    pub fn matches(&self, row: &AuditRow) -> bool {
        self.after_seq.is_none_or(|s| row.seq > s)
            && self.since.is_none_or(|t| row.time >= t)
            && self.until.is_none_or(|t| row.time < t)
            && self.principal.as_ref().is_none_or(|p| row.principal.as_ref() == Some(p))
            && self.tool.as_ref().is_none_or(|t| row.tool.as_ref() == Some(t))
            && self.decision.as_ref().is_none_or(|d| &row.decision == d)
    }
}
