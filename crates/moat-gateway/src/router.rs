//! The router: Moat as the MCP server its clients see.
//!
//! It answers `initialize` and `ping` itself, aggregates list requests across upstreams
//! (following their cursors), routes calls by public name, and carries everything an
//! upstream says back to the client session it belongs to. Ids are remapped in both
//! directions so that no two clients or upstreams ever collide: requests to an upstream
//! carry the upstream connection's own ids, and server requests to a client carry ids of
//! Moat's (`"moat-<n>"`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moat_mcp::jsonrpc::{self, code, to_raw};
use moat_mcp::{raw, Connection, Id, Inbound, Message, MessageKind, ProtocolVersion};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::guard::{Decision, DecisionRecord, Denial, Guards, ListKindPin, Quarantine, ResultDecision};
use crate::names::Namer;
use crate::session::{Session, SessionTable};
use crate::upstream::{Upstream, UpstreamEvent};

/// How long a request waits for an upstream that is (re)starting.
const WAIT_READY: Duration = Duration::from_secs(10);
/// Most pages followed when aggregating one upstream's list.
const MAX_PAGES: usize = 100;
/// Ended calls remembered for their late messages.
const RECENT_CALLS: usize = 256;
/// Related messages buffered per call before the client reads them.
const CALL_STREAM_DEPTH: usize = 64;

/// One item of a call's answer stream: messages about the request, then its response.
#[derive(Debug)]
pub enum StreamItem {
    Related(Bytes),
    Final(Bytes),
}

/// What the front sends back for one client message.
#[derive(Debug)]
pub enum Reply {
    /// A notification or a response was accepted (HTTP 202).
    Accepted,
    /// One response.
    Message(Bytes),
    /// Related messages, then the response (JSON if the first item is final, else SSE).
    Stream(mpsc::Receiver<StreamItem>),
}

/// A client request being served by an upstream.
#[derive(Debug)]
struct CallCtx {
    session: Arc<Session>,
    client_id: Id,
    sink: mpsc::Sender<StreamItem>,
}

/// Where a progress token Moat issued leads back to.
#[derive(Debug)]
struct ProgressRoute {
    session: Arc<Session>,
    original: Box<RawValue>,
    upstream: usize,
    upstream_id: Id,
}

#[derive(Clone)]
struct Route {
    upstream: usize,
    name: String,
    /// The pinned `inputSchema`, compiled (tools only).
    schema: Option<Result<Arc<jsonschema::Validator>, String>>,
    /// The tool's annotations (for policies on `readOnlyHint`, `destructiveHint`).
    annotations: Option<Value>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route").field("upstream", &self.upstream).field("name", &self.name).finish()
    }
}

/// Routing tables learned from list responses.
#[derive(Debug, Default)]
struct Catalog {
    tools: HashMap<String, Route>,
    prompts: HashMap<String, Route>,
    resources: HashMap<String, usize>,
    /// URI template prefixes (up to the first `{`), per upstream.
    templates: Vec<(String, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }
    fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }
    fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::Templates => "resources",
        }
    }
}

/// The MCP server clients see.
#[derive(Debug)]
pub struct Router {
    upstreams: Vec<Arc<Upstream>>,
    pub sessions: Arc<SessionTable>,
    namer: Namer,
    catalog: RwLock<Catalog>,
    inflight: Vec<Mutex<HashMap<Id, CallCtx>>>,
    progress: Mutex<HashMap<String, ProgressRoute>>,
    counter: AtomicU64,
    guards: Arc<Guards>,
    /// The tamper-evident audit log (`[audit]`), when configured.
    audit: Option<moat_audit::AuditLog>,
    /// `[audit] include_arguments`.
    audit_arguments: bool,
    /// Upstream messages the event loop has finished handling, per upstream (since its
    /// current connection started): responses wait for this to catch up, so a progress
    /// notification is never overtaken by the response that follows it.
    processed: Vec<tokio::sync::watch::Sender<u64>>,
    /// Calls that ended lately (upstream, upstream id, session), for late messages.
    recent: Mutex<std::collections::VecDeque<(usize, Id, Arc<Session>)>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Caps on calls in flight, per upstream.
    permits: Vec<Arc<tokio::sync::Semaphore>>,
}

#[derive(Deserialize)]
pub(crate) struct NameParam {
    pub(crate) name: Option<String>,
}

#[derive(Deserialize)]
struct UriParam {
    uri: Option<String>,
}

impl Router {
    /// Builds the router over started upstreams and starts handling their events.
    pub fn new(
        upstreams: Vec<Arc<Upstream>>,
        events: mpsc::Receiver<UpstreamEvent>,
        sessions: Arc<SessionTable>,
        separator: &str,
        guards: Arc<Guards>,
        audit: Option<moat_audit::AuditLog>,
        audit_arguments: bool,
    ) -> Arc<Router> {
        let n = upstreams.len();
        let router = Arc::new(Router {
            permits: upstreams
                .iter()
                .map(|u| Arc::new(tokio::sync::Semaphore::new(u.config.max_concurrent.max(1))))
                .collect(),
            processed: upstreams.iter().map(|_| tokio::sync::watch::channel(0).0).collect(),
            recent: Mutex::new(std::collections::VecDeque::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            guards,
            audit,
            audit_arguments,
            namer: Namer::new(separator, n),
            inflight: (0..n).map(|_| Mutex::new(HashMap::new())).collect(),
            upstreams,
            sessions,
            catalog: RwLock::new(Catalog::default()),
            progress: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(1),
        });
        tokio::spawn(router.clone().run_events(events));
        router
    }

    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Refreshes the gauges every `period`.
    pub fn spawn_metrics_refresh(self: &Arc<Self>, period: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(r) = weak.upgrade() else { return };
                r.metrics.set_sessions(r.sessions.len());
                for u in &r.upstreams {
                    r.metrics.set_upstream_up(&u.name, u.connection_now().is_some());
                }
                r.metrics.set_quarantined(r.guards.pins.quarantined_count());
            }
        });
    }

    /// Handles one message from a client session, inside its request span when tracing is on.
    pub async fn handle(self: &Arc<Self>, session: &Arc<Session>, msg: Message) -> Reply {
        use opentelemetry::context::FutureExt as _;
        let Some(cx) = crate::telemetry::request_context(session, &msg) else {
            return self.handle_message(session, msg).await;
        };
        let reply = self.handle_message(session, msg).with_context(cx.clone()).await;
        if let Reply::Message(b) = &reply {
            crate::telemetry::record_answer(&cx, b);
        }
        reply
    }

    async fn handle_message(self: &Arc<Self>, session: &Arc<Session>, msg: Message) -> Reply {
        if let Some(m) = msg.method() {
            self.metrics.observe_request(m);
        }
        match msg.kind() {
            MessageKind::Request => self.handle_request(session, msg).await,
            MessageKind::Notification => {
                self.handle_client_notification(session, &msg).await;
                Reply::Accepted
            }
            MessageKind::Response | MessageKind::Error => {
                self.handle_client_response(session, &msg).await;
                Reply::Accepted
            }
        }
    }

    async fn handle_request(self: &Arc<Self>, session: &Arc<Session>, msg: Message) -> Reply {
        let Some(id) = msg.id().cloned() else { return Reply::Accepted };
        let method = msg.method().unwrap_or_default();
        match method {
            "initialize" => Reply::Message(self.initialize(session, &msg).await),
            "ping" => Reply::Message(jsonrpc::response(&id, &to_raw(&json!({})))),
            moat_mcp::version::newer::SERVER_DISCOVER => Reply::Message(server_discover_unsupported(&id)),
            "tools/list" => Reply::Message(self.list(session, &id, &msg, ListKind::Tools).await),
            "prompts/list" => Reply::Message(self.list(session, &id, &msg, ListKind::Prompts).await),
            "resources/list" => Reply::Message(self.list(session, &id, &msg, ListKind::Resources).await),
            "resources/templates/list" => Reply::Message(self.list(session, &id, &msg, ListKind::Templates).await),
            "tools/call" | "prompts/get" => {
                let kind = if method == "tools/call" { ListKind::Tools } else { ListKind::Prompts };
                let name = msg.params_as::<NameParam>().and_then(|p| p.name);
                let Some(name) = name else {
                    return error(&id, code::INVALID_PARAMS, "`params.name` is missing");
                };
                match self.route_named(kind, &name).await {
                    Some(route) => {
                        let rename = (route.name != name).then_some(route.name);
                        self.forward(session, &msg, route.upstream, rename.as_deref())
                    }
                    None => {
                        let what = if kind == ListKind::Tools { "tool" } else { "prompt" };
                        match self.quarantine_reason(kind, &name) {
                            Some((reason, rules)) => {
                                let rec = self.record(
                                    session,
                                    "",
                                    method,
                                    &name,
                                    Decision::Quarantine,
                                    rules,
                                    &reason,
                                    None,
                                    None,
                                );
                                let bytes = jsonrpc::error_response(
                                    Some(&id),
                                    code::DENIED,
                                    &format!("{what} `{name}` is quarantined: {reason}"),
                                    None,
                                );
                                Reply::Message(self.commit(rec, bytes, Some(&id)).await)
                            }
                            None => error(&id, code::INVALID_PARAMS, &format!("unknown {what} `{name}`")),
                        }
                    }
                }
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let Some(uri) = msg.params_as::<UriParam>().and_then(|p| p.uri) else {
                    return error(&id, code::INVALID_PARAMS, "`params.uri` is missing");
                };
                match self.route_uri(&uri).await {
                    Some(up) => {
                        if let Ok(mut subs) = session.subscriptions.lock() {
                            match method {
                                "resources/subscribe" => {
                                    subs.insert(uri);
                                }
                                "resources/unsubscribe" => {
                                    subs.remove(&uri);
                                }
                                _ => {}
                            }
                        }
                        self.forward(session, &msg, up, None)
                    }
                    None => error(&id, code::RESOURCE_NOT_FOUND, &format!("resource `{uri}` not found")),
                }
            }
            "completion/complete" => self.complete(session, &msg, &id).await,
            "logging/setLevel" => {
                for up in &self.upstreams {
                    if up.info().is_some_and(|i| i.capabilities.get("logging").is_some()) {
                        if let Some(conn) = up.connection(Duration::ZERO).await {
                            let _ = conn.request("logging/setLevel", msg.params(), up.timeout()).await;
                        }
                    }
                }
                Reply::Message(jsonrpc::response(&id, &to_raw(&json!({}))))
            }
            // Methods Moat does not know pass through when there is one upstream to take them.
            _ if self.upstreams.len() == 1 => self.forward(session, &msg, 0, None),
            _ => error(&id, code::METHOD_NOT_FOUND, &format!("method `{method}` is not supported by this gateway")),
        }
    }

    async fn initialize(&self, session: &Arc<Session>, msg: &Message) -> Bytes {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InitParams {
            protocol_version: Option<String>,
            #[serde(default)]
            capabilities: Value,
            client_info: Option<ClientInfo>,
        }
        #[derive(Deserialize)]
        struct ClientInfo {
            name: Option<String>,
        }
        let Some(id) = msg.id() else { return Bytes::new() };
        let params: Option<InitParams> = msg.params_as();
        let requested = params.as_ref().and_then(|p| p.protocol_version.as_deref());
        let version = ProtocolVersion::negotiate(requested);
        session.set_version(version);
        let client_name = params.as_ref().and_then(|p| p.client_info.as_ref()).and_then(|c| c.name.clone());
        if let (Some(p), Ok(mut caps)) = (params, session.client_capabilities.write()) {
            *caps = p.capabilities;
        }
        // Give upstreams that are still starting a moment, so the capabilities are right.
        for up in &self.upstreams {
            let _ = up.connection(Duration::from_secs(5)).await;
        }
        let mut result = json!({
            "protocolVersion": version.as_str(),
            "capabilities": self.capabilities(),
            "serverInfo": self.server_info(),
        });
        if let (Some(instr), Some(obj)) = (self.instructions(), result.as_object_mut()) {
            obj.insert("instructions".into(), Value::String(instr));
        }
        // Who opened a session, from where and with which client: recorded before the session
        // is usable (with `[audit] required`, a session that cannot be recorded is not opened).
        // The client's name is its own claim, kept to spot unexpected clients, never trusted.
        let mut name = client_name.unwrap_or_default();
        name.retain(|c| !c.is_control());
        name.truncate(name.floor_char_boundary(128));
        let rec =
            self.record(session, "", "initialize", &name, Decision::Allow, Vec::new(), "session_opened", None, None);
        self.commit(rec, jsonrpc::response(id, &to_raw(&result)), Some(id)).await
    }

    /// The union of what the upstreams offer. List-changed notifications are always
    /// forwarded, so they are always offered.
    fn capabilities(&self) -> Value {
        let mut caps = serde_json::Map::new();
        let infos: Vec<_> = self.upstreams.iter().filter_map(|u| u.info()).collect();
        for info in &infos {
            let Some(obj) = info.capabilities.as_object() else { continue };
            for (k, v) in obj {
                match k.as_str() {
                    "tools" | "prompts" => {
                        caps.insert(k.clone(), json!({ "listChanged": true }));
                    }
                    "resources" => {
                        let sub = v.get("subscribe").and_then(Value::as_bool).unwrap_or(false)
                            || caps
                                .get("resources")
                                .and_then(|r| r.get("subscribe"))
                                .and_then(Value::as_bool)
                                .unwrap_or(false);
                        caps.insert(k.clone(), json!({ "listChanged": true, "subscribe": sub }));
                    }
                    "logging" | "completions" => {
                        caps.insert(k.clone(), json!({}));
                    }
                    // Anything else (experimental, extensions) is offered as the upstream offers it.
                    _ if self.upstreams.len() == 1 => {
                        caps.insert(k.clone(), v.clone());
                    }
                    _ => {}
                }
            }
        }
        if infos.is_empty() {
            // No upstream is up yet: offer the lists; they fill in when upstreams arrive.
            caps.insert("tools".into(), json!({ "listChanged": true }));
            caps.insert("prompts".into(), json!({ "listChanged": true }));
            caps.insert("resources".into(), json!({ "listChanged": true, "subscribe": false }));
        }
        Value::Object(caps)
    }

    fn server_info(&self) -> Value {
        if let [only] = self.upstreams.as_slice() {
            if let Some(info) = only.info() {
                if info.server_info.is_object() {
                    return info.server_info;
                }
            }
        }
        json!({ "name": "moat", "title": "Moat MCP gateway", "version": env!("CARGO_PKG_VERSION") })
    }

    fn instructions(&self) -> Option<String> {
        let parts: Vec<(String, String)> = self
            .upstreams
            .iter()
            .filter(|u| self.guards.pins.instructions_allowed(&u.name))
            .filter_map(|u| u.info().and_then(|i| i.instructions).map(|t| (u.name.clone(), t)))
            .collect();
        match parts.as_slice() {
            [] => None,
            [(_, only)] if self.upstreams.len() == 1 => Some(only.clone()),
            _ => Some(parts.iter().map(|(n, t)| format!("## {n}\n{t}")).collect::<Vec<_>>().join("\n\n")),
        }
    }

    /// Answers a list request. With one upstream the client's cursor passes through, so its
    /// pagination is the upstream's; with several, every page of every upstream is merged.
    async fn list(&self, session: &Session, id: &Id, msg: &Message, kind: ListKind) -> Bytes {
        if self.upstreams.len() == 1 {
            #[derive(Deserialize)]
            struct Cursor {
                cursor: Option<String>,
            }
            let cursor = msg.params_as::<Cursor>().and_then(|c| c.cursor);
            return match self.fetch_page(0, kind, cursor.as_deref()).await {
                Ok((mut items, next)) => {
                    self.learn(kind, 0, &items);
                    self.authorize_list(session, kind, 0, &mut items);
                    let mut result = json!({ kind.key(): items });
                    if let (Some(n), Some(obj)) = (next, result.as_object_mut()) {
                        obj.insert("nextCursor".into(), Value::String(n));
                    }
                    jsonrpc::response(id, &to_raw(&result))
                }
                Err(e) => jsonrpc::error_response(Some(id), code::UPSTREAM_UNAVAILABLE, &e, None),
            };
        }
        let fetches = (0..self.upstreams.len()).map(|i| self.fetch_all(i, kind));
        let results = futures_util::future::join_all(fetches).await;
        let mut merged = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, res) in results.into_iter().enumerate() {
            match res {
                Ok(mut items) => {
                    self.learn(kind, i, &items);
                    self.authorize_list(session, kind, i, &mut items);
                    for mut item in items {
                        if matches!(kind, ListKind::Tools | ListKind::Prompts) {
                            let Some(name) = item.get("name").and_then(Value::as_str).map(str::to_string) else {
                                continue;
                            };
                            let public = self.public_name(i, &name);
                            if let Some(obj) = item.as_object_mut() {
                                obj.insert("name".into(), Value::String(public.clone()));
                            }
                            *seen.entry(public).or_default() += 1;
                        }
                        merged.push(item);
                    }
                }
                Err(e) => {
                    tracing::warn!(upstream = %self.upstreams.get(i).map_or("", |u| u.name.as_str()), error = %e, "list failed; answering without this upstream")
                }
            }
        }
        // A name two upstreams produce is never resolved silently: neither is offered.
        let collisions: Vec<String> = seen.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k).collect();
        if !collisions.is_empty() {
            tracing::error!(names = ?collisions, "name collision between upstreams; these names are withheld");
            merged.retain(|item| {
                item.get("name").and_then(Value::as_str).is_none_or(|n| !collisions.iter().any(|c| c == n))
            });
        }
        jsonrpc::response(id, &to_raw(&json!({ kind.key(): merged })))
    }

    fn public_name(&self, upstream: usize, name: &str) -> String {
        let up = self.upstreams.get(upstream).map_or("", |u| u.name.as_str());
        self.namer.public(up, name)
    }

    /// Records the routes a list response reveals.
    fn learn(&self, kind: ListKind, upstream: usize, items: &[Value]) {
        let Ok(mut cat) = self.catalog.write() else { return };
        for item in items {
            match kind {
                ListKind::Tools | ListKind::Prompts => {
                    let Some(name) = item.get("name").and_then(Value::as_str) else { continue };
                    let schema = (kind == ListKind::Tools)
                        .then(|| item.get("inputSchema").map(crate::guard::args::ArgumentGuard::compile))
                        .flatten();
                    let route = Route {
                        upstream,
                        name: name.to_string(),
                        schema,
                        annotations: item.get("annotations").cloned(),
                    };
                    let public = self.public_name(upstream, name);
                    let map = if kind == ListKind::Tools { &mut cat.tools } else { &mut cat.prompts };
                    map.insert(public, route);
                }
                ListKind::Resources => {
                    if let Some(uri) = item.get("uri").and_then(Value::as_str) {
                        cat.resources.insert(uri.to_string(), upstream);
                    }
                }
                ListKind::Templates => {
                    if let Some(t) = item.get("uriTemplate").and_then(Value::as_str) {
                        let prefix = t.split('{').next().unwrap_or_default().to_string();
                        if !cat.templates.iter().any(|(p, u)| *p == prefix && *u == upstream) {
                            cat.templates.push((prefix, upstream));
                        }
                    }
                }
            }
        }
    }

    fn forget_upstream(&self, upstream: usize, kind: ListKind) {
        let Ok(mut cat) = self.catalog.write() else { return };
        match kind {
            ListKind::Tools => cat.tools.retain(|_, r| r.upstream != upstream),
            ListKind::Prompts => cat.prompts.retain(|_, r| r.upstream != upstream),
            ListKind::Resources => cat.resources.retain(|_, u| *u != upstream),
            ListKind::Templates => cat.templates.retain(|(_, u)| *u != upstream),
        }
    }

    async fn fetch_page(
        &self,
        upstream: usize,
        kind: ListKind,
        cursor: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), String> {
        let up = self.upstreams.get(upstream).ok_or("no such upstream")?;
        if up.info().is_some_and(|i| i.capabilities.get(kind.capability()).is_none()) {
            return Ok((Vec::new(), None));
        }
        let conn = up.connection(WAIT_READY).await.ok_or_else(|| format!("upstream `{}` is not available", up.name))?;
        let params = cursor.map(|c| to_raw(&json!({ "cursor": c })));
        let resp = conn.request(kind.method(), params.as_deref(), up.timeout()).await.map_err(|e| e.to_string())?;
        let Some(result) = resp.result() else {
            return Err(format!("upstream `{}` refused {}", up.name, kind.method()));
        };
        let mut v: Value = serde_json::from_str(result.get()).map_err(|e| e.to_string())?;
        let items = match v.get_mut(kind.key()).map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        let next = v.get("nextCursor").and_then(Value::as_str).map(str::to_string);
        // Every definition is pinned and checked here, the one place lists come in.
        let pin_kind = match kind {
            ListKind::Tools => Some(ListKindPin::Tool),
            ListKind::Prompts => Some(ListKindPin::Prompt),
            ListKind::Templates => Some(ListKindPin::Template),
            ListKind::Resources => None,
        };
        let items = match pin_kind {
            Some(pk) => {
                let filtered =
                    self.guards.pins.filter(&up.config.identity(), &up.name, up.config.pinning, pk, items).await;
                for (name, q) in filtered.newly_quarantined {
                    self.record_quarantine(&up.name, kind.method(), &name, q).await;
                }
                filtered.served
            }
            None => items,
        };
        Ok((items, next))
    }

    async fn fetch_all(&self, upstream: usize, kind: ListKind) -> Result<Vec<Value>, String> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let (items, next) = self.fetch_page(upstream, kind, cursor.as_deref()).await?;
            all.extend(items);
            match next {
                Some(n) if Some(&n) != cursor.as_ref() => cursor = Some(n),
                _ => return Ok(all),
            }
        }
        Ok(all)
    }

    /// Refetches an upstream's lists into the routing tables.
    async fn refresh(&self, upstream: usize, kinds: &[ListKind]) {
        for &kind in kinds {
            if let Ok(items) = self.fetch_all(upstream, kind).await {
                self.forget_upstream(upstream, kind);
                self.learn(kind, upstream, &items);
            }
        }
    }

    async fn route_named(&self, kind: ListKind, name: &str) -> Option<Route> {
        let lookup = |cat: &Catalog| {
            let map = if kind == ListKind::Tools { &cat.tools } else { &cat.prompts };
            map.get(name).cloned()
        };
        if let Some(r) = self.catalog.read().ok().and_then(|c| lookup(&c)) {
            return Some(r);
        }
        // Not listed yet (a client may call without listing): learn the lists once.
        for i in 0..self.upstreams.len() {
            self.refresh(i, &[kind]).await;
        }
        self.catalog.read().ok().and_then(|c| lookup(&c))
    }

    async fn route_uri(&self, uri: &str) -> Option<usize> {
        let lookup = |cat: &Catalog| {
            cat.resources.get(uri).copied().or_else(|| {
                cat.templates
                    .iter()
                    .filter(|(p, _)| !p.is_empty() && uri.starts_with(p.as_str()))
                    .max_by_key(|(p, _)| p.len())
                    .map(|(_, u)| *u)
            })
        };
        if self.upstreams.len() == 1 {
            return Some(0);
        }
        if let Some(u) = self.catalog.read().ok().and_then(|c| lookup(&c)) {
            return Some(u);
        }
        for i in 0..self.upstreams.len() {
            self.refresh(i, &[ListKind::Resources, ListKind::Templates]).await;
        }
        self.catalog.read().ok().and_then(|c| lookup(&c))
    }

    async fn complete(self: &Arc<Self>, session: &Arc<Session>, msg: &Message, id: &Id) -> Reply {
        #[derive(Deserialize)]
        struct Params {
            #[serde(rename = "ref")]
            reference: Option<Value>,
        }
        if self.upstreams.len() == 1 {
            return self.forward(session, msg, 0, None);
        }
        let reference = msg.params_as::<Params>().and_then(|p| p.reference).unwrap_or(Value::Null);
        match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = reference.get("name").and_then(Value::as_str).unwrap_or_default();
                match self.route_named(ListKind::Prompts, name).await {
                    Some(route) => {
                        let mut r = reference.clone();
                        if let Some(o) = r.as_object_mut() {
                            o.insert("name".into(), Value::String(route.name));
                        }
                        let Some(params) = msg.params().and_then(|p| raw::with_member(p, "ref", to_raw(&r))) else {
                            return error(id, code::INVALID_PARAMS, "`params` must be an object");
                        };
                        self.forward_with_params(session, msg, route.upstream, Some(params))
                    }
                    None => error(id, code::INVALID_PARAMS, &format!("unknown prompt `{name}`")),
                }
            }
            Some("ref/resource") => {
                let uri = reference.get("uri").and_then(Value::as_str).unwrap_or_default();
                match self.route_uri(uri).await {
                    Some(up) => self.forward(session, msg, up, None),
                    None => error(id, code::RESOURCE_NOT_FOUND, &format!("resource `{uri}` not found")),
                }
            }
            _ => error(id, code::INVALID_PARAMS, "`params.ref` must be a prompt or resource reference"),
        }
    }

    /// Forwards a client request to an upstream, renaming `params.name` when namespaced.
    fn forward(
        self: &Arc<Self>,
        session: &Arc<Session>,
        msg: &Message,
        upstream: usize,
        rename: Option<&str>,
    ) -> Reply {
        let params = match (rename, msg.params()) {
            (Some(name), Some(p)) => raw::with_member(p, "name", to_raw(&Value::String(name.to_string()))),
            _ => None,
        };
        self.forward_with_params(session, msg, upstream, params)
    }

    fn forward_with_params(
        self: &Arc<Self>,
        session: &Arc<Session>,
        msg: &Message,
        upstream: usize,
        params: Option<Box<RawValue>>,
    ) -> Reply {
        let Some(client_id) = msg.id().cloned() else { return Reply::Accepted };
        let Some(up) = self.upstreams.get(upstream).cloned() else {
            return error(&client_id, code::INTERNAL_ERROR, "no such upstream");
        };
        let method = msg.method().unwrap_or_default().to_string();
        let (tx, rx) = mpsc::channel(CALL_STREAM_DEPTH);
        let this = self.clone();
        let session = session.clone();
        let msg = msg.clone();
        let request = crate::request::current();
        // The task carries the request's span (it ends when the task does).
        tokio::spawn(opentelemetry::context::FutureExt::with_current_context(crate::request::scope(
            request,
            async move {
                let (answer, record) =
                    this.guarded_call(&session, &msg, &up, upstream, &method, params, &client_id, tx.clone()).await;
                // Every decision is recorded (and audited) before the response leaves.
                let final_bytes = this.commit(record, answer, Some(&client_id)).await;
                let _ = tx.send(StreamItem::Final(final_bytes)).await;
            },
        )));
        Reply::Stream(rx)
    }

    #[allow(clippy::too_many_arguments)]
    async fn call_upstream(
        &self,
        session: &Arc<Session>,
        msg: &Message,
        conn: &Arc<Connection>,
        upstream: usize,
        method: &str,
        mut params: Option<Box<RawValue>>,
        client_id: &Id,
        sink: mpsc::Sender<StreamItem>,
        caller_authorization: Option<reqwest::header::HeaderValue>,
    ) -> Result<Message, moat_mcp::ConnectionError> {
        let up_id = conn.next_id();
        // A progress token is the client's; two clients may pick the same one, so the
        // upstream sees a token of Moat's.
        let mut token = None;
        let source = params.as_deref().or(msg.params());
        if let Some(p) = source.filter(|p| p.get().contains("progressToken")) {
            if let Some((new_params, our_token, original)) = self.remap_progress(p) {
                token = Some(our_token.clone());
                if let Ok(mut map) = self.progress.lock() {
                    map.insert(
                        our_token,
                        ProgressRoute { session: session.clone(), original, upstream, upstream_id: up_id.clone() },
                    );
                }
                params = Some(new_params);
            }
        }
        let bytes = match &params {
            Some(p) => msg.with_id_and_params(Some(&up_id), p),
            None => msg.with_id(&up_id),
        };
        if let Some(slot) = self.inflight.get(upstream) {
            if let Ok(mut m) = slot.lock() {
                m.insert(up_id.clone(), CallCtx { session: session.clone(), client_id: client_id.clone(), sink });
            }
        }
        let timeout = self.upstreams.get(upstream).map_or(Duration::from_secs(120), |u| u.timeout());
        let call_started = Instant::now();
        let mut trace_headers = reqwest::header::HeaderMap::new();
        let up_name = self.upstreams.get(upstream).map_or("", |u| u.name.as_str());
        let span = crate::telemetry::upstream_call(
            up_name,
            method,
            params.as_deref().or(msg.params()),
            &up_id,
            &mut trace_headers,
        );
        if let Some(v) = caller_authorization {
            // Sent on this message's POST in place of Moat's own token.
            trace_headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let result = conn.call_ordered(up_id.clone(), method, bytes, timeout, trace_headers).await;
        crate::telemetry::upstream_result(span.as_ref(), &result);
        if let Some(u) = self.upstreams.get(upstream) {
            self.metrics.observe_upstream(&u.name, method, call_started.elapsed(), result.is_ok());
        }
        let result = match result {
            Ok((msg, seen)) => {
                // Let the event loop deliver what the upstream sent before this answer.
                if let Some(p) = self.processed.get(upstream) {
                    let mut rx = p.subscribe();
                    let _ = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|n| *n >= seen)).await;
                }
                Ok(msg)
            }
            Err(e) => Err(e),
        };
        if let Some(slot) = self.inflight.get(upstream) {
            if let Ok(mut m) = slot.lock() {
                if let Some(ctx) = m.remove(&up_id) {
                    if let Ok(mut recent) = self.recent.lock() {
                        if recent.len() >= RECENT_CALLS {
                            recent.pop_front();
                        }
                        recent.push_back((upstream, up_id.clone(), ctx.session));
                    }
                }
            }
        }
        if let (Some(t), Ok(mut map)) = (token, self.progress.lock()) {
            map.remove(&t);
        }
        result
    }

    /// Records that a definition was withheld from lists (a rug pull, a poisoned or unapproved
    /// tool): the decision is Moat's own, made when the list came in, whoever asked for it.
    async fn record_quarantine(&self, upstream: &str, method: &str, name: &str, q: Quarantine) {
        let record = DecisionRecord {
            upstream: upstream.to_string(),
            target: name.to_string(),
            rules: q.rules,
            reason: q.reason,
            ..DecisionRecord::new(method, Decision::Quarantine)
        };
        let _ = self.commit(record, Bytes::new(), None).await;
    }

    /// Records that a client ended its session (HTTP DELETE), so that the log shows a session's
    /// whole life. (Sessions that expire are not recorded one by one.)
    pub async fn record_session_closed(&self, session: &Session) {
        let rec = self.record(session, "", "", "", Decision::Allow, Vec::new(), "session_closed", None, None);
        let _ = self.commit(rec, Bytes::new(), None).await;
    }

    /// Records a refusal made at the front, before any session or upstream is involved
    /// (unauthenticated request, session of another principal, malformed message).
    pub async fn record_refusal(&self, principal: &str, method: &str, reason: &str, rule: &str) {
        let record = DecisionRecord {
            principal: principal.to_string(),
            rules: vec![rule.to_string()],
            reason: reason.to_string(),
            ..DecisionRecord::new(method, Decision::Deny)
        };
        let _ = self.commit(record, Bytes::new(), None).await;
    }

    /// Emits a decision record and appends it to the audit log. When the audit log is
    /// required and the record cannot be written, the client gets a refusal instead of
    /// `bytes`: nothing leaves unrecorded.
    pub(crate) async fn commit(&self, record: DecisionRecord, bytes: Bytes, client_id: Option<&Id>) -> Bytes {
        record.emit();
        self.metrics.observe_decision(&record);
        crate::telemetry::record_decision(&record, &bytes);
        let Some(log) = &self.audit else { return bytes };
        let mut event = record.into_audit_event(&self.guards.detector, self.audit_arguments);
        event.trace_id = crate::telemetry::current_trace_id();
        event.source = crate::request::current().source.map(|a| a.to_string());
        match log.append(event).await {
            Ok(_) => bytes,
            Err(e) if log.is_required() => {
                tracing::error!(error = %e, "audit record not written; refusing the call");
                jsonrpc::error_response(
                    client_id,
                    code::INTERNAL_ERROR,
                    "the call was refused because its audit record could not be written",
                    None,
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit record not written");
                bytes
            }
        }
    }

    /// One forwarded request through the guard chain: request guards, the upstream call and
    /// response guards. Returns the answer and its decision record, which the caller commits.
    #[allow(clippy::too_many_arguments)]
    async fn guarded_call(
        &self,
        session: &Arc<Session>,
        msg: &Message,
        up: &Arc<Upstream>,
        upstream: usize,
        method: &str,
        params: Option<Box<RawValue>>,
        client_id: &Id,
        sink: mpsc::Sender<StreamItem>,
    ) -> (Bytes, DecisionRecord) {
        let started = Instant::now();
        let target = match method {
            "tools/call" | "prompts/get" => msg.params_as::<NameParam>().and_then(|p| p.name).unwrap_or_default(),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                msg.params_as::<UriParam>().and_then(|p| p.uri).unwrap_or_default()
            }
            _ => String::new(),
        };
        let mut arguments = None;
        let deny = |d: Denial, arguments: Option<Value>| {
            let mut rec = self.record(
                session,
                &up.name,
                method,
                &target,
                Decision::Deny,
                d.rules.clone(),
                &d.message,
                Some(started.elapsed()),
                None,
            );
            rec.arguments = arguments;
            (jsonrpc::error_response(Some(client_id), d.code, &d.message, d.data.as_ref()), rec)
        };
        let mut flagged = Vec::new();
        if let Err(d) = self.authorize_call(session, method, &up.name, &target, msg) {
            return deny(d, None);
        }
        if method == "tools/call" {
            if let Err(d) = self.guards.rate.check(&session.principal, &target, &up.name).await {
                return deny(d, None);
            }
            #[derive(Deserialize)]
            struct Args {
                arguments: Option<Value>,
            }
            // Arguments a guard cannot read are refused, never checked as `{}` while the
            // original bytes go upstream.
            let Some(parsed) = msg.params_as::<Args>() else {
                return deny(
                    Denial::new(code::INVALID_PARAMS, "the call's arguments cannot be read")
                        .with_rules(vec!["MOAT-ARG-001".into()]),
                    None,
                );
            };
            let args = parsed.arguments.unwrap_or_else(|| json!({}));
            let schema = self.catalog.read().ok().and_then(|c| c.tools.get(&target).and_then(|r| r.schema.clone()));
            let checked = self.guards.args.check(&target, schema.as_ref(), &args).await;
            arguments = Some(args);
            match checked {
                Ok(f) => flagged = f,
                Err(d) => return deny(d, arguments),
            }
        }
        let Some(permits) = self.permits.get(upstream).cloned() else {
            return deny(Denial::new(code::INTERNAL_ERROR, "no such upstream"), arguments);
        };
        let Ok(_permit) = permits.acquire_owned().await else {
            return deny(Denial::new(code::INTERNAL_ERROR, "upstream is shutting down"), arguments);
        };
        let Some(conn) = up.connection(WAIT_READY).await else {
            let d = Denial::new(
                code::UPSTREAM_UNAVAILABLE,
                format!("upstream `{}` is not available; it is starting or restarting", up.name),
            );
            return deny(d, arguments);
        };
        // An upstream that acts for the caller gets a token exchanged for theirs (RFC 8693).
        let caller_authorization = match up.caller_authorization().await {
            Ok(a) => a,
            Err(m) => return deny(Denial::new(code::UPSTREAM_UNAVAILABLE, m), arguments),
        };
        let resp = match self
            .call_upstream(session, msg, &conn, upstream, method, params, client_id, sink, caller_authorization)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let c = match e {
                    moat_mcp::ConnectionError::Timeout(..) => code::UPSTREAM_TIMEOUT,
                    _ => code::UPSTREAM_UNAVAILABLE,
                };
                tracing::warn!(upstream = %up.name, method, error = %e, "upstream call failed");
                return deny(Denial::new(c, e.to_string()), arguments);
            }
        };
        let guarded = matches!(method, "tools/call" | "resources/read" | "prompts/get");
        let (Some(result), true) = (resp.result(), guarded) else {
            let mut rec = self.record(
                session,
                &up.name,
                method,
                &target,
                Decision::Allow,
                flagged,
                "",
                Some(started.elapsed()),
                Some(resp.raw().len()),
            );
            rec.arguments = arguments;
            return (resp.with_id(client_id), rec);
        };
        let (bytes, mut rec) = match self.guards.output.check(method, &target, result, &session.spotlight_boundary) {
            ResultDecision::Forward { flagged: f } => {
                flagged.extend(f);
                let rec = self.record(
                    session,
                    &up.name,
                    method,
                    &target,
                    Decision::Allow,
                    flagged,
                    "",
                    Some(started.elapsed()),
                    Some(result.get().len()),
                );
                (resp.with_id(client_id), rec)
            }
            ResultDecision::Rewrite { result, mut rules } => {
                rules.extend(flagged);
                let raw = to_raw(&result);
                let rec = self.record(
                    session,
                    &up.name,
                    method,
                    &target,
                    Decision::Modify,
                    rules,
                    "result rewritten by output guards",
                    Some(started.elapsed()),
                    Some(raw.get().len()),
                );
                (resp.with_id_and_result(client_id, &raw), rec)
            }
            ResultDecision::Block(d) => return deny(d, arguments),
        };
        rec.arguments = arguments;
        (bytes, rec)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        session: &Session,
        upstream: &str,
        method: &str,
        target: &str,
        decision: Decision,
        rules: Vec<String>,
        reason: &str,
        latency: Option<Duration>,
        result_bytes: Option<usize>,
    ) -> DecisionRecord {
        DecisionRecord {
            principal: session.principal.clone(),
            client_id: session.identity.client_id.clone(),
            session: crate::session::short(&session.id).to_string(),
            upstream: upstream.to_string(),
            method: method.to_string(),
            target: target.to_string(),
            decision,
            rules,
            reason: reason.to_string(),
            latency,
            result_bytes,
            arguments: None,
        }
    }

    /// Cedar authorization of one call, by the upstream's own name for the tool or prompt.
    fn authorize_call(
        &self,
        session: &Session,
        method: &str,
        upstream: &str,
        target: &str,
        msg: &Message,
    ) -> Result<(), Denial> {
        use moat_auth::policy::{Action, Resource, ToolAnnotations};
        #[derive(Deserialize)]
        struct Args {
            arguments: Option<Value>,
        }
        let args = msg.params_as::<Args>().and_then(|a| a.arguments);
        let route = |kind: ListKind| {
            self.catalog.read().ok().and_then(|c| {
                if kind == ListKind::Tools {
                    c.tools.get(target).cloned()
                } else {
                    c.prompts.get(target).cloned()
                }
            })
        };
        match method {
            "tools/call" => {
                let r = route(ListKind::Tools);
                let name = r.as_ref().map_or(target, |r| r.name.as_str());
                let annotations = ToolAnnotations::from_json(r.as_ref().and_then(|r| r.annotations.as_ref()));
                self.guards.authorize(
                    session,
                    Action::CallTool,
                    &Resource::Tool { upstream, name, annotations },
                    args.as_ref(),
                )
            }
            "prompts/get" => {
                let r = route(ListKind::Prompts);
                let name = r.as_ref().map_or(target, |r| r.name.as_str());
                self.guards.authorize(session, Action::GetPrompt, &Resource::Prompt { upstream, name }, args.as_ref())
            }
            "resources/read" | "resources/subscribe" => self.guards.authorize(
                session,
                Action::ReadResource,
                &Resource::Resource { upstream, uri: target },
                None,
            ),
            _ => Ok(()),
        }
    }

    /// Removes from a list what the session's principal may not use.
    fn authorize_list(&self, session: &Session, kind: ListKind, upstream: usize, items: &mut Vec<Value>) {
        use moat_auth::policy::{Action, Resource, ToolAnnotations};
        if !self.guards.authz.has_policies() {
            return;
        }
        let up = self.upstreams.get(upstream).map_or("", |u| u.name.as_str());
        items.retain(|item| {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            let uri = item.get("uri").or_else(|| item.get("uriTemplate")).and_then(Value::as_str).unwrap_or_default();
            let (action, resource) = match kind {
                ListKind::Tools => (
                    Action::ListTools,
                    Resource::Tool {
                        upstream: up,
                        name,
                        annotations: ToolAnnotations::from_json(item.get("annotations")),
                    },
                ),
                ListKind::Prompts => (Action::ListPrompts, Resource::Prompt { upstream: up, name }),
                ListKind::Resources | ListKind::Templates => {
                    (Action::ListResources, Resource::Resource { upstream: up, uri })
                }
            };
            self.guards.authorize(session, action, &resource, None).is_ok()
        });
    }

    fn quarantine_reason(&self, kind: ListKind, public: &str) -> Option<(String, Vec<String>)> {
        let pk = if kind == ListKind::Tools { ListKindPin::Tool } else { ListKindPin::Prompt };
        self.upstreams.iter().find_map(|u| {
            let name = if self.namer.is_namespaced() {
                public.strip_prefix(&format!("{}{}", u.name, self.namer.separator()))?
            } else {
                public
            };
            self.guards.pins.quarantine_reason(&u.name, pk, name).map(|q| (q.reason, q.rules))
        })
    }

    fn remap_progress(&self, params: &RawValue) -> Option<(Box<RawValue>, String, Box<RawValue>)> {
        let entries = raw::object_entries(params)?;
        let meta = entries.iter().find(|(k, _)| k == "_meta")?;
        let mut meta: serde_json::Map<String, Value> = serde_json::from_str(meta.1.get()).ok()?;
        let original = to_raw(meta.get("progressToken")?);
        let ours = format!("moat-p{}", self.counter.fetch_add(1, Ordering::Relaxed));
        meta.insert("progressToken".into(), Value::String(ours.clone()));
        let new_params = raw::with_member(params, "_meta", to_raw(&Value::Object(meta)))?;
        Some((new_params, ours, original))
    }

    async fn handle_client_notification(&self, session: &Arc<Session>, msg: &Message) {
        match msg.method().unwrap_or_default() {
            "notifications/initialized" => session.mark_initialized(),
            "notifications/cancelled" => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Cancel {
                    request_id: Option<Value>,
                    reason: Option<String>,
                }
                let Some(c) = msg.params_as::<Cancel>() else { return };
                let Some(rid) = c.request_id.map(|v| v.to_string()) else { return };
                for (i, slot) in self.inflight.iter().enumerate() {
                    let hit = slot.lock().ok().and_then(|m| {
                        m.iter()
                            .find(|(_, ctx)| Arc::ptr_eq(&ctx.session, session) && ctx.client_id.as_json() == rid)
                            .map(|(up_id, _)| up_id.clone())
                    });
                    if let (Some(up_id), Some(up)) = (hit, self.upstreams.get(i)) {
                        if let Some(conn) = up.connection(Duration::ZERO).await {
                            let upstream_rid: Value = serde_json::from_str(up_id.as_json()).unwrap_or(Value::Null);
                            let mut p = json!({ "requestId": upstream_rid });
                            if let (Some(r), Some(o)) = (c.reason, p.as_object_mut()) {
                                o.insert("reason".into(), Value::String(r));
                            }
                            let _ = conn.notify("notifications/cancelled", Some(&to_raw(&p))).await;
                        }
                        return;
                    }
                }
            }
            "notifications/roots/list_changed" => {
                for up in &self.upstreams {
                    if let Some(conn) = up.connection(Duration::ZERO).await {
                        let _ = conn.send_raw(msg.raw().clone(), msg.method()).await;
                    }
                }
            }
            other => {
                if self.upstreams.len() == 1 {
                    if let Some(conn) = self.upstreams.first().and_then(|u| u.connection_now()) {
                        let _ = conn.send_raw(msg.raw().clone(), msg.method()).await;
                    }
                } else {
                    tracing::debug!(method = other, "client notification not forwarded: no single upstream owns it");
                }
            }
        }
    }

    /// A client answering a request an upstream made of it.
    async fn handle_client_response(&self, session: &Arc<Session>, msg: &Message) {
        let Some(id) = msg.id() else { return };
        let target = session.server_requests.lock().ok().and_then(|mut m| m.remove(id));
        let Some((upstream, original)) = target else {
            tracing::debug!(id = %id, "response to an unknown server request ignored");
            return;
        };
        if let Some(conn) = self.upstreams.get(upstream).and_then(|u| u.connection_now()) {
            let _ = conn.send_raw(msg.with_id(&original), None).await;
        }
    }

    async fn run_events(self: Arc<Self>, mut events: mpsc::Receiver<UpstreamEvent>) {
        let mut first_ready = vec![true; self.upstreams.len()];
        while let Some(ev) = events.recv().await {
            match ev {
                UpstreamEvent::Ready { upstream } => {
                    if let Some(p) = self.processed.get(upstream) {
                        p.send_replace(0);
                    }
                    if let Some(up) = self.upstreams.get(upstream) {
                        if let Some(text) = up.info().and_then(|i| i.instructions) {
                            self.guards
                                .pins
                                .check_instructions(&up.config.identity(), &up.name, up.config.pinning, &text)
                                .await;
                        }
                    }
                    // Lists are learned when clients ask (so the upstream sees the same
                    // sequence of requests it would without Moat). A restarted upstream may
                    // offer other tools: relearn its lists and tell every client.
                    let restarted = !std::mem::replace(first_ready.get_mut(upstream).unwrap_or(&mut false), false);
                    if restarted {
                        let this = self.clone();
                        tokio::spawn(async move {
                            this.refresh(
                                upstream,
                                &[ListKind::Tools, ListKind::Prompts, ListKind::Resources, ListKind::Templates],
                            )
                            .await;
                            for m in [
                                "notifications/tools/list_changed",
                                "notifications/prompts/list_changed",
                                "notifications/resources/list_changed",
                            ] {
                                this.broadcast(jsonrpc::notification(m, None));
                            }
                        });
                    }
                }
                UpstreamEvent::Message { upstream, inbound } => {
                    self.on_upstream_message(upstream, inbound).await;
                    if let Some(p) = self.processed.get(upstream) {
                        p.send_modify(|n| *n += 1);
                    }
                }
            }
        }
    }

    async fn on_upstream_message(self: &Arc<Self>, upstream: usize, inbound: Inbound) {
        let Inbound { msg, related } = inbound;
        let Some(up) = self.upstreams.get(upstream).cloned() else { return };
        match msg.kind() {
            MessageKind::Request => self.on_server_request(&up, msg, related).await,
            MessageKind::Notification => self.on_server_notification(&up, &msg, related).await,
            MessageKind::Response | MessageKind::Error => {
                tracing::debug!(upstream = %up.name, id = ?msg.id(), "late or unknown response from upstream ignored");
            }
        }
    }

    /// The call a server message belongs to: the request whose stream carried it, or, over
    /// stdio where nothing says, the most recent call to that upstream.
    fn call_for(&self, upstream: usize, related: Option<&Id>) -> Option<(Arc<Session>, mpsc::Sender<StreamItem>)> {
        let slot = self.inflight.get(upstream)?.lock().ok()?;
        let ctx = match related {
            Some(id) => slot.get(id),
            // Over stdio nothing ties a message to a call. Attribute it only when a single
            // call is in flight: guessing between sessions could leak one client's data to
            // another (MCP10).
            None if slot.len() == 1 => slot.values().next(),
            None => None,
        }?;
        Some((ctx.session.clone(), ctx.sink.clone()))
    }

    /// The session of a call that already ended, for its late messages (HTTP streams name
    /// the request even after its answer).
    fn recent_session(&self, upstream: usize, related: Option<&Id>) -> Option<Arc<Session>> {
        let id = related?;
        self.recent.lock().ok()?.iter().rev().find(|(u, i, _)| *u == upstream && i == id).map(|(_, _, s)| s.clone())
    }

    async fn on_server_request(&self, up: &Arc<Upstream>, msg: Message, related: Option<Id>) {
        let Some(conn) = up.connection_now() else { return };
        let Some(up_req_id) = msg.id().cloned() else { return };
        let method = msg.method().unwrap_or_default().to_string();
        if method == "ping" {
            let _ = conn.send_raw(jsonrpc::response(&up_req_id, &to_raw(&json!({}))), None).await;
            return;
        }
        let Some((session, sink)) = self.call_for(up.index, related.as_ref()) else {
            let reply = if method == "roots/list" {
                // No client is in a call: Moat itself has no roots to offer.
                jsonrpc::response(&up_req_id, &to_raw(&json!({ "roots": [] })))
            } else {
                jsonrpc::error_response(
                    Some(&up_req_id),
                    code::INTERNAL_ERROR,
                    &format!("no client session can answer `{method}` now"),
                    None,
                )
            };
            let _ = conn.send_raw(reply, None).await;
            return;
        };
        let needed = match method.as_str() {
            "sampling/createMessage" => Some("sampling"),
            "elicitation/create" => Some("elicitation"),
            "roots/list" => Some("roots"),
            _ => None,
        };
        if let Some(cap) = needed {
            if !session.has_capability(cap) {
                let reply = jsonrpc::error_response(
                    Some(&up_req_id),
                    code::METHOD_NOT_FOUND,
                    &format!("the client does not support `{cap}`"),
                    None,
                );
                let _ = conn.send_raw(reply, None).await;
                return;
            }
        }
        let client_id = Id::string(&format!("moat-{}", self.counter.fetch_add(1, Ordering::Relaxed)));
        if let Ok(mut m) = session.server_requests.lock() {
            m.insert(client_id.clone(), (up.index, up_req_id));
        }
        deliver(&session, &sink, msg.with_id(&client_id));
    }

    async fn on_server_notification(&self, up: &Arc<Upstream>, msg: &Message, related: Option<Id>) {
        let method = msg.method().unwrap_or_default();
        match method {
            "notifications/progress" => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct P {
                    progress_token: Option<Value>,
                }
                let token =
                    msg.params_as::<P>().and_then(|p| p.progress_token).and_then(|t| t.as_str().map(str::to_string));
                let route = token.as_ref().and_then(|t| {
                    self.progress.lock().ok().and_then(|m| {
                        m.get(t).map(|r| (r.session.clone(), r.original.clone(), r.upstream, r.upstream_id.clone()))
                    })
                });
                let Some((session, original, upstream, upstream_id)) = route else {
                    self.to_call_or_drop(up.index, related.as_ref(), msg.raw().clone());
                    return;
                };
                let Some(params) = msg.params().and_then(|p| raw::with_member(p, "progressToken", original)) else {
                    return;
                };
                let bytes = msg.with_id_and_params(None, &params);
                match self.call_for(upstream, Some(&upstream_id)) {
                    Some((_, sink)) => deliver(&session, &sink, bytes),
                    None => session.push(bytes),
                }
            }
            "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed" => {
                let kinds: &[ListKind] = match method {
                    "notifications/tools/list_changed" => &[ListKind::Tools],
                    "notifications/prompts/list_changed" => &[ListKind::Prompts],
                    _ => &[ListKind::Resources, ListKind::Templates],
                };
                self.refresh(up.index, kinds).await;
                self.broadcast(msg.raw().clone());
            }
            "notifications/resources/updated" => {
                let uri = msg.params_as::<UriParam>().and_then(|p| p.uri).unwrap_or_default();
                for s in self.sessions.all() {
                    if s.subscriptions.lock().map(|subs| subs.contains(&uri)).unwrap_or(false) {
                        s.push(msg.raw().clone());
                    }
                }
            }
            "notifications/cancelled" => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Cancel {
                    request_id: Option<Value>,
                }
                let Some(rid) = msg.params_as::<Cancel>().and_then(|c| c.request_id).map(|v| v.to_string()) else {
                    return;
                };
                for s in self.sessions.all() {
                    let hit = s.server_requests.lock().ok().and_then(|m| {
                        m.iter()
                            .find(|(_, (u, orig))| *u == up.index && orig.as_json() == rid)
                            .map(|(cid, _)| cid.clone())
                    });
                    if let Some(cid) = hit {
                        let raw_id: Value = serde_json::from_str(cid.as_json()).unwrap_or(Value::Null);
                        if let Some(p) = msg.params().and_then(|p| raw::with_member(p, "requestId", to_raw(&raw_id))) {
                            s.push(msg.with_id_and_params(None, &p));
                        }
                        return;
                    }
                }
            }
            _ => self.to_call_or_drop(up.index, related.as_ref(), msg.raw().clone()),
        }
    }

    /// Delivers a message about a call to the session that made it; a message Moat cannot
    /// attribute is dropped, never broadcast, so no session sees another's traffic.
    fn to_call_or_drop(&self, upstream: usize, related: Option<&Id>, bytes: Bytes) {
        match self.call_for(upstream, related) {
            Some((session, sink)) => deliver(&session, &sink, bytes),
            None => match self.recent_session(upstream, related) {
                Some(session) => session.push(bytes),
                None => tracing::debug!(upstream, "server message not attributable to one session; dropped"),
            },
        }
    }

    fn broadcast(&self, bytes: Bytes) {
        for s in self.sessions.all() {
            if s.is_initialized() {
                s.push(bytes.clone());
            }
        }
    }
}

/// Sends a message on the call's stream while the client reads it, else on the session's.
fn deliver(session: &Arc<Session>, sink: &mpsc::Sender<StreamItem>, bytes: Bytes) {
    if let Err(e) = sink.try_send(StreamItem::Related(bytes)) {
        let bytes = match e {
            mpsc::error::TrySendError::Full(StreamItem::Related(b))
            | mpsc::error::TrySendError::Closed(StreamItem::Related(b)) => b,
            _ => return,
        };
        session.push(bytes);
    }
}

fn error(id: &Id, c: i64, message: &str) -> Reply {
    Reply::Message(jsonrpc::error_response(Some(id), c, message, None))
}

/// The answer to the stateless revision's discovery probe: method not found, which makes
/// its clients fall back to `initialize` (MCP Python SDK 2.x `mode="auto"`).
pub fn server_discover_unsupported(id: &Id) -> Bytes {
    let supported: Vec<&str> = ProtocolVersion::SUPPORTED.iter().map(|v| v.as_str()).collect();
    jsonrpc::error_response(
        Some(id),
        code::METHOD_NOT_FOUND,
        "`server/discover` is not supported; this server uses the `initialize` handshake",
        Some(&json!({ "supported": supported })),
    )
}
