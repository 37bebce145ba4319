//! OpenTelemetry spans for the path of a message (docs/telemetry.md).
//!
//! The gateway uses only the OpenTelemetry API: it makes spans with the global tracer and
//! reads and writes W3C trace context with the global propagator. The binary installs the
//! SDK, the OTLP exporter and the propagator when `[telemetry]` names an endpoint, and then
//! calls [`set_enabled`]. Until then every function here returns at once, so a gateway
//! without telemetry pays one atomic load per message and trusts no client trace context.
//!
//! Two spans per forwarded call, following the OpenTelemetry semantic conventions for MCP:
//! a SERVER span for the client's request (opened in [`crate::Router::handle`], child of
//! the client's `traceparent` when it sent one) and a CLIENT span for the call to the
//! upstream, whose context travels in the upstream POST's `traceparent` header.
//!
//! What is never recorded: tokens, credentials, the full session id (only the 8-character
//! prefix the audit log uses), arguments, results, error messages (they may quote user
//! input), and the query, fragment and user information of resource URIs.

use std::sync::atomic::{AtomicBool, Ordering};

use moat_mcp::{Id, Message};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{global, Context, KeyValue, StringValue, Value};
use serde::Deserialize;

use crate::guard::DecisionRecord;
use crate::session::Session;

/// Instrumentation scope name of every span the gateway makes.
pub const TRACER_NAME: &str = "moat-gateway";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns span creation and trace-context propagation on or off. The binary turns it on
/// after installing a tracer provider and a propagator.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether spans are made.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The caller's trace context from W3C `traceparent`/`tracestate` request headers, to be
/// the parent of the request's span; the current context when tracing is off (a client's
/// header is then ignored, not forwarded).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    if !enabled() {
        return Context::current();
    }
    global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Opens the SERVER span of one client message, as a child of `params._meta`'s
/// `traceparent` when present (the MCP semantic conventions' carrier), else of the current
/// context (the HTTP header, see [`extract_http`]). `None` when tracing is off or the
/// message is a response.
pub fn request_context(session: &Session, msg: &Message) -> Option<Context> {
    if !enabled() || !matches!(msg.kind(), moat_mcp::MessageKind::Request | moat_mcp::MessageKind::Notification) {
        return None;
    }
    let method = msg.method().unwrap_or_default();
    let parent = meta_parent(msg).unwrap_or_else(Context::current);
    let mut attributes = vec![
        KeyValue::new("mcp.method.name", method.to_string()),
        KeyValue::new("moat.session", crate::session::short(&session.id).to_string()),
    ];
    // Not known before `initialize` has negotiated it.
    if method != "initialize" {
        attributes.push(KeyValue::new("mcp.protocol.version", session.version().as_str().to_string()));
    }
    if let Some(id) = msg.id() {
        attributes.push(KeyValue::new("jsonrpc.request.id", request_id(id)));
    }
    let target = target_attributes(method, msg.params(), &mut attributes);
    let tracer = global::tracer(TRACER_NAME);
    let span = tracer
        .span_builder(span_name(method, target.as_deref()))
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    Some(parent.with_span(span))
}

/// Opens the CLIENT span of one call to an upstream, as a child of the current context,
/// and writes its W3C trace context into `headers` (sent on the upstream's HTTP POST).
/// `params` are the parameters as forwarded (the upstream's own tool name). `None` when
/// tracing is off.
pub fn upstream_call(
    upstream: &str,
    method: &str,
    params: Option<&serde_json::value::RawValue>,
    upstream_id: &Id,
    headers: &mut http::HeaderMap,
) -> Option<Context> {
    if !enabled() {
        return None;
    }
    let parent = Context::current();
    let mut attributes = vec![
        KeyValue::new("mcp.method.name", method.to_string()),
        KeyValue::new("jsonrpc.request.id", request_id(upstream_id)),
        KeyValue::new("moat.upstream", upstream.to_string()),
    ];
    let target = target_attributes(method, params, &mut attributes);
    let tracer = global::tracer(TRACER_NAME);
    let span = tracer
        .span_builder(span_name(method, target.as_deref()))
        .with_kind(SpanKind::Client)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    let cx = parent.with_span(span);
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
    Some(cx)
}

/// Records how an upstream call ended on its CLIENT span, and ends the span.
pub fn upstream_result<T>(cx: Option<&Context>, result: &Result<(Message, T), moat_mcp::ConnectionError>) {
    let Some(cx) = cx else { return };
    let span = cx.span();
    match result {
        Ok((msg, _)) => {
            if let Some(outcome) = outcome_of(msg.error(), msg.result()) {
                set_outcome(&span, outcome);
            }
        }
        Err(e) => {
            let kind = match e {
                moat_mcp::ConnectionError::Timeout(..) => "timeout",
                _ => "upstream_unavailable",
            };
            span.set_attribute(KeyValue::new("error.type", kind));
            span.set_status(Status::error(kind));
        }
    }
    span.end();
}

/// Records a guard decision on the current (request) span: `moat.decision`, the rule ids,
/// and the JSON-RPC error code of the answer the client gets.
pub fn record_decision(record: &DecisionRecord, answer: &[u8]) {
    if !enabled() {
        return;
    }
    let cx = Context::current();
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    let decision = match record.decision {
        crate::guard::Decision::Allow => "allow",
        crate::guard::Decision::Deny => "deny",
        crate::guard::Decision::Modify => "modify",
        crate::guard::Decision::Quarantine => "quarantine",
    };
    span.set_attribute(KeyValue::new("moat.decision", decision));
    if !record.upstream.is_empty() {
        span.set_attribute(KeyValue::new("moat.upstream", record.upstream.clone()));
    }
    if !record.rules.is_empty() {
        let rules: Vec<StringValue> = record.rules.iter().map(|r| StringValue::from(r.clone())).collect();
        span.set_attribute(KeyValue::new("moat.rules", Value::Array(rules.into())));
    }
    if let Some(outcome) = answer_outcome(answer) {
        set_outcome(&span, outcome);
    }
}

/// Records the JSON-RPC error code of an answer made without a guard decision
/// (`initialize`, lists, unknown methods) on the request span in `cx`.
pub fn record_answer(cx: &Context, answer: &[u8]) {
    let span = cx.span();
    if span.is_recording() {
        if let Some(outcome) = answer_outcome(answer) {
            set_outcome(&span, outcome);
        }
    }
}

/// The W3C trace id (32 lowercase hex digits) of the current span, for the audit record;
/// `None` when tracing is off.
pub fn current_trace_id() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = Context::current();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// How an answer failed, when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A JSON-RPC error, with its code.
    JsonRpcError(i64),
    /// A tool result with `isError: true` (the semantic conventions' `tool_error`).
    ToolError,
}

fn set_outcome(span: &opentelemetry::trace::SpanRef<'_>, outcome: Outcome) {
    match outcome {
        Outcome::JsonRpcError(code) => {
            span.set_attribute(KeyValue::new("rpc.jsonrpc.error_code", code));
            span.set_attribute(KeyValue::new("error.type", code.to_string()));
            span.set_status(Status::error(format!("JSON-RPC error {code}")));
        }
        Outcome::ToolError => {
            span.set_attribute(KeyValue::new("error.type", "tool_error"));
            span.set_status(Status::error("tool error"));
        }
    }
}

/// `{method} {target}` for calls with a low-cardinality target (a tool or prompt name),
/// else `{method}` (semantic conventions: span names never hold resource URIs).
fn span_name(method: &str, target: Option<&str>) -> String {
    match target {
        Some(t) if !t.is_empty() => format!("{method} {t}"),
        _ => method.to_string(),
    }
}

/// Adds `gen_ai.tool.name`, `gen_ai.prompt.name` or `mcp.resource.uri`; returns the tool
/// or prompt name for the span name.
fn target_attributes(
    method: &str,
    params: Option<&serde_json::value::RawValue>,
    attributes: &mut Vec<KeyValue>,
) -> Option<String> {
    #[derive(Deserialize)]
    struct Target {
        name: Option<String>,
        uri: Option<String>,
    }
    let key = match method {
        "tools/call" => "gen_ai.tool.name",
        "prompts/get" => "gen_ai.prompt.name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "mcp.resource.uri",
        _ => return None,
    };
    let t: Target = serde_json::from_str(params?.get()).ok()?;
    if method == "tools/call" {
        attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
    }
    if key == "mcp.resource.uri" {
        attributes.push(KeyValue::new(key, redact_uri(&t.uri?)));
        return None;
    }
    let name = t.name?;
    attributes.push(KeyValue::new(key, name.clone()));
    Some(name)
}

/// A resource URI without what may carry a credential: user information, query and fragment.
fn redact_uri(uri: &str) -> String {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    let uri = uri.get(..end).unwrap_or(uri);
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => uri.to_string(),
    }
}

fn request_id(id: &Id) -> String {
    let j = id.as_json();
    j.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(j).to_string()
}

/// The parent named by `params._meta.traceparent` (and `tracestate`), when present.
fn meta_parent(msg: &Message) -> Option<Context> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    #[derive(Deserialize)]
    struct Meta {
        traceparent: Option<String>,
        tracestate: Option<String>,
    }
    let params = msg.params()?;
    // Most messages carry none: skip the parse.
    if !params.get().contains("traceparent") {
        return None;
    }
    let meta = serde_json::from_str::<Params>(params.get()).ok()?.meta?;
    let carrier = MetaCarrier { traceparent: meta.traceparent?, tracestate: meta.tracestate };
    let cx = global::get_text_map_propagator(|p| p.extract(&carrier));
    cx.span().span_context().is_valid().then_some(cx)
}

struct MetaCarrier {
    traceparent: String,
    tracestate: Option<String>,
}

impl Extractor for MetaCarrier {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(&self.traceparent),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

fn answer_outcome(answer: &[u8]) -> Option<Outcome> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        error: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow)]
        result: Option<&'a serde_json::value::RawValue>,
    }
    let a: Answer<'_> = serde_json::from_slice(answer).ok()?;
    outcome_of(a.error, a.result)
}

fn outcome_of(
    error: Option<&serde_json::value::RawValue>,
    result: Option<&serde_json::value::RawValue>,
) -> Option<Outcome> {
    #[derive(Deserialize)]
    struct Error {
        code: Option<i64>,
    }
    #[derive(Deserialize)]
    struct ToolResult {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    if let Some(e) = error {
        return serde_json::from_str::<Error>(e.get()).ok()?.code.map(Outcome::JsonRpcError);
    }
    let r = result?;
    // Most results are not tool errors: skip the second parse.
    if !r.get().contains("\"isError\"") {
        return None;
    }
    (serde_json::from_str::<ToolResult>(r.get()).ok()?.is_error == Some(true)).then_some(Outcome::ToolError)
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value)) {
            self.0.insert(k, v);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn span_names_follow_the_conventions() {
        assert_eq!(span_name("tools/call", Some("echo")), "tools/call echo");
        assert_eq!(span_name("tools/list", None), "tools/list");
        let mut attrs = Vec::new();
        let p = serde_json::value::RawValue::from_string(r#"{"uri":"https://u:pw@h.example/a/b?token=x#f"}"#.into())
            .unwrap();
        assert_eq!(target_attributes("resources/read", Some(&p), &mut attrs), None);
        assert_eq!(attrs, vec![KeyValue::new("mcp.resource.uri", "https://h.example/a/b")]);
    }

    #[test]
    fn uris_lose_credentials() {
        assert_eq!(redact_uri("file:///tmp/x?y"), "file:///tmp/x");
        assert_eq!(redact_uri("https://a@b/c"), "https://b/c");
        assert_eq!(redact_uri("demo://note/1"), "demo://note/1");
        assert_eq!(redact_uri("urn:x#frag"), "urn:x");
    }

    #[test]
    fn error_codes_are_read_from_answers() {
        assert_eq!(
            answer_outcome(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"m"}}"#),
            Some(Outcome::JsonRpcError(-32602))
        );
        assert_eq!(answer_outcome(br#"{"jsonrpc":"2.0","id":1,"result":{"error":{"code":1}}}"#), None);
        assert_eq!(
            answer_outcome(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#),
            Some(Outcome::ToolError)
        );
        assert_eq!(
            answer_outcome(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"\"isError\""}],"isError":false}}"#),
            None
        );
        assert_eq!(answer_outcome(b"not json"), None);
    }

    #[test]
    fn ids_are_plain_strings() {
        assert_eq!(request_id(&Id::num(7)), "7");
        assert_eq!(request_id(&Id::string("moat-1")), "moat-1");
    }

    #[test]
    fn off_means_no_context_and_no_headers() {
        // Tests in this module never turn tracing on, so this holds whichever runs first.
        let mut h = http::HeaderMap::new();
        assert!(upstream_call("u", "tools/call", None, &Id::num(1), &mut h).is_none());
        assert!(h.is_empty());
        assert_eq!(current_trace_id(), None);
    }

    #[test]
    fn w3c_context_round_trips_through_headers() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
        use opentelemetry::propagation::TextMapPropagator;
        let mut incoming = http::HeaderMap::new();
        incoming.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        let cx = propagator.extract(&HeaderExtractor(&incoming));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote());
        assert_eq!(sc.trace_id(), TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        let child = SpanContext::new(
            sc.trace_id(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let mut out = http::HeaderMap::new();
        propagator.inject_context(&Context::new().with_remote_span_context(child), &mut HeaderInjector(&mut out));
        assert_eq!(out.get("traceparent").unwrap(), "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01");
    }
}
