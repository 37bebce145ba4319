//! The Streamable HTTP front (MCP 2025-11-25 basic/transports): one endpoint, POST for
//! messages, GET for the server's event stream, DELETE to end a session.
//!
//! Checks run in this order, each answering with a status and a JSON-RPC error that says
//! what was wrong: Host and Origin (DNS rebinding) → content type → body size → JSON-RPC
//! shape and depth → protocol version header → session → router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use http_body_util::BodyExt;
use moat_config::auth::PolicyConfig;
use moat_config::GatewayConfig;
use moat_mcp::jsonrpc::{self, code};
use moat_mcp::{sse, Limits, Message, ProtocolVersion};
use tokio::sync::mpsc;

use crate::request::RequestContext;
use crate::router::{server_discover_unsupported, NameParam, Reply, Router, StreamItem};
use crate::session::{self, Lookup, Session};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// A client that has not sent its whole body by then is cut off (slow-client defence).
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
const KEEPALIVE: Duration = Duration::from_secs(15);
const LAST_EVENT_ID: &str = "last-event-id";

/// What the HTTP front needs, shared by every request.
#[derive(Debug)]
pub struct HttpFront {
    router: Arc<Router>,
    authn: moat_auth::Authenticator,
    limits: Limits,
    path: String,
    loopback: bool,
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
    /// `[[policy.scopes]]`: scopes particular methods and tools need.
    scope_rules: PolicyConfig,
}

impl HttpFront {
    /// The front for `config`, authenticating with `authn` and asking for the scopes of
    /// `policy`'s `[[policy.scopes]]` rules.
    pub fn new(
        router: Arc<Router>,
        config: &GatewayConfig,
        authn: moat_auth::Authenticator,
        policy: &PolicyConfig,
    ) -> Arc<HttpFront> {
        let loopback = config.listen.ip().is_loopback();
        let allowed_origins: Vec<String> =
            config.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();
        let mut allowed_hosts: Vec<String> = allowed_origins.iter().filter_map(|o| host_of_origin(o)).collect();
        if let Some(h) = config.public_url.as_deref().and_then(host_of_origin) {
            allowed_hosts.push(h);
        }
        Arc::new(HttpFront {
            router,
            authn,
            limits: Limits { max_bytes: config.max_body_bytes, max_depth: config.max_json_depth },
            path: config.path.clone(),
            loopback,
            allowed_origins,
            allowed_hosts,
            scope_rules: policy.clone(),
        })
    }

    /// The axum application: the endpoint, and 404 elsewhere.
    pub fn app(self: &Arc<Self>) -> axum::Router {
        let mut app = axum::Router::new().route(&self.path, axum::routing::any(endpoint));
        // RFC 9728 protected-resource metadata, at the path-inserted and the root form.
        if let Some((paths, meta)) = self.authn.protected_resource_metadata() {
            let body = Bytes::from(meta.to_json());
            for path in [paths.path_inserted.clone(), paths.root.clone()] {
                let b = body.clone();
                app = app.route(
                    &path,
                    axum::routing::get(move || {
                        let b = b.clone();
                        async move { json_response(StatusCode::OK, b, None) }
                    }),
                );
            }
        }
        app.fallback(|| async {
            http_error(StatusCode::NOT_FOUND, code::INVALID_REQUEST, "no MCP endpoint at this path")
        })
        .with_state(self.clone())
    }

    /// DNS-rebinding defence: a browser page on another site must not reach a gateway on
    /// loopback. `Host` must name this server and `Origin`, when sent, must be allowed.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Response> {
        if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            let name = strip_port(host).to_ascii_lowercase();
            let ok = (self.loopback && is_loopback_name(&name))
                || self.allowed_hosts.contains(&name)
                || (!self.loopback && self.allowed_hosts.is_empty());
            if !ok {
                return Err(http_error(
                    StatusCode::FORBIDDEN,
                    code::INVALID_REQUEST,
                    &format!("host `{host}` is not allowed"),
                ));
            }
        }
        let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/').to_ascii_lowercase();
        let ok = self.allowed_origins.contains(&origin)
            || (self.loopback && host_of_origin(&origin).is_some_and(|h| is_loopback_name(&h)));
        if ok {
            Ok(())
        } else {
            Err(http_error(StatusCode::FORBIDDEN, code::INVALID_REQUEST, &format!("origin `{origin}` is not allowed")))
        }
    }

    /// Authenticates the request on its own: a session id is never a credential.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<moat_auth::Principal, Response> {
        match self.authn.authenticate(headers).await {
            Ok(p) => Ok(p),
            Err(e) => {
                tracing::info!(target: "moat::decision", decision = "deny", reason = %e, "request not authenticated");
                self.router.record_refusal("", "", &e.to_string(), "MOAT-AUTH-001").await;
                Err(auth_error_response(&e))
            }
        }
    }

    /// Asks for the scopes `[[policy.scopes]]` gives this request (its method, and for
    /// `tools/call` the tool), so that a client lacking them gets 403 `insufficient_scope`
    /// naming what to ask for: step-up authorization (MCP 2025-11-25 basic/authorization).
    async fn check_scopes(&self, principal: &moat_auth::Principal, msg: &Message) -> Result<(), Response> {
        if self.scope_rules.scopes.is_empty() || !msg.is_request() {
            return Ok(());
        }
        let method = msg.method().unwrap_or_default();
        let tool = if method == "tools/call" { msg.params_as::<NameParam>().and_then(|p| p.name) } else { None };
        let required = self.scope_rules.scopes_for(method, tool.as_deref());
        if required.is_empty() {
            return Ok(());
        }
        let Err(e) = self.authn.check_scopes(principal, &required) else { return Ok(()) };
        tracing::info!(target: "moat::decision", decision = "deny", principal = %principal.key(), method, tool = tool.as_deref().unwrap_or_default(), reason = %e, "insufficient scope");
        self.router.record_refusal(&principal.key(), method, &e.to_string(), "MOAT-AUTH-002").await;
        Err(auth_error_response(&e))
    }

    async fn session(&self, principal: &moat_auth::Principal, headers: &HeaderMap) -> Result<Arc<Session>, Response> {
        let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            return Err(http_error(
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                "missing `Mcp-Session-Id` header; send `initialize` first",
            ));
        };
        match self.router.sessions.get(&principal.key(), id) {
            Lookup::Found(s) => Ok(s),
            Lookup::OtherPrincipal => {
                tracing::warn!(target: "moat::decision", decision = "deny", session = %session::short(id), principal = %principal.key(), "session id presented by another principal: possible hijack attempt");
                self.router
                    .record_refusal(
                        &principal.key(),
                        "",
                        "session id presented by another principal (hijack attempt)",
                        "MOAT-SESSION-001",
                    )
                    .await;
                Err(session_not_found())
            }
            Lookup::NotFound => Err(session_not_found()),
        }
    }

    async fn post(&self, headers: HeaderMap, body: Body) -> Response {
        if let Err(r) = self.check_origin(&headers) {
            return r;
        }
        let principal = match self.authenticate(&headers).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !ctype.to_ascii_lowercase().starts_with("application/json") {
            return http_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_REQUEST,
                "`Content-Type` must be `application/json`",
            );
        }
        let bytes = match read_body(body, self.limits.max_bytes, &headers).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let msg = match Message::parse(bytes, &self.limits) {
            Ok(m) => m,
            Err(e) => {
                let status =
                    if e.code() == code::TOO_LARGE { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
                tracing::info!(error = %e, "refused a malformed message");
                self.router.record_refusal(&principal.key(), "", &e.to_string(), "MOAT-INPUT-001").await;
                return http_error(status, e.code(), &e.to_string());
            }
        };
        let method = msg.method().unwrap_or_default();
        // The stateless revision's probe comes before any session and with that revision's
        // version header: answer it so the client falls back to `initialize`.
        if msg.is_request()
            && method == moat_mcp::version::newer::SERVER_DISCOVER
            && !headers.contains_key(SESSION_HEADER)
        {
            return json_response(
                StatusCode::OK,
                server_discover_unsupported(msg.id().unwrap_or(&moat_mcp::Id::num(0))),
                None,
            );
        }
        if let Some(v) = headers.get(VERSION_HEADER) {
            let v = v.to_str().unwrap_or_default();
            if ProtocolVersion::parse(v).is_none() {
                let supported: Vec<&str> = ProtocolVersion::SUPPORTED.iter().map(|v| v.as_str()).collect();
                return http_error(
                    StatusCode::BAD_REQUEST,
                    code::INVALID_REQUEST,
                    &format!("unsupported `MCP-Protocol-Version` `{v}`; supported: {}", supported.join(", ")),
                );
            }
        }
        if let Err(r) = self.check_scopes(&principal, &msg).await {
            return r;
        }
        let accepts_sse = accepts(&headers, "text/event-stream");
        if msg.is_request() && method == "initialize" {
            let session = match self.router.sessions.create(principal, ProtocolVersion::LATEST) {
                Ok(s) => s,
                Err(e) => return http_error(StatusCode::SERVICE_UNAVAILABLE, code::INTERNAL_ERROR, &e.to_string()),
            };
            let sid = session.id.clone();
            let reply = self.router.handle(&session, msg).await;
            let mut resp = self.render(&session, reply, accepts_sse).await;
            if let Ok(v) = HeaderValue::from_str(&sid) {
                resp.headers_mut().insert(SESSION_HEADER, v);
            }
            return resp;
        }
        let session = match self.session(&principal, &headers).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        // The caller's OAuth token is kept for upstreams that exchange it (RFC 8693); it is
        // never forwarded.
        let cx = RequestContext {
            caller: moat_auth::SubjectToken::from_request(&principal, &headers),
            ..crate::request::current()
        };
        let reply = crate::request::scope(cx, self.router.handle(&session, msg)).await;
        self.render(&session, reply, accepts_sse).await
    }

    async fn render(&self, session: &Arc<Session>, reply: Reply, accepts_sse: bool) -> Response {
        match reply {
            Reply::Accepted => StatusCode::ACCEPTED.into_response(),
            Reply::Message(b) if accepts_sse => sse_response(session.streams.open_answered(b).events(0, true)),
            Reply::Message(b) => json_response(StatusCode::OK, b, None),
            // A client that takes event streams gets a resumable one: primed, with ids, fed by
            // the call whether or not the client stays connected (see `resume`).
            Reply::Stream(rx) if accepts_sse => sse_response(session.streams.open(rx).events(0, true)),
            Reply::Stream(mut rx) => {
                // JSON only: what comes before the response goes to the GET stream.
                loop {
                    match rx.recv().await {
                        None => {
                            return http_error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                code::INTERNAL_ERROR,
                                "the request was dropped",
                            )
                        }
                        Some(StreamItem::Final(b)) => return json_response(StatusCode::OK, b, None),
                        Some(StreamItem::Related(b)) => session.push(b),
                    }
                }
            }
        }
    }

    async fn get(&self, headers: HeaderMap) -> Response {
        if let Err(r) = self.check_origin(&headers) {
            return r;
        }
        let principal = match self.authenticate(&headers).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        if !accepts(&headers, "text/event-stream") {
            return http_error(
                StatusCode::NOT_ACCEPTABLE,
                code::INVALID_REQUEST,
                "GET opens an event stream; `Accept` must include `text/event-stream`",
            );
        }
        let session = match self.session(&principal, &headers).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        // A client resuming a POST stream it lost gets the rest of that stream, and only that.
        if let Some(last) = headers.get(LAST_EVENT_ID).and_then(|v| v.to_str().ok()) {
            if let Some((log, seq)) = session.streams.find(last) {
                return sse_response(log.events(seq, false));
            }
            tracing::info!(session = %session::short(&session.id), last_event_id = last, "resumption of a stream that is no longer kept; opening the session stream");
        }
        let rx = session.attach_stream();
        sse_response(session_stream(rx))
    }

    async fn delete(&self, headers: HeaderMap) -> Response {
        if let Err(r) = self.check_origin(&headers) {
            return r;
        }
        let principal = match self.authenticate(&headers).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        let session = match self.session(&principal, &headers).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        self.router.sessions.remove(&principal.key(), &session.id);
        self.router.record_session_closed(&session).await;
        StatusCode::NO_CONTENT.into_response()
    }
}

async fn endpoint(
    State(front): State<Arc<HttpFront>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let cx = RequestContext { source: peer.map(|Extension(ConnectInfo(a))| a), caller: None };
    crate::request::scope(cx, dispatch(front, method, headers, body)).await
}

async fn dispatch(front: Arc<HttpFront>, method: Method, headers: HeaderMap, body: Body) -> Response {
    match method {
        Method::POST => {
            // The client's W3C trace context (when tracing is on) parents the request's span.
            let parent = crate::telemetry::extract_http(&headers);
            opentelemetry::context::FutureExt::with_context(front.post(headers, body), parent).await
        }
        Method::GET => front.get(headers).await,
        Method::DELETE => front.delete(headers).await,
        _ => {
            let mut r = http_error(
                StatusCode::METHOD_NOT_ALLOWED,
                code::INVALID_REQUEST,
                &format!("method {method} is not allowed"),
            );
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            r
        }
    }
}

async fn read_body(body: Body, limit: usize, headers: &HeaderMap) -> Result<Bytes, Response> {
    let too_large = || {
        http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::TOO_LARGE,
            &format!("request body is over the limit of {limit} bytes"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => Err(http_error(
            StatusCode::REQUEST_TIMEOUT,
            code::INVALID_REQUEST,
            "the request body did not arrive in time",
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(http_error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            &format!("cannot read the request body: {e}"),
        )),
    }
}

fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|part| {
            let m = part.split(';').next().unwrap_or_default().trim();
            m.eq_ignore_ascii_case(mime) || m == "*/*"
        })
    })
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
}

fn host_of_origin(origin: &str) -> Option<String> {
    let rest = origin.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    Some(strip_port(authority).to_ascii_lowercase())
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

fn json_response(status: StatusCode, body: Bytes, extra: Option<(&'static str, HeaderValue)>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some((k, v)) = extra {
        r.headers_mut().insert(k, v);
    }
    r
}

/// An HTTP error whose body is a JSON-RPC error naming what was wrong.
/// The answer to a refused credential: 401 or 403 with the `WWW-Authenticate` challenge that
/// tells the client what to do (sign in, or ask for more scopes).
fn auth_error_response(e: &moat_auth::AuthError) -> Response {
    let parts = e.into_response_parts();
    let mut r = http_error(parts.status, code::INVALID_REQUEST, parts.message);
    if let Some(h) = parts.www_authenticate {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, h);
    }
    r
}

pub fn http_error(status: StatusCode, c: i64, message: &str) -> Response {
    json_response(status, jsonrpc::error_response(None, c, message, None), None)
}

fn session_not_found() -> Response {
    http_error(
        StatusCode::NOT_FOUND,
        code::INVALID_REQUEST,
        "session not found or expired; send `initialize` to start a new one",
    )
}

fn sse_response(stream: impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static) -> Response {
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The GET stream: server-initiated messages, with keep-alive comments.
fn session_stream(rx: mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    futures_util::stream::unfold((rx, tick), |(mut rx, mut tick)| async move {
        tokio::select! {
            m = rx.recv() => m.map(|b| (Ok(sse::encode(None, Some("message"), &b)), (rx, tick))),
            _ = tick.tick() => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (rx, tick))),
        }
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, over TLS when `tls` is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<super::tls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10)).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        // The peer's address travels with each request, for the audit record's `source`.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                None => builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn host_and_origin_parsing() {
        assert_eq!(strip_port("localhost:8787"), "localhost");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(host_of_origin("http://127.0.0.1:3000").as_deref(), Some("127.0.0.1"));
        assert!(is_loopback_name("127.0.0.5"));
        assert!(is_loopback_name("localhost"));
        assert!(!is_loopback_name("evil.com"));
        assert!(!is_loopback_name("localhost.evil.com"));
    }
}
