//! The record, its hash, and the seal.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use moat_store::UnixMillis;

use crate::AuditError;

/// The `prev` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation: a record hash can never be confused with any other SHA-256 Moat takes.
const RECORD_DOMAIN: &[u8] = b"moat-audit-v1 record\n";

/// What the gateway decided about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forwarded as it was.
    Allow,
    /// Refused.
    Deny,
    /// Forwarded after a guard changed it (redaction, spotlighting).
    Modify,
    /// A changed definition was quarantined.
    Quarantine,
}

impl Decision {
    /// The name used in records and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Modify => "modify",
            Decision::Quarantine => "quarantine",
        }
    }

    /// The inverse of [`Decision::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "allow" => Decision::Allow,
            "deny" => Decision::Deny,
            "modify" => Decision::Modify,
            "quarantine" => Decision::Quarantine,
            _ => return None,
        })
    }
}

/// Who made the request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditPrincipal {
    /// The token's `sub`, or the API key's principal.
    pub subject: String,
    /// The OAuth client id, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// One decision, as the gateway reports it. Never put a token, a key or an unredacted
/// argument in any field.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// When the decision was made.
    pub time: UnixMillis,
    /// Who asked (`None`: unauthenticated, e.g. a refused request without a token).
    pub principal: Option<AuditPrincipal>,
    /// The MCP session id.
    pub session: Option<String>,
    /// The client's address (`IP:port`).
    pub source: Option<String>,
    /// The upstream the message was for.
    pub upstream: Option<String>,
    /// The JSON-RPC method (`tools/call`, `tools/list`, ...).
    pub method: String,
    /// The tool, prompt or resource named by the message.
    pub target: Option<String>,
    /// SHA-256 (hex) of the RFC 8785 canonical JSON of the arguments ([`arguments_digest`]).
    pub arguments_sha256: Option<String>,
    /// The arguments themselves, only with `include_arguments`, already redacted.
    pub arguments: Option<serde_json::Value>,
    /// The decision.
    pub decision: Decision,
    /// A short, fixed reason code (`policy`, `hijack_attempt`, `rate_limited`...).
    pub reason: Option<String>,
    /// The rule ids of the findings behind the decision.
    pub rules: Vec<String>,
    /// Time spent handling the message, in microseconds.
    pub latency_us: u64,
    /// Size of the result returned to the client, in bytes.
    pub result_bytes: Option<u64>,
    /// The W3C trace id of the request's span.
    pub trace_id: Option<String>,
}

impl AuditEvent {
    /// An event at the current time with only the method and decision set.
    pub fn new(method: impl Into<String>, decision: Decision) -> Self {
        AuditEvent {
            time: UnixMillis::now(),
            principal: None,
            session: None,
            source: None,
            upstream: None,
            method: method.into(),
            target: None,
            arguments_sha256: None,
            arguments: None,
            decision,
            reason: None,
            rules: Vec::new(),
            latency_us: 0,
            result_bytes: None,
            trace_id: None,
        }
    }

    /// Sets the argument digest from `arguments`, and keeps `redacted` (the arguments after
    /// the caller's redaction) only when `include_arguments` is on.
    ///
    /// # Errors
    /// When the arguments cannot be canonicalized (they hold a number JSON cannot carry).
    pub fn with_arguments(
        mut self,
        arguments: &serde_json::Value,
        include_arguments: bool,
        redacted: impl FnOnce() -> serde_json::Value,
    ) -> Result<Self, AuditError> {
        self.arguments_sha256 = Some(arguments_digest(arguments)?);
        self.arguments = include_arguments.then(redacted);
        Ok(self)
    }
}

/// SHA-256 (lowercase hex) of the RFC 8785 canonical form of `arguments`: the same
/// arguments give the same digest whatever the key order or number spelling they came in.
///
/// # Errors
/// When the value cannot be canonicalized.
pub fn arguments_digest(arguments: &serde_json::Value) -> Result<String, AuditError> {
    let canonical = serde_json_canonicalizer::to_vec(arguments).map_err(|e| AuditError::Encode(e.to_string()))?;
    Ok(hex::encode(Sha256::digest(&canonical)))
}

/// One record as stored: the event, its place in the chain, and the link to the record
/// before it. Its canonical JSON is the `body` that the chain hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Format version (1).
    pub v: u32,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<AuditPrincipal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    pub latency_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The hash of record `seq - 1` ([`GENESIS_HASH`] for the first).
    pub prev: String,
}

impl AuditRecord {
    /// The record for `event` at position `seq` after a record whose hash is `prev`.
    pub fn new(event: AuditEvent, seq: u64, prev: String) -> Self {
        AuditRecord {
            v: 1,
            seq,
            time: format_time(event.time),
            principal: event.principal,
            session: event.session,
            source: event.source,
            upstream: event.upstream,
            method: event.method,
            target: event.target,
            arguments_sha256: event.arguments_sha256,
            arguments: event.arguments,
            decision: event.decision,
            reason: event.reason,
            rules: event.rules,
            latency_us: event.latency_us,
            result_bytes: event.result_bytes,
            trace_id: event.trace_id,
            prev,
        }
    }

    /// The canonical JSON (RFC 8785) of the record: the bytes stored and hashed.
    ///
    /// # Errors
    /// When the record cannot be canonicalized.
    pub fn canonical_body(&self) -> Result<String, AuditError> {
        serde_json_canonicalizer::to_string(self).map_err(|e| AuditError::Encode(e.to_string()))
    }

    /// The record's time, parsed back (`None` if the stored text is not RFC 3339).
    pub fn unix_millis(&self) -> Option<UnixMillis> {
        parse_time(&self.time)
    }
}

/// The chain hash of a record body.
pub fn record_hash(body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(RECORD_DOMAIN);
    h.update(body);
    hex::encode(h.finalize())
}

/// A signature over the chain head: "record `seq` has hash `head`", made at `time` with
/// the key whose id is `key_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// Format version (1).
    pub v: u32,
    /// The record the seal covers (and every record before it, through the chain).
    pub seq: u64,
    /// That record's hash.
    pub head: String,
    /// RFC 3339 UTC time of sealing.
    pub time: String,
    /// First 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
    /// Base64 Ed25519 signature over [`Seal::signed_bytes`].
    pub sig: String,
}

impl Seal {
    /// The exact bytes signed: a fixed, line-oriented text so that no JSON canonicalization
    /// sits between the signer and the verifier.
    pub fn signed_bytes(seq: u64, head: &str, time: &str, key_id: &str) -> Vec<u8> {
        format!("moat-audit-v1 seal\nseq={seq}\nhead={head}\ntime={time}\nkey_id={key_id}\n").into_bytes()
    }
}

/// RFC 3339 UTC with milliseconds.
pub(crate) fn format_time(t: UnixMillis) -> String {
    let ms = u64::try_from(t.0).unwrap_or(0);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses RFC 3339 (any precision, `Z` or offset-free) into Unix milliseconds.
pub(crate) fn parse_time(s: &str) -> Option<UnixMillis> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
    Some(UnixMillis(i64::try_from(ms).ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_key_order_and_number_spelling() {
        let a = serde_json::json!({"path": "/etc/passwd", "n": 1.0, "nested": {"b": 2, "a": 1}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{"nested":{"a":1,"b":2},"n":1,"path":"/etc/passwd"}"#).unwrap();
        assert_eq!(arguments_digest(&a).unwrap(), arguments_digest(&b).unwrap());
        let c = serde_json::json!({"path": "/etc/shadow", "n": 1, "nested": {"b": 2, "a": 1}});
        assert_ne!(arguments_digest(&a).unwrap(), arguments_digest(&c).unwrap());
        // The digest of {} is SHA-256 of the two bytes `{}`.
        assert_eq!(
            arguments_digest(&serde_json::json!({})).unwrap(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn arguments_are_kept_only_when_asked() {
        let args = serde_json::json!({"token": "s3cr3t"});
        let without = AuditEvent::new("tools/call", Decision::Allow)
            .with_arguments(&args, false, || serde_json::json!({"token": "[REDACTED]"}))
            .unwrap();
        assert!(without.arguments.is_none());
        assert!(without.arguments_sha256.is_some());
        let with = AuditEvent::new("tools/call", Decision::Allow)
            .with_arguments(&args, true, || serde_json::json!({"token": "[REDACTED]"}))
            .unwrap();
        assert_eq!(with.arguments, Some(serde_json::json!({"token": "[REDACTED]"})));
    }

    #[test]
    fn body_is_canonical_and_round_trips() {
        let mut e = AuditEvent::new("tools/call", Decision::Deny);
        e.time = UnixMillis(1_764_171_062_123);
        e.rules = vec!["MOAT-TP-001".into()];
        let r = AuditRecord::new(e, 7, GENESIS_HASH.into());
        let body = r.canonical_body().unwrap();
        assert!(body.starts_with(r#"{"decision":"deny","latency_us":0,"method":"tools/call","prev":"000"#), "{body}");
        assert!(body.contains(r#""time":"2025-11-26T15:31:02.123Z""#), "{body}");
        let back: AuditRecord = serde_json::from_str(&body).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.unix_millis(), Some(UnixMillis(1_764_171_062_123)));
        assert_eq!(record_hash(body.as_bytes()).len(), 64);
    }
}
