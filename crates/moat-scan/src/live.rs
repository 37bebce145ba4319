//! Live checks: start or reach each server, initialize an MCP session, and fetch what it
//! offers (tools, prompts, resources, resource templates, instructions).
//!
//! Stdio servers are started with a scrubbed environment: only `PATH`, `HOME` (and on
//! Windows the few variables a process needs to start) plus the `env` entries their own
//! configuration gives them. Nothing else from the scanner's environment reaches them, so a
//! token in the shell that runs `moat scan` is never handed to a server under inspection.
//! `${VAR}` references in a configuration are passed as written, not expanded. Stderr is
//! captured (the last [`STDERR_KEEP`] bytes) for the report.
//!
//! Streamable HTTP servers are reached through `moat-mcp`'s HTTP transport with the headers
//! their configuration gives. The deprecated HTTP+SSE transport is not spoken.
//!
//! Servers are fetched in parallel (one task each, at most `concurrency` at a time); every
//! session is bounded by one timeout.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use moat_mcp::transport::http::HttpTransport;
use moat_mcp::transport::Transport as McpTransport;
use moat_mcp::{Connection, Inbound};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};

use crate::model::{ServerEntry, Transport};

/// The protocol revision the scanner asks for.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// How much of a server's stderr is kept for the report.
pub const STDERR_KEEP: usize = 16 * 1024;
/// Largest single message read from a stdio server.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Most pages followed for one list (a server that never stops paginating is cut off).
pub const MAX_PAGES: usize = 100;

/// How to run live checks.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Bound on one server's whole session: start, initialize and every list.
    pub timeout: Duration,
    /// Most servers contacted at once.
    pub concurrency: usize,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { timeout: Duration::from_secs(30), concurrency: 16, progress: false }
    }
}

/// What a server offers, as it answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_info: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Vec<Value>,
    #[serde(default)]
    pub prompts: Vec<Value>,
    #[serde(default)]
    pub resources: Vec<Value>,
    #[serde(default)]
    pub resource_templates: Vec<Value>,
}

/// The outcome of one server's live check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveResult {
    /// Index of the server in the list given to [`fetch_all`].
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// Why the session failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The tail of the server's stderr.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    pub elapsed_ms: u64,
}

/// Why a live session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    #[error("cannot start `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("server has no command or URL")]
    NoTarget,
    #[error("the live scan does not speak the deprecated HTTP+SSE transport")]
    SseUnsupported,
    #[error("header `{0}` is not a valid HTTP header")]
    BadHeader(String),
    #[error("server closed the connection")]
    Closed,
    #[error("server did not finish within {0:?}")]
    Timeout(Duration),
    #[error("server answered `{method}` with an error: {message}")]
    Rpc { method: String, message: String },
    #[error("server sent an invalid answer to `{0}`")]
    Invalid(String),
}

/// Fetches every server in `servers` (disabled ones are skipped), in parallel.
pub async fn fetch_all(servers: &[ServerEntry], opts: &LiveOptions) -> Vec<LiveResult> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let bar = progress_bar(servers.iter().filter(|s| !s.disabled).count(), opts.progress);
    let mut tasks = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        if server.disabled {
            continue;
        }
        let server = server.clone();
        let semaphore = semaphore.clone();
        let timeout = opts.timeout;
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let result = fetch_one(index, &server, timeout).await;
            if let Some(bar) = &bar {
                bar.set_message(server.name.clone());
                bar.inc(1);
            }
            result
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        match task.await {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(error = %e, "a live scan task failed"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    out.sort_by_key(|r| r.index);
    out
}

fn progress_bar(len: usize, enabled: bool) -> Option<indicatif::ProgressBar> {
    if !enabled || len == 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(Some(len as u64), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} scanning {pos}/{len} servers {wide_msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// Fetches one server, within `timeout`.
pub async fn fetch_one(index: usize, server: &ServerEntry, timeout: Duration) -> LiveResult {
    let started = Instant::now();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let outcome = match Session::open(server, stderr.clone()).await {
        Ok(mut session) => {
            let fetched = tokio::time::timeout(timeout, fetch(&mut session)).await;
            session.close().await;
            match fetched {
                Ok(r) => r,
                Err(_) => Err(LiveError::Timeout(timeout)),
            }
        }
        Err(e) => Err(e),
    };
    // Give the stderr reader a moment to drain what the child wrote before it died.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stderr = stderr.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let (snapshot, error) = match outcome {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.to_string())),
    };
    LiveResult {
        index,
        snapshot,
        error,
        stderr,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

async fn fetch(session: &mut Session) -> Result<Snapshot, LiveError> {
    let init = session
        .request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "moat-scan", "version": env!("CARGO_PKG_VERSION")},
            }),
        )
        .await?;
    let version = init.get("protocolVersion").and_then(Value::as_str).map(str::to_owned);
    if let Some(v) = &version {
        session.set_protocol_version(v);
    }
    session.notify("notifications/initialized").await?;
    let caps = init.get("capabilities").cloned().unwrap_or(Value::Null);
    let mut snap = Snapshot {
        protocol_version: version,
        server_info: init.get("serverInfo").cloned(),
        instructions: init.get("instructions").and_then(Value::as_str).map(str::to_owned),
        ..Snapshot::default()
    };
    // Ask for tools even when the capability is missing: a server that hides its tools from
    // the capability list still shows them to a client that asks.
    match paginate(session, "tools/list", "tools").await {
        Ok(t) => snap.tools = t,
        Err(e) if caps.get("tools").is_some() => return Err(e),
        Err(_) => {}
    }
    if caps.get("prompts").is_some() {
        snap.prompts = paginate(session, "prompts/list", "prompts").await?;
    }
    if caps.get("resources").is_some() {
        snap.resources = paginate(session, "resources/list", "resources").await?;
        // Templates are optional even for servers with resources.
        snap.resource_templates =
            paginate(session, "resources/templates/list", "resourceTemplates").await.unwrap_or_default();
    }
    Ok(snap)
}

async fn paginate(session: &mut Session, method: &str, key: &str) -> Result<Vec<Value>, LiveError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let page = session.request(method, params).await?;
        let items = page.get(key).and_then(Value::as_array).ok_or_else(|| LiveError::Invalid(method.to_owned()))?;
        out.extend(items.iter().cloned());
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                cursor = Some(next.to_owned());
            }
            _ => break,
        }
    }
    Ok(out)
}

/// One MCP session, over either transport.
enum Session {
    Stdio(Box<StdioSession>),
    Http(HttpSession),
}

impl Session {
    async fn open(server: &ServerEntry, stderr: Arc<Mutex<Vec<u8>>>) -> Result<Session, LiveError> {
        match (server.transport, &server.command, &server.url) {
            (Transport::Stdio, Some(_), _) => Ok(Session::Stdio(Box::new(StdioSession::spawn(server, stderr)?))),
            (Transport::Sse, _, _) => Err(LiveError::SseUnsupported),
            (Transport::Http, _, Some(url)) => Ok(Session::Http(HttpSession::open(server, url)?)),
            _ => Err(LiveError::NoTarget),
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, LiveError> {
        match self {
            Session::Stdio(s) => s.request(method, params).await,
            Session::Http(s) => s.request(method, params).await,
        }
    }

    async fn notify(&mut self, method: &str) -> Result<(), LiveError> {
        match self {
            Session::Stdio(s) => s.notify(method).await,
            Session::Http(s) => s.notify(method).await,
        }
    }

    fn set_protocol_version(&self, v: &str) {
        if let Session::Http(s) = self {
            s.conn.transport().set_protocol_version(v);
        }
    }

    async fn close(self) {
        match self {
            Session::Stdio(s) => s.close().await,
            Session::Http(s) => s.conn.transport().shutdown().await,
        }
    }
}

/// The environment a stdio server is started with: the few variables a process needs, and
/// the server's own `env` entries. Nothing else is inherited.
pub fn scrubbed_env(server: &ServerEntry) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut keep: Vec<&str> = vec!["PATH", "HOME"];
    if cfg!(windows) {
        keep.extend([
            "SYSTEMROOT",
            "SYSTEMDRIVE",
            "WINDIR",
            "TEMP",
            "TMP",
            "USERPROFILE",
            "APPDATA",
            "LOCALAPPDATA",
            "PATHEXT",
            "COMSPEC",
        ]);
    }
    for name in keep {
        if let Ok(v) = std::env::var(name) {
            env.insert(name.to_owned(), v);
        }
    }
    for (k, v) in &server.env {
        env.insert(k.clone(), v.clone());
    }
    env
}

struct StdioSession {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    next_id: u64,
}

impl StdioSession {
    fn spawn(server: &ServerEntry, stderr_buf: Arc<Mutex<Vec<u8>>>) -> Result<StdioSession, LiveError> {
        let program = server.command.clone().ok_or(LiveError::NoTarget)?;
        let mut cmd = Command::new(&program);
        cmd.args(&server.args)
            .env_clear()
            .envs(scrubbed_env(server))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let cwd = server.cwd.as_deref().map(Path::new).or(server.project.as_deref()).filter(|p| p.is_dir());
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|source| LiveError::Spawn { command: program.clone(), source })?;
        let stdout = child.stdout.take().ok_or(LiveError::Closed)?;
        let stdin = child.stdin.take();
        if let Some(mut err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut buf) = stderr_buf.lock() {
                        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                        let excess = buf.len().saturating_sub(STDERR_KEEP);
                        if excess > 0 {
                            buf.drain(..excess);
                        }
                    }
                }
            });
        }
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut frames = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
            while let Some(line) = frames.next().await {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                // A line that is not JSON (a server logging to stdout) is skipped.
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).await.is_err() {
                        break;
                    }
                }
            }
        });
        Ok(StdioSession { child, stdin, lines: rx, next_id: 1 })
    }

    async fn write(&mut self, msg: &Value) -> Result<(), LiveError> {
        let stdin = self.stdin.as_mut().ok_or(LiveError::Closed)?;
        let mut bytes = serde_json::to_vec(msg).map_err(|_| LiveError::Closed)?;
        bytes.push(b'\n');
        stdin.write_all(&bytes).await.map_err(|_| LiveError::Closed)?;
        stdin.flush().await.map_err(|_| LiveError::Closed)
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, LiveError> {
        let id = self.next_id;
        self.next_id += 1;
        self.write(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await?;
        loop {
            let msg = self.lines.recv().await.ok_or(LiveError::Closed)?;
            if let (Some(req_method), Some(req_id)) = (msg.get("method"), msg.get("id")) {
                // A request from the server (ping, roots/list, sampling...): answer ping, refuse
                // the rest, as a client with no capabilities does.
                let answer = if req_method == "ping" {
                    json!({"jsonrpc": "2.0", "id": req_id, "result": {}})
                } else {
                    json!({"jsonrpc": "2.0", "id": req_id, "error": {"code": -32601, "message": "method not found"}})
                };
                self.write(&answer).await?;
                continue;
            }
            if msg.get("id").and_then(Value::as_u64) != Some(id) {
                continue; // a notification, or an answer to something else
            }
            return answer_of(method, &msg);
        }
    }

    async fn notify(&mut self, method: &str) -> Result<(), LiveError> {
        self.write(&json!({"jsonrpc": "2.0", "method": method})).await
    }

    async fn close(mut self) {
        // Closing stdin is the spec's polite shutdown; kill if the server does not exit soon.
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_millis(200), self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

fn answer_of(method: &str, msg: &Value) -> Result<Value, LiveError> {
    if let Some(err) = msg.get("error") {
        let message = err.get("message").and_then(Value::as_str).unwrap_or("no message").chars().take(500).collect();
        return Err(LiveError::Rpc { method: method.to_owned(), message });
    }
    msg.get("result").cloned().ok_or_else(|| LiveError::Invalid(method.to_owned()))
}

struct HttpSession {
    conn: Arc<Connection>,
}

impl HttpSession {
    fn open(server: &ServerEntry, url: &str) -> Result<HttpSession, LiveError> {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let mut headers = HeaderMap::new();
        for (k, v) in &server.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| LiveError::BadHeader(k.clone()))?;
            let value = HeaderValue::from_str(v).map_err(|_| LiveError::BadHeader(k.clone()))?;
            headers.insert(name, value);
        }
        let (transport, inbound) = HttpTransport::new(&server.name, url, HttpTransport::default_client(), headers);
        let (conn, mut events) = Connection::start(&server.name, McpTransport::Http(transport), inbound);
        // Server-to-client requests are refused, as by a client with no capabilities.
        let refuser = conn.clone();
        tokio::spawn(async move {
            while let Some(Inbound { msg, .. }) = events.recv().await {
                if msg.is_request() {
                    let bytes = moat_mcp::jsonrpc::error_response(msg.id(), -32601, "method not found", None);
                    let _ = refuser.send_raw(bytes, None).await;
                }
            }
        });
        Ok(HttpSession { conn })
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, LiveError> {
        let raw = moat_mcp::jsonrpc::to_raw(&params);
        // The session-wide timeout bounds this; the connection's own is only a backstop.
        let msg =
            self.conn.request(method, Some(&raw), Duration::from_secs(3600)).await.map_err(|_| LiveError::Closed)?;
        let value: Value = serde_json::from_slice(msg.raw()).map_err(|_| LiveError::Invalid(method.to_owned()))?;
        answer_of(method, &value)
    }

    async fn notify(&mut self, method: &str) -> Result<(), LiveError> {
        self.conn.notify(method, None).await.map_err(|_| LiveError::Closed)
    }
}
