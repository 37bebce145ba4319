//! A Streamable HTTP upstream (MCP 2025-11-25 basic/transports), as a client.
//!
//! Every outbound message is one POST; the answer comes back as JSON or as an event stream
//! whose messages are tagged with the request they belong to. A GET stream carries
//! server-initiated messages. Streams that break are resumed with `Last-Event-ID` when the
//! server gave event ids. Moat presents its own credentials (`headers`, and the
//! `Authorization` value an [`UpstreamAuthorization`] supplies for each request); a client's
//! token never reaches this code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::mpsc;

use super::{synthesized_error, Inbound, Outbound, TransportError};
use crate::jsonrpc::{code, Id, Message};
use crate::limits::Limits;
use crate::sse;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// How often a broken response stream is resumed before the request fails.
const MAX_RESUMES: usize = 3;

/// Supplies the `Authorization` value of each request to an HTTP upstream: Moat's own
/// credential, such as an OAuth access token it obtained and refreshes. This crate needs no
/// knowledge of how the value is made (the gateway implements this over `moat-auth`).
pub trait UpstreamAuthorization: Send + Sync + std::fmt::Debug {
    /// The value for the next request. The error is logged (it must hold no secret); the
    /// request then fails with "upstream unavailable".
    fn authorization(&self) -> BoxFuture<'_, Result<HeaderValue, String>>;

    /// The upstream answered 401 to a request that carried `value`: drop it, so that the next
    /// [`UpstreamAuthorization::authorization`] makes a new one. The POST is retried once.
    fn rejected(&self, value: &HeaderValue);
}

/// Client side of one upstream session.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    url: String,
    client: reqwest::Client,
    headers: HeaderMap,
    authorization: Option<Arc<dyn UpstreamAuthorization>>,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    tx: mpsc::Sender<Inbound>,
    closed: tokio::sync::watch::Sender<bool>,
}

impl HttpTransport {
    /// A transport for `url` that sends `headers` (Moat's own upstream credentials) on every
    /// request. Returns the channel of messages read.
    pub fn new(
        name: &str,
        url: &str,
        client: reqwest::Client,
        headers: HeaderMap,
    ) -> (HttpTransport, mpsc::Receiver<Inbound>) {
        Self::build(name, url, client, headers, None)
    }

    /// Like [`HttpTransport::new`], with `authorization` supplying the `Authorization` header
    /// of every request (a message that carries its own `Authorization` keeps it).
    pub fn with_authorization(
        name: &str,
        url: &str,
        client: reqwest::Client,
        headers: HeaderMap,
        authorization: Arc<dyn UpstreamAuthorization>,
    ) -> (HttpTransport, mpsc::Receiver<Inbound>) {
        Self::build(name, url, client, headers, Some(authorization))
    }

    fn build(
        name: &str,
        url: &str,
        client: reqwest::Client,
        headers: HeaderMap,
        authorization: Option<Arc<dyn UpstreamAuthorization>>,
    ) -> (HttpTransport, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(256);
        let (closed, _) = tokio::sync::watch::channel(false);
        let inner = Inner {
            name: name.to_string(),
            url: url.to_string(),
            client,
            headers,
            authorization,
            session: Mutex::new(None),
            version: Mutex::new(None),
            tx,
            closed,
        };
        (HttpTransport { inner: Arc::new(inner) }, rx)
    }

    /// A client with keep-alive pooling suited to upstream traffic.
    pub fn default_client() -> reqwest::Client {
        reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default()
    }

    pub fn set_protocol_version(&self, v: &str) {
        if let (Ok(h), Ok(mut g)) = (HeaderValue::from_str(v), self.inner.version.lock()) {
            *g = Some(h);
        }
    }

    fn request_headers(&self) -> HeaderMap {
        let mut h = self.inner.headers.clone();
        if let Ok(g) = self.inner.session.lock() {
            if let Some(s) = g.as_ref() {
                h.insert(HeaderName::from_static(SESSION_HEADER), s.clone());
            }
        }
        if let Ok(g) = self.inner.version.lock() {
            if let Some(v) = g.as_ref() {
                h.insert(HeaderName::from_static(VERSION_HEADER), v.clone());
            }
        }
        h
    }

    /// The `Authorization` value Moat adds to a request whose own headers are
    /// `message_headers`: none without an [`UpstreamAuthorization`] or when the message
    /// carries its own. `Err` holds the message for the client.
    async fn own_authorization(&self, message_headers: &HeaderMap) -> Result<Option<HeaderValue>, String> {
        let Some(auth) = &self.inner.authorization else { return Ok(None) };
        if message_headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        match auth.authorization().await {
            Ok(mut v) => {
                v.set_sensitive(true);
                Ok(Some(v))
            }
            Err(e) => {
                tracing::warn!(upstream = %self.inner.name, error = %e, "no credential for the upstream");
                Err(format!("upstream `{}` is unavailable: Moat could not obtain its credential", self.inner.name))
            }
        }
    }

    /// One POST of `out`, with Moat's `Authorization` value when there is one.
    async fn send_post(&self, out: &Outbound, auth: Option<&HeaderValue>) -> reqwest::Result<reqwest::Response> {
        let mut req = self.inner.client.post(&self.inner.url).headers(self.request_headers());
        if let Some(v) = auth {
            req = req.header(AUTHORIZATION, v.clone());
        }
        req.headers(out.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(out.bytes.clone())
            .send()
            .await
    }

    pub async fn send(&self, out: Outbound) -> Result<(), TransportError> {
        if *self.inner.closed.borrow() {
            return Err(TransportError::Closed);
        }
        let this = self.clone();
        // Each POST runs on its own task so that a slow answer never blocks other traffic.
        tokio::spawn(async move { this.post(out).await });
        Ok(())
    }

    async fn post(&self, out: Outbound) {
        let is_initialize = out.method.as_deref() == Some("initialize");
        let mut auth = match self.own_authorization(&out.headers).await {
            Ok(a) => a,
            Err(message) => return self.fail(out.request_id.as_ref(), &message).await,
        };
        let mut resp = self.send_post(&out, auth.as_ref()).await;
        if let (Some(rejected), Some(hook)) = (&auth, &self.inner.authorization) {
            if resp.as_ref().is_ok_and(|r| r.status() == reqwest::StatusCode::UNAUTHORIZED) {
                // Moat's own credential was refused (expired or revoked early): drop it and
                // retry once with a new one. The upstream did not process the message.
                tracing::info!(upstream = %self.inner.name, "upstream refused Moat's credential; retrying with a new one");
                hook.rejected(rejected);
                auth = match self.own_authorization(&out.headers).await {
                    Ok(a) => a,
                    Err(message) => return self.fail(out.request_id.as_ref(), &message).await,
                };
                resp = self.send_post(&out, auth.as_ref()).await;
            }
        } else if let (Some(sent), Some(hook)) = (out.headers.get(AUTHORIZATION), &self.inner.authorization) {
            // A credential made for this message alone (a token exchanged for its caller) was
            // refused: drop it so the next call makes a new one. This request is not retried.
            if resp.as_ref().is_ok_and(|r| r.status() == reqwest::StatusCode::UNAUTHORIZED) {
                hook.rejected(sent);
            }
        }
        let id = out.request_id;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(upstream = %self.inner.name, error = %e, "upstream request failed");
                self.fail(id.as_ref(), &format!("upstream `{}` is unreachable", self.inner.name)).await;
                return;
            }
        };
        if is_initialize {
            if let Some(s) = resp.headers().get(SESSION_HEADER) {
                if let Ok(mut g) = self.inner.session.lock() {
                    *g = Some(s.clone());
                }
            }
        }
        let status = resp.status();
        if status.as_u16() == 202 {
            return;
        }
        if status.as_u16() == 404 && self.has_session() {
            tracing::warn!(upstream = %self.inner.name, "upstream session expired; reconnecting");
            self.fail(id.as_ref(), &format!("upstream `{}` lost its session; retry the request", self.inner.name))
                .await;
            self.close();
            return;
        }
        let content_type =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            self.read_stream(resp, id).await;
            return;
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                self.fail(id.as_ref(), &format!("upstream `{}` response was cut off: {e}", self.inner.name)).await;
                return;
            }
        };
        match Message::parse(body, &Limits::upstream()) {
            Ok(msg) => {
                let _ = self.inner.tx.send(Inbound { msg, related: id }).await;
            }
            Err(e) => {
                let what = if status.is_success() {
                    format!("upstream `{}` sent an invalid response: {e}", self.inner.name)
                } else {
                    format!("upstream `{}` answered HTTP {}", self.inner.name, status.as_u16())
                };
                self.fail(id.as_ref(), &what).await;
            }
        }
    }

    /// Reads a response stream, resuming it with `Last-Event-ID` if it breaks before the
    /// answer to `id` arrived.
    async fn read_stream(&self, resp: reqwest::Response, id: Option<Id>) {
        let mut decoder = sse::Decoder::new(Limits::upstream().max_bytes);
        let mut answered = self.pump(resp, &mut decoder, id.as_ref()).await;
        let mut resumes = 0;
        while !answered && id.is_some() && resumes < MAX_RESUMES {
            let Some(last) = decoder.last_event_id().map(str::to_string) else { break };
            resumes += 1;
            let Ok(auth) = self.own_authorization(&HeaderMap::new()).await else { break };
            let mut req = self.inner.client.get(&self.inner.url).headers(self.request_headers());
            if let Some(v) = auth {
                req = req.header(AUTHORIZATION, v);
            }
            let resp = req.header(ACCEPT, "text/event-stream").header("last-event-id", last).send().await;
            match resp {
                Ok(r) if r.status().is_success() => answered = self.pump(r, &mut decoder, id.as_ref()).await,
                _ => break,
            }
        }
        if !answered {
            self.fail(id.as_ref(), &format!("upstream `{}` closed the stream before answering", self.inner.name)).await;
        }
    }

    /// Delivers a stream's messages; true once the answer to `id` was among them.
    async fn pump(&self, resp: reqwest::Response, decoder: &mut sse::Decoder, id: Option<&Id>) -> bool {
        let mut body = resp.bytes_stream();
        let mut closed = self.inner.closed.subscribe();
        loop {
            let chunk = tokio::select! {
                c = body.next() => c,
                _ = closed.changed() => return false,
            };
            let Some(Ok(chunk)) = chunk else { return false };
            let events = match decoder.feed(&chunk) {
                Ok(evs) => evs,
                Err(e) => {
                    tracing::warn!(upstream = %self.inner.name, error = %e, "invalid event stream from upstream");
                    return false;
                }
            };
            for ev in events {
                if ev.event.as_deref().is_some_and(|e| e != "message") || ev.data.is_empty() {
                    continue;
                }
                match Message::parse(Bytes::from(ev.data), &Limits::upstream()) {
                    Ok(msg) => {
                        let done = id.is_some() && msg.is_response() && msg.id() == id;
                        if self.inner.tx.send(Inbound { msg, related: id.cloned() }).await.is_err() {
                            return true;
                        }
                        if done {
                            return true;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(upstream = %self.inner.name, error = %e, "upstream sent an invalid message")
                    }
                }
            }
        }
    }

    /// Opens the GET stream for server-initiated messages, and keeps it open.
    pub fn open_event_stream(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut decoder = sse::Decoder::new(Limits::upstream().max_bytes);
            let mut backoff = Duration::from_millis(500);
            loop {
                if *this.inner.closed.borrow() {
                    return;
                }
                let mut req = this
                    .inner
                    .client
                    .get(&this.inner.url)
                    .headers(this.request_headers())
                    .header(ACCEPT, "text/event-stream");
                let auth = this.own_authorization(&HeaderMap::new()).await.ok().flatten();
                if let Some(v) = &auth {
                    req = req.header(AUTHORIZATION, v.clone());
                }
                if let Some(last) = decoder.last_event_id() {
                    req = req.header("last-event-id", last.to_string());
                }
                match req.send().await {
                    // 405: this server offers no GET stream, which the spec allows.
                    Ok(r) if r.status().as_u16() == 405 => return,
                    Ok(r) if r.status().is_success() => {
                        backoff = Duration::from_millis(500);
                        this.pump(r, &mut decoder, None).await;
                    }
                    Ok(r) if r.status().as_u16() == 404 => {
                        this.close();
                        return;
                    }
                    Ok(r) if r.status().as_u16() == 401 => {
                        if let (Some(v), Some(hook)) = (&auth, &this.inner.authorization) {
                            hook.rejected(v);
                        }
                    }
                    _ => {}
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        });
    }

    pub async fn shutdown(&self) {
        if self.has_session() {
            let mut req = self.inner.client.delete(&self.inner.url).headers(self.request_headers());
            if let Ok(Some(v)) = self.own_authorization(&HeaderMap::new()).await {
                req = req.header(AUTHORIZATION, v);
            }
            let _ = req.send().await;
        }
        self.close();
    }

    fn has_session(&self) -> bool {
        self.inner.session.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    /// Marks the transport dead; the connection sees its channel close once every task ends.
    fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    async fn fail(&self, id: Option<&Id>, message: &str) {
        if let Some(id) = id {
            if let Some(msg) = synthesized_error(id, code::UPSTREAM_UNAVAILABLE, message) {
                let _ = self.inner.tx.send(Inbound { msg, related: Some(id.clone()) }).await;
            }
        }
    }

    /// A watch that turns true when the upstream session is gone.
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closed.subscribe()
    }
}
