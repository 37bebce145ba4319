//! Upstream servers: each is started (or connected to), initialized, watched, and
//! restarted with backoff when it dies. What it sends that is not an answer goes to the
//! router as an [`UpstreamEvent`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use moat_config::{EnvValue, UpstreamConfig};
use moat_mcp::transport::http::{HttpTransport, UpstreamAuthorization};
use moat_mcp::transport::{stdio::StdioTransport, Transport};
use moat_mcp::{jsonrpc, Connection, Inbound, ProtocolVersion};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

/// How long Moat waits for an upstream's `initialize` answer.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A run this long resets the backoff: the upstream was healthy, not crash-looping.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Where per-upstream state (the sandbox's private home directories) lives.
fn state_dir() -> PathBuf {
    std::env::var_os("MOAT_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("moat")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/moat")))
        .unwrap_or_else(|| std::env::temp_dir().join("moat-state"))
}

/// What an upstream said about itself in `initialize`.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    pub protocol_version: String,
    pub capabilities: Value,
    pub server_info: Value,
    pub instructions: Option<String>,
}

/// Something an upstream did that the router must handle.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// A server request or notification.
    Message { upstream: usize, inbound: Inbound },
    /// The upstream is (again) initialized and serving.
    Ready { upstream: usize },
}

/// One upstream server and its current connection.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub index: usize,
    pub config: UpstreamConfig,
    base_dir: PathBuf,
    conn: RwLock<Option<Arc<Connection>>>,
    info: RwLock<Option<UpstreamInfo>>,
    ready: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    /// Moat's OAuth token source for this upstream (`[upstream.oauth]`), made on first use and
    /// kept across reconnects so that its cached token is too.
    token_source: Mutex<Option<moat_auth::UpstreamTokenSource>>,
}

impl Upstream {
    /// Creates the upstream and starts supervising it.
    pub fn start(
        index: usize,
        config: UpstreamConfig,
        base_dir: PathBuf,
        events: mpsc::Sender<UpstreamEvent>,
    ) -> Arc<Upstream> {
        let (ready, _) = watch::channel(false);
        let (stop, _) = watch::channel(false);
        let up = Arc::new(Upstream {
            name: config.name.clone(),
            index,
            config,
            base_dir,
            conn: RwLock::new(None),
            info: RwLock::new(None),
            ready,
            stop,
            token_source: Mutex::new(None),
        });
        tokio::spawn(up.clone().supervise(events));
        up
    }

    /// The live connection, waiting up to `wait` for the upstream to become ready.
    pub async fn connection(&self, wait: Duration) -> Option<Arc<Connection>> {
        if let Some(c) = self.current() {
            return Some(c);
        }
        let mut rx = self.ready.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|r| *r)).await;
        self.current()
    }

    /// The live connection if there is one, without waiting.
    pub fn connection_now(&self) -> Option<Arc<Connection>> {
        self.current()
    }

    fn current(&self) -> Option<Arc<Connection>> {
        self.conn.read().ok().and_then(|g| g.clone()).filter(|c| !c.is_closed())
    }

    pub fn info(&self) -> Option<UpstreamInfo> {
        self.info.read().ok().and_then(|g| g.clone())
    }

    pub fn timeout(&self) -> Duration {
        self.config.timeout.0
    }

    /// Stops the upstream (kills a stdio child, ends an HTTP session).
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        if let Some(c) = self.current() {
            c.transport().shutdown().await;
        }
    }

    async fn supervise(self: Arc<Self>, events: mpsc::Sender<UpstreamEvent>) {
        let mut backoff = BACKOFF_START;
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            let started = Instant::now();
            match self.connect().await {
                Ok((conn, mut inbound, exit)) => {
                    match self.initialize(&conn).await {
                        Ok(info) => {
                            tracing::info!(upstream = %self.name, server = %info.server_info, version = %info.protocol_version, "upstream ready");
                            if let Ok(mut g) = self.info.write() {
                                *g = Some(info);
                            }
                            if let Ok(mut g) = self.conn.write() {
                                *g = Some(conn.clone());
                            }
                            self.ready.send_replace(true);
                            let _ = events.send(UpstreamEvent::Ready { upstream: self.index }).await;
                            loop {
                                tokio::select! {
                                    m = inbound.recv() => match m {
                                        Some(inb) => {
                                            if events.send(UpstreamEvent::Message { upstream: self.index, inbound: inb }).await.is_err() {
                                                return;
                                            }
                                        }
                                        None => break,
                                    },
                                    _ = stop.changed() => {
                                        conn.transport().shutdown().await;
                                        return;
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::error!(upstream = %self.name, error = %e, "upstream failed to initialize"),
                    }
                    self.ready.send_replace(false);
                    if let Ok(mut g) = self.conn.write() {
                        *g = None;
                    }
                    conn.transport().shutdown().await;
                    let status = match exit {
                        Some(rx) => rx.await.ok().and_then(|r| r.status).map(moat_sandbox::describe_exit),
                        None => None,
                    };
                    tracing::warn!(upstream = %self.name, exit = status.as_deref().unwrap_or("session closed"), "upstream stopped; restarting");
                }
                Err(e) => tracing::error!(upstream = %self.name, error = %e, "cannot start upstream"),
            }
            if started.elapsed() > HEALTHY_RUN {
                backoff = BACKOFF_START;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    #[allow(clippy::type_complexity)]
    async fn connect(
        &self,
    ) -> Result<
        (
            Arc<Connection>,
            mpsc::Receiver<Inbound>,
            Option<tokio::sync::oneshot::Receiver<moat_mcp::transport::stdio::ExitReport>>,
        ),
        String,
    > {
        if let Some(argv) = &self.config.command {
            let cmd = self.command(argv)?;
            let (t, rx, exit) = StdioTransport::spawn(&self.name, cmd)
                .map_err(|e| format!("cannot start `{}`: {e}", argv.join(" ")))?;
            let (conn, events) = Connection::start(&self.name, Transport::Stdio(t), rx);
            Ok((conn, events, Some(exit)))
        } else if let Some(url) = &self.config.url {
            let (client, headers) = (HttpTransport::default_client(), self.upstream_headers()?);
            let (t, rx) = match self.token_source()? {
                Some(source) => HttpTransport::with_authorization(
                    &self.name,
                    url,
                    client,
                    headers,
                    Arc::new(OAuthAuthorization(source)),
                ),
                None => HttpTransport::new(&self.name, url, client, headers),
            };
            let (conn, events) = Connection::start(&self.name, Transport::Http(t), rx);
            Ok((conn, events, None))
        } else {
            Err("upstream has neither a command nor a URL".into())
        }
    }

    /// The OAuth token source of an `[upstream.oauth]` upstream (`None` without one), made
    /// the first time: the client secret is resolved then.
    ///
    /// # Errors
    /// When the secret cannot be resolved or the settings cannot work; the message names the
    /// upstream and the reference, never the secret.
    pub fn token_source(&self) -> Result<Option<moat_auth::UpstreamTokenSource>, String> {
        let Some(oauth) = &self.config.oauth else { return Ok(None) };
        let mut slot = self.token_source.lock().map_err(|_| "token source lock poisoned".to_string())?;
        if let Some(source) = slot.as_ref() {
            return Ok(Some(source.clone()));
        }
        let secret = oauth.client_secret.resolve(&self.base_dir).map_err(|e| e.to_string())?;
        let secret = secret.expose_str().ok_or_else(|| format!("secret `{}` is not UTF-8", oauth.client_secret))?;
        let mut settings = moat_auth::UpstreamTokenSettings::new(
            &self.name,
            &oauth.token_url,
            &oauth.client_id,
            moat_auth::ClientSecret::new(secret.trim()),
        );
        settings.scope = oauth.scope.0.clone();
        settings.resource = oauth.effective_resource(self.config.url.as_deref()).map(str::to_owned);
        settings.audience = oauth.audience.clone();
        settings.grant = match oauth.grant {
            moat_config::upstream::UpstreamGrant::ClientCredentials => moat_auth::UpstreamGrant::ClientCredentials,
            moat_config::upstream::UpstreamGrant::TokenExchange => moat_auth::UpstreamGrant::TokenExchange,
        };
        let http = moat_auth::ReqwestClient::new().map_err(|e| e.to_string())?;
        let source = moat_auth::UpstreamTokenSource::new(settings, Arc::new(http)).map_err(|e| e.to_string())?;
        *slot = Some(source.clone());
        Ok(Some(source))
    }

    /// The `Authorization` value of a call made for the current caller (see [`crate::request`])
    /// when this upstream exchanges callers' tokens (RFC 8693); `None` for every other
    /// upstream, whose transport presents Moat's own credential.
    ///
    /// # Errors
    /// A message for the client (no internals) when there is no caller token to exchange or
    /// the exchange fails; the details go to the log. Fails closed: a call that should carry
    /// the caller's identity is never made with Moat's own.
    pub async fn caller_authorization(&self) -> Result<Option<reqwest::header::HeaderValue>, String> {
        let source = match self.token_source() {
            Ok(Some(s)) if s.grant() == moat_auth::UpstreamGrant::TokenExchange => s,
            Ok(_) => return Ok(None),
            Err(e) => {
                tracing::warn!(upstream = %self.name, error = %e, "no token source for the upstream");
                return Err(format!("upstream `{}` is unavailable: Moat could not obtain its credential", self.name));
            }
        };
        let Some(subject) = crate::request::current().caller else {
            return Err(format!(
                "upstream `{}` is called on behalf of the caller, and this request carries no OAuth access token",
                self.name
            ));
        };
        match source.exchange(&subject).await {
            Ok(token) => Ok(Some(token.authorization().clone())),
            Err(e) => {
                tracing::warn!(upstream = %self.name, error = %e, help = e.help().unwrap_or_default(), "token exchange failed");
                Err(format!(
                    "upstream `{}` is unavailable: the caller's token could not be exchanged for it",
                    self.name
                ))
            }
        }
    }

    /// Moat's own credentials for an HTTP upstream, resolved now (so a rotated secret file
    /// is picked up on reconnect). Marked sensitive so that they never appear in a log line.
    fn upstream_headers(&self) -> Result<reqwest::header::HeaderMap, String> {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
        let mut map = HeaderMap::new();
        let resolve = |v: &EnvValue| -> Result<String, String> {
            match v {
                EnvValue::Literal(s) => Ok(s.clone()),
                EnvValue::Reference(r) => {
                    let secret = r.resolve(&self.base_dir).map_err(|e| e.to_string())?;
                    secret.expose_str().map(str::to_string).ok_or_else(|| format!("secret `{r}` is not UTF-8"))
                }
            }
        };
        if let Some(r) = &self.config.credential {
            let token = resolve(&EnvValue::Reference(r.clone()))?;
            let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| format!("credential `{r}` is not a valid header value"))?;
            v.set_sensitive(true);
            map.insert(AUTHORIZATION, v);
        }
        for (k, v) in &self.config.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name `{k}`"))?;
            let mut value =
                HeaderValue::from_str(&resolve(v)?).map_err(|_| format!("header `{k}` has an invalid value"))?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        Ok(map)
    }

    /// The child's command, confined by the sandbox (docs/sandbox.md): a clean environment
    /// with only `PATH` and the configured entries, rlimits, Landlock and seccomp.
    fn command(&self, argv: &[String]) -> Result<tokio::process::Command, String> {
        let (program, args) = argv.split_first().ok_or("empty command")?;
        let program = if program == "moat" {
            std::env::current_exe().map_err(|e| format!("cannot find the moat executable: {e}"))?
        } else {
            PathBuf::from(program)
        };
        let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = Vec::new();
        if let Some(path) = std::env::var_os("PATH") {
            env.push(("PATH".into(), path));
        }
        for (k, v) in &self.config.env {
            let value = match v {
                EnvValue::Literal(s) => s.clone(),
                EnvValue::Reference(r) => {
                    let secret = r.resolve(&self.base_dir).map_err(|e| e.to_string())?;
                    secret.expose_str().ok_or_else(|| format!("secret `{r}` for `{k}` is not UTF-8"))?.to_string()
                }
            };
            env.push((k.into(), value.into()));
        }
        let policy = moat_sandbox::SandboxPolicy::for_upstream(&self.config, env, &self.base_dir, &state_dir())
            .map_err(|e| e.to_string())?;
        let (mut cmd, report) = moat_sandbox::prepare(&program, args, &policy).map_err(|e| e.to_string())?;
        tracing::info!(upstream = %self.name, sandbox = %report, "starting stdio upstream");
        for p in report.missing() {
            tracing::warn!(upstream = %self.name, protection = ?p, "sandbox protection missing (best_effort)");
        }
        if let Some(cwd) = &self.config.cwd {
            cmd.current_dir(self.base_dir.join(cwd));
        }
        Ok(cmd)
    }

    async fn initialize(&self, conn: &Connection) -> Result<UpstreamInfo, String> {
        let params = json!({
            "protocolVersion": ProtocolVersion::LATEST.as_str(),
            "capabilities": {
                "roots": { "listChanged": true },
                "sampling": {},
                "elicitation": {},
            },
            "clientInfo": { "name": "moat", "title": "Moat MCP gateway", "version": env!("CARGO_PKG_VERSION") },
        });
        let resp = conn
            .request("initialize", Some(&jsonrpc::to_raw(&params)), INIT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let result: Value = match resp.result() {
            Some(r) => serde_json::from_str(r.get()).map_err(|e| e.to_string())?,
            None => return Err(format!("upstream refused initialize: {}", resp.error().map_or("", |e| e.get()))),
        };
        let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        if ProtocolVersion::parse(&version).is_none() {
            return Err(format!("upstream speaks protocol `{version}`, which Moat does not support"));
        }
        conn.transport().set_protocol_version(&version);
        conn.notify("notifications/initialized", None).await.map_err(|e| e.to_string())?;
        conn.transport().initialized();
        Ok(UpstreamInfo {
            protocol_version: version,
            capabilities: result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            server_info: result.get("serverInfo").cloned().unwrap_or_else(|| json!({})),
            instructions: result.get("instructions").and_then(Value::as_str).map(str::to_string),
        })
    }
}

/// Presents Moat's OAuth token for an upstream on each request of its transport: the
/// `moat-auth` token source behind the transport's `UpstreamAuthorization` seam.
#[derive(Debug)]
struct OAuthAuthorization(moat_auth::UpstreamTokenSource);

impl UpstreamAuthorization for OAuthAuthorization {
    fn authorization(&self) -> futures_util::future::BoxFuture<'_, Result<reqwest::header::HeaderValue, String>> {
        Box::pin(async move {
            match self.0.token().await {
                Ok(token) => Ok(token.authorization().clone()),
                Err(e) => Err(match e.help() {
                    Some(help) => format!("{e} (help: {help})"),
                    None => e.to_string(),
                }),
            }
        })
    }

    fn rejected(&self, value: &reqwest::header::HeaderValue) {
        self.0.rejected(value);
    }
}
