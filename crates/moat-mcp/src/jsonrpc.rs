//! JSON-RPC 2.0 messages as MCP uses them, parsed without losing bytes.
//!
//! The envelope (`jsonrpc`, `id`, `method`) is parsed; `params`, `result`, `error` and any
//! member Moat does not know stay raw JSON ([`RawValue`]), so that a message no guard
//! changed is forwarded as it came, and a message whose id is remapped is rebuilt from its
//! original member bytes rather than re-serialized.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::limits::{exceeds_depth, Limits};

/// JSON-RPC error codes Moat sends.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server errors (-32000 to -32099).
    pub const UPSTREAM_UNAVAILABLE: i64 = -32001;
    pub const UPSTREAM_TIMEOUT: i64 = -32006;
    pub const DENIED: i64 = -32003;
    pub const RATE_LIMITED: i64 = -32004;
    pub const TOO_LARGE: i64 = -32005;
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
}

/// A request or response id: the raw JSON text of a string or an integer, compared by text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Id(Arc<str>);

impl Id {
    /// An integer id.
    pub fn num(n: u64) -> Self {
        Id(Arc::from(n.to_string()))
    }
    /// A string id.
    pub fn string(s: &str) -> Self {
        Id(Arc::from(serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())))
    }
    /// The raw JSON text (`7` or `"abc"`).
    pub fn as_json(&self) -> &str {
        &self.0
    }
    /// The value as an unsigned integer, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<String> {
        if self.0.starts_with('"') {
            serde_json::from_str(&self.0).ok()
        } else {
            None
        }
    }
    fn from_raw(raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        let ok = if text.starts_with('"') {
            true
        } else {
            // Integers only: MCP ids are strings or integers, never null, floats or objects.
            let digits = text.strip_prefix('-').unwrap_or(text);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        };
        ok.then(|| Id(Arc::from(text)))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The four shapes of a JSON-RPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Notification,
    Response,
    Error,
}

/// Why bytes are not a message. Each maps to a JSON-RPC code and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("message is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("JSON nesting is deeper than the limit of {limit}")]
    TooDeep { limit: usize },
    #[error("message is not valid UTF-8 (invalid byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("JSON-RPC batches are not supported; send one message per request")]
    Batch,
    #[error("message is not a JSON object")]
    NotObject,
    #[error("invalid JSON-RPC message: {0}")]
    Shape(&'static str),
}

impl ParseError {
    /// The JSON-RPC error code for this failure.
    pub fn code(&self) -> i64 {
        match self {
            ParseError::TooLarge { .. } => code::TOO_LARGE,
            ParseError::TooDeep { .. } | ParseError::InvalidUtf8 { .. } | ParseError::Json(_) => code::PARSE_ERROR,
            ParseError::Batch | ParseError::NotObject | ParseError::Shape(_) => code::INVALID_REQUEST,
        }
    }
}

/// One JSON-RPC message with its original bytes.
#[derive(Clone)]
pub struct Message {
    raw: Bytes,
    kind: MessageKind,
    id: Option<Id>,
    method: Option<Box<str>>,
    params: Option<Box<RawValue>>,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
    extra: Vec<(Box<str>, Box<RawValue>)>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("method", &self.method)
            .field("bytes", &self.raw.len())
            .finish()
    }
}

impl Message {
    /// Parses one message, enforcing `limits` first.
    pub fn parse(raw: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        if raw.len() > limits.max_bytes {
            return Err(ParseError::TooLarge { size: raw.len(), limit: limits.max_bytes });
        }
        if let Err(e) = std::str::from_utf8(&raw) {
            return Err(ParseError::InvalidUtf8 { offset: e.valid_up_to() });
        }
        if exceeds_depth(&raw, limits.max_depth) {
            return Err(ParseError::TooDeep { limit: limits.max_depth });
        }
        if crate::limits::has_lone_surrogate(&raw) {
            return Err(ParseError::Json("a string holds an unpaired UTF-16 surrogate escape".into()));
        }
        match raw.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => return Err(ParseError::Batch),
            Some(b'{') => {}
            None => return Err(ParseError::Json("empty message".into())),
            Some(_) => {
                // Let the parser say what it is, but a scalar is never a message.
                return Err(match serde_json::from_slice::<serde_json::Value>(&raw) {
                    Ok(_) => ParseError::NotObject,
                    Err(e) => ParseError::Json(e.to_string()),
                });
            }
        }
        let mut de = serde_json::Deserializer::from_slice(&raw);
        de.disable_recursion_limit();
        let env = Envelope::deserialize(&mut de).map_err(|e| ParseError::Json(e.to_string()))?;
        de.end().map_err(|e| ParseError::Json(e.to_string()))?;
        Self::from_envelope(raw.clone(), env)
    }

    fn from_envelope(raw: Bytes, env: Envelope) -> Result<Message, ParseError> {
        match env.jsonrpc.as_deref() {
            Some("2.0") => {}
            Some(_) => return Err(ParseError::Shape("`jsonrpc` must be \"2.0\"")),
            None => return Err(ParseError::Shape("`jsonrpc` member is missing")),
        }
        let id = match &env.id {
            Some(raw_id) => Some(Id::from_raw(raw_id).ok_or(ParseError::Shape("`id` must be a string or an integer"))?),
            None => None,
        };
        let kind = match (&env.method, &id, &env.result, &env.error) {
            (Some(_), Some(_), None, None) => MessageKind::Request,
            (Some(_), None, None, None) => MessageKind::Notification,
            (None, Some(_), Some(_), None) => MessageKind::Response,
            (None, Some(_), None, Some(_)) => MessageKind::Error,
            (None, None, _, Some(_)) => MessageKind::Error, // an error about an unparseable request
            (Some(_), _, _, _) => return Err(ParseError::Shape("a request must not carry `result` or `error`")),
            (None, _, Some(_), Some(_)) => {
                return Err(ParseError::Shape("a response carries `result` or `error`, not both"))
            }
            (None, _, None, None) => return Err(ParseError::Shape("`method` member is missing")),
            (None, None, Some(_), None) => return Err(ParseError::Shape("a response needs an `id`")),
        };
        if let Some(p) = &env.params {
            let first = p.get().as_bytes().first().copied();
            if !matches!(first, Some(b'{') | Some(b'[')) {
                return Err(ParseError::Shape("`params` must be an object"));
            }
        }
        Ok(Message {
            raw,
            kind,
            id,
            method: env.method,
            params: env.params,
            result: env.result,
            error: env.error,
            extra: env.extra,
        })
    }

    pub fn kind(&self) -> MessageKind {
        self.kind
    }
    pub fn id(&self) -> Option<&Id> {
        self.id.as_ref()
    }
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }
    pub fn params(&self) -> Option<&RawValue> {
        self.params.as_deref()
    }
    pub fn result(&self) -> Option<&RawValue> {
        self.result.as_deref()
    }
    pub fn error(&self) -> Option<&RawValue> {
        self.error.as_deref()
    }
    /// The bytes the message arrived as.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    pub fn is_request(&self) -> bool {
        self.kind == MessageKind::Request
    }
    pub fn is_response(&self) -> bool {
        matches!(self.kind, MessageKind::Response | MessageKind::Error)
    }

    /// Params parsed into `T` (for the few fields a guard reads).
    pub fn params_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        self.params.as_ref().and_then(|p| serde_json::from_str(p.get()).ok())
    }

    /// The same message with another id; every other member keeps its bytes.
    pub fn with_id(&self, id: &Id) -> Bytes {
        self.rebuild(Some(id), self.params.as_deref(), self.result.as_deref())
    }

    /// The same message with another id and params.
    pub fn with_id_and_params(&self, id: Option<&Id>, params: &RawValue) -> Bytes {
        self.rebuild(id.or(self.id.as_ref()), Some(params), self.result.as_deref())
    }

    /// The same message (a response) with another id and result.
    pub fn with_id_and_result(&self, id: &Id, result: &RawValue) -> Bytes {
        self.rebuild(Some(id), self.params.as_deref(), Some(result))
    }

    fn rebuild(&self, id: Option<&Id>, params: Option<&RawValue>, result: Option<&RawValue>) -> Bytes {
        let mut out = String::with_capacity(self.raw.len() + 32);
        out.push_str("{\"jsonrpc\":\"2.0\"");
        if let Some(id) = id {
            out.push_str(",\"id\":");
            out.push_str(id.as_json());
        }
        if let Some(m) = &self.method {
            out.push_str(",\"method\":");
            push_json_string(&mut out, m);
        }
        if let Some(p) = params {
            out.push_str(",\"params\":");
            out.push_str(p.get());
        }
        if let Some(r) = result {
            out.push_str(",\"result\":");
            out.push_str(r.get());
        }
        if let Some(e) = &self.error {
            out.push_str(",\"error\":");
            out.push_str(e.get());
        }
        for (k, v) in &self.extra {
            out.push(',');
            push_json_string(&mut out, k);
            out.push(':');
            out.push_str(v.get());
        }
        out.push('}');
        Bytes::from(out)
    }
}

/// A request's bytes.
pub fn request(id: &Id, method: &str, params: Option<&RawValue>) -> Bytes {
    let mut out = String::with_capacity(64 + params.map_or(0, |p| p.get().len()));
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id.as_json());
    out.push_str(",\"method\":");
    push_json_string(&mut out, method);
    if let Some(p) = params {
        out.push_str(",\"params\":");
        out.push_str(p.get());
    }
    out.push('}');
    Bytes::from(out)
}

/// A notification's bytes.
pub fn notification(method: &str, params: Option<&RawValue>) -> Bytes {
    let mut out = String::with_capacity(64);
    out.push_str("{\"jsonrpc\":\"2.0\",\"method\":");
    push_json_string(&mut out, method);
    if let Some(p) = params {
        out.push_str(",\"params\":");
        out.push_str(p.get());
    }
    out.push('}');
    Bytes::from(out)
}

/// A successful response's bytes.
pub fn response(id: &Id, result: &RawValue) -> Bytes {
    let mut out = String::with_capacity(32 + result.get().len());
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id.as_json());
    out.push_str(",\"result\":");
    out.push_str(result.get());
    out.push('}');
    Bytes::from(out)
}

/// An error response's bytes. `id` is `None` when the request could not be read.
pub fn error_response(id: Option<&Id>, code: i64, message: &str, data: Option<&serde_json::Value>) -> Bytes {
    let mut err = serde_json::json!({ "code": code, "message": message });
    if let (Some(d), Some(obj)) = (data, err.as_object_mut()) {
        obj.insert("data".into(), d.clone());
    }
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.map_or(serde_json::Value::Null, |i| serde_json::from_str(i.as_json()).unwrap_or(serde_json::Value::Null)),
        "error": err,
    });
    Bytes::from(body.to_string())
}

/// A `serde_json::Value` as a boxed raw value.
pub fn to_raw(v: &serde_json::Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| {
        // A Value always serializes; keep a valid fallback rather than panic.
        RawValue::from_string("null".to_string()).unwrap_or_else(|_| Box::<RawValue>::default())
    })
}

fn push_json_string(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

/// The envelope as read: known members parsed, the rest kept raw.
#[derive(Default)]
struct Envelope {
    jsonrpc: Option<String>,
    id: Option<Box<RawValue>>,
    method: Option<Box<str>>,
    params: Option<Box<RawValue>>,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
    extra: Vec<(Box<str>, Box<RawValue>)>,
}

impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
                let mut env = Envelope::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let dup = |present: bool| {
                        if present {
                            Err(de::Error::custom(format!("duplicate member `{key}`")))
                        } else {
                            Ok(())
                        }
                    };
                    match key.as_ref() {
                        "jsonrpc" => {
                            dup(env.jsonrpc.is_some())?;
                            env.jsonrpc = Some(map.next_value::<String>()?);
                        }
                        "id" => {
                            dup(env.id.is_some())?;
                            let v: Box<RawValue> = map.next_value()?;
                            // `"id": null` appears only on errors about unreadable requests.
                            env.id = (v.get() != "null").then_some(v);
                        }
                        "method" => {
                            dup(env.method.is_some())?;
                            env.method = Some(map.next_value::<String>()?.into_boxed_str());
                        }
                        "params" => {
                            dup(env.params.is_some())?;
                            env.params = Some(map.next_value()?);
                        }
                        "result" => {
                            dup(env.result.is_some())?;
                            env.result = Some(map.next_value()?);
                        }
                        "error" => {
                            dup(env.error.is_some())?;
                            env.error = Some(map.next_value()?);
                        }
                        other => {
                            let v: Box<RawValue> = map.next_value()?;
                            env.extra.push((other.into(), v));
                        }
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::from(s.to_string()), &Limits::default())
    }

    #[test]
    fn classifies_the_four_shapes() {
        assert_eq!(parse(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap().kind(), MessageKind::Request);
        assert_eq!(parse(r#"{"jsonrpc":"2.0","method":"x"}"#).unwrap().kind(), MessageKind::Notification);
        assert_eq!(parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap().kind(), MessageKind::Response);
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#).unwrap().kind(),
            MessageKind::Error
        );
    }

    #[test]
    fn rejects_bad_shapes_with_reasons() {
        assert_eq!(parse("[]").unwrap_err(), ParseError::Batch);
        assert_eq!(parse("3").unwrap_err(), ParseError::NotObject);
        assert!(matches!(parse("{").unwrap_err(), ParseError::Json(_)));
        assert!(matches!(parse(r#"{"id":1,"method":"x"}"#).unwrap_err(), ParseError::Shape(_)));
        assert!(matches!(parse(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).unwrap_err(), ParseError::Shape(_)));
        assert!(matches!(parse(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#).unwrap_err(), ParseError::Shape(_)));
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#).unwrap_err(),
            ParseError::Shape(_)
        ));
        assert!(matches!(parse(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#).unwrap_err(), ParseError::Json(_)));
        let bad = Message::parse(Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}"), &Limits::default());
        assert_eq!(bad.unwrap_err(), ParseError::InvalidUtf8 { offset: 27 });
    }

    #[test]
    fn remapping_the_id_keeps_every_other_member() {
        let m = parse(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x", "arguments":{}},"_meta_x":{"k":1}}"#,
        )
        .unwrap();
        let out = m.with_id(&Id::string("c-1"));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"x", "arguments":{}},"_meta_x":{"k":1}}"#
        );
        let again = Message::parse(out, &Limits::default()).unwrap();
        assert_eq!(again.id().unwrap().as_str().as_deref(), Some("c-1"));
    }

    #[test]
    fn limits_apply_before_parsing() {
        let limits = Limits { max_bytes: 10, max_depth: 2 };
        let e = Message::parse(Bytes::from_static(br#"{"jsonrpc":"2.0"}"#), &limits).unwrap_err();
        assert!(matches!(e, ParseError::TooLarge { .. }));
        let limits = Limits { max_bytes: 1000, max_depth: 2 };
        let e = Message::parse(Bytes::from_static(br#"{"jsonrpc":"2.0","method":"x","params":{"a":[[1]]}}"#), &limits)
            .unwrap_err();
        assert_eq!(e, ParseError::TooDeep { limit: 2 });
    }
}
