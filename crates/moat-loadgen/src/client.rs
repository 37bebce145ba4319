//! A minimal MCP client over one keep-alive HTTP/1.1 connection: `initialize`,
//! `notifications/initialized`, then calls carrying `Mcp-Session-Id`. It uses hyper's
//! connection API directly so that each client is exactly one TCP connection and nothing
//! in the client (pooling, retries) blurs what is measured.

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use moat_mcp::{sse, Limits, Message, MessageKind};

pub struct McpClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    path: String,
    session: Option<String>,
    version: String,
    /// The `Accept` header: both media types (what SDK clients send; the gateway then answers
    /// with resumable event streams), or JSON alone.
    pub accept: &'static str,
}

/// `Accept` of a client that takes JSON or an event stream.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

impl McpClient {
    pub async fn connect(addr: SocketAddr, path: &str) -> Result<McpClient> {
        let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(McpClient {
            sender,
            host: addr.to_string(),
            path: path.to_string(),
            session: None,
            version: "2025-11-25".into(),
            accept: ACCEPT_BOTH,
        })
    }

    /// Whether the connection is gone (the server closed it).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Forgets the session, so that the next `initialize` opens another on this connection.
    pub fn reset_session(&mut self) {
        self.session = None;
    }

    /// Opens the MCP session: `initialize`, then `notifications/initialized`.
    pub async fn initialize(&mut self) -> Result<()> {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "moat-loadgen", "version": env!("CARGO_PKG_VERSION")}
            }
        });
        let (status, headers, reply) = self.post(Bytes::from(body.to_string())).await?;
        if status != StatusCode::OK {
            bail!("initialize answered {status}: {}", String::from_utf8_lossy(&reply));
        }
        let sid = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("initialize answered without `Mcp-Session-Id`"))?;
        self.session = Some(sid.to_string());
        let msg = response_of(&headers, reply)?;
        if let Some(v) = msg
            .result()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r.get()).ok())
            .and_then(|r| r.get("protocolVersion")?.as_str().map(String::from))
        {
            self.version = v;
        }
        let note = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let (status, _, _) = self.post(note).await?;
        if !status.is_success() {
            bail!("notifications/initialized answered {status}");
        }
        Ok(())
    }

    /// One `tools/call echo`; fails unless the answer is a result for this id.
    pub async fn call_echo(&mut self, id: u64, text: &str) -> Result<()> {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":{}}}}}}}"#,
            serde_json::to_string(text)?
        );
        let (status, headers, reply) = self.post(Bytes::from(body)).await?;
        if status != StatusCode::OK {
            bail!("tools/call answered {status}: {}", String::from_utf8_lossy(&reply));
        }
        let msg = response_of(&headers, reply)?;
        if msg.id().and_then(|i| i.as_u64()) != Some(id) || msg.result().is_none() {
            bail!("tools/call answered something other than its result: {}", String::from_utf8_lossy(msg.raw()));
        }
        Ok(())
    }

    async fn post(&mut self, body: Bytes) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, self.accept);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", &self.version);
        }
        let req = req.body(Full::new(body))?;
        self.sender.ready().await.context("connection closed")?;
        let resp = self.sender.send_request(req).await.context("request failed")?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.context("cannot read the response body")?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

/// The JSON-RPC response in a reply that is either `application/json` or an event stream.
fn response_of(headers: &http::HeaderMap, body: Bytes) -> Result<Message> {
    let is_sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Message::parse(body, &Limits::upstream()).map_err(|e| anyhow!("bad JSON-RPC reply: {e}"));
    }
    let mut decoder = sse::Decoder::new(Limits::upstream().max_bytes);
    for ev in decoder.feed(&body)? {
        if let Ok(m) = Message::parse(Bytes::from(ev.data), &Limits::upstream()) {
            if m.kind() == MessageKind::Response || m.kind() == MessageKind::Error {
                return Ok(m);
            }
        }
    }
    bail!("the event stream carried no response")
}
