//! Moat's own access tokens for HTTP upstreams: the client side of OAuth, so that a caller's
//! token is never passed through (MCP authorization spec, "Token Passthrough").
//!
//! An [`UpstreamTokenSource`] gets tokens from the upstream's authorization server in one of
//! two ways:
//!
//! - **client credentials** (RFC 6749 §4.4, `client_secret_basic`): one token for Moat itself,
//!   with an RFC 8707 `resource` (and optionally `audience`) naming the upstream;
//! - **token exchange** (RFC 8693): the caller's access token (already validated by the
//!   gateway, with Moat as its audience) is exchanged for one whose audience is the upstream,
//!   so that the upstream learns who the user is without ever seeing a token meant for Moat.
//!
//! Tokens are cached until shortly before they expire. Concurrent callers wait for one fetch
//! (single flight) instead of each asking the authorization server. An upstream that answers
//! 401 makes the token it refused be dropped ([`UpstreamTokenSource::rejected`]), so the next
//! request fetches a new one. Exchanged tokens are cached per subject token, keyed by the
//! SHA-256 of that token (the cache holds no usable caller token), in a bounded map.
//!
//! Neither the client secret nor a token appears in `Debug` output, an error or a log line:
//! [`AccessToken`] and [`crate::ClientSecret`] print as `***` and are zeroized on drop.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use reqwest::Url;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::http_client::HttpClient;
use crate::settings::{require_https_or_loopback, ClientSecret};

/// RFC 8693 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token type of an OAuth access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 token type of a JWT (accepted as `issued_token_type`: a JWT access token).
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// How long before `expires_in` runs out a token is replaced (at most half its lifetime).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// Longest wait for the token endpoint (the HTTP client has its own, shorter, timeouts too).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Most exchanged tokens kept; when full, stale ones are dropped, then everything.
pub const DEFAULT_MAX_EXCHANGE_ENTRIES: usize = 10_000;
/// How long a failed fetch is reported to every caller before the next one is tried: callers
/// that waited for it get its error at once instead of each trying (and timing out) in turn,
/// and a down authorization server is not hammered.
const FAILURE_HOLD: Duration = Duration::from_secs(2);
/// Longest a token is cached, whatever `expires_in` says.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest access token accepted from a token endpoint.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest `error_description` repeated in an error message.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// How tokens for an upstream are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamGrant {
    /// Moat's own token (RFC 6749 §4.4). Also what token exchange uses for Moat's own
    /// traffic (initialize, lists, the event stream), where there is no caller.
    #[default]
    ClientCredentials,
    /// RFC 8693: a token exchanged for each caller's token.
    TokenExchange,
}

/// What an [`UpstreamTokenSource`] runs with, secrets already resolved.
#[derive(Clone)]
pub struct UpstreamTokenSettings {
    /// The upstream's name, for messages.
    pub upstream: String,
    /// Token endpoint: `https`, or `http` on a loopback host.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: ClientSecret,
    /// Scopes asked for (joined with spaces); none: the server's default.
    pub scope: Vec<String>,
    /// RFC 8707 resource indicator of the upstream.
    pub resource: Option<String>,
    /// `audience` parameter (RFC 8693 §2.1; also used by some servers for client credentials).
    pub audience: Option<String>,
    pub grant: UpstreamGrant,
    /// See [`DEFAULT_REFRESH_MARGIN`].
    pub refresh_margin: Duration,
    /// See [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`DEFAULT_MAX_EXCHANGE_ENTRIES`].
    pub max_exchange_entries: usize,
}

impl UpstreamTokenSettings {
    /// Client-credentials settings with the defaults.
    pub fn new(
        upstream: impl Into<String>,
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Self {
        UpstreamTokenSettings {
            upstream: upstream.into(),
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret,
            scope: Vec::new(),
            resource: None,
            audience: None,
            grant: UpstreamGrant::ClientCredentials,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_exchange_entries: DEFAULT_MAX_EXCHANGE_ENTRIES,
        }
    }
}

impl fmt::Debug for UpstreamTokenSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTokenSettings")
            .field("upstream", &self.upstream)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("scope", &self.scope)
            .field("resource", &self.resource)
            .field("audience", &self.audience)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

/// An access token from a token endpoint. Not printable; zeroized on drop.
pub struct AccessToken {
    value: Zeroizing<String>,
    /// `Bearer <value>`, marked sensitive.
    header: HeaderValue,
    expires_at: Instant,
    refresh_at: Instant,
}

impl AccessToken {
    /// The token itself.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// `Bearer <token>` as a header value marked sensitive (hyper and `http` keep it out of
    /// their debug output).
    pub fn authorization(&self) -> &HeaderValue {
        &self.header
    }

    /// Time left before the token expires, by the authorization server's `expires_in`.
    pub fn expires_in(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }

    /// Whether the token is still used rather than replaced.
    fn fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }

    /// Whether `header` is this token's `Authorization` value (constant time).
    fn is(&self, header: &[u8]) -> bool {
        bool::from(self.header.as_bytes().ct_eq(header))
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken(***, expires in {} s)", self.expires_in().as_secs())
    }
}

/// A caller's access token, kept only to be exchanged (RFC 8693). Not printable; zeroized on
/// drop; never sent anywhere but to the token endpoint as `subject_token`.
#[derive(Clone)]
pub struct SubjectToken(Arc<Zeroizing<String>>);

impl SubjectToken {
    /// The bearer token of a request that `principal` was authenticated by: only an OAuth
    /// access token (JWT or introspected), never an API key.
    pub fn from_request(principal: &crate::Principal, headers: &http::HeaderMap) -> Option<SubjectToken> {
        if !matches!(principal.auth_method, crate::AuthMethod::Jwt | crate::AuthMethod::Introspection) {
            return None;
        }
        match crate::header::bearer_token(headers) {
            crate::header::Bearer::Token(t) => Some(SubjectToken(Arc::new(Zeroizing::new(t.to_owned())))),
            _ => None,
        }
    }
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectToken(***)")
    }
}

/// Why no token could be obtained. Messages name the upstream and the client, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamTokenError {
    /// The settings cannot work (bad token URL, token exchange not configured).
    #[error("upstream `{upstream}`: {detail}")]
    Settings { upstream: String, detail: String },
    /// Connection refused, TLS failure, an HTTP error status other than an OAuth error.
    #[error("cannot get an access token for upstream `{upstream}` from `{token_url}`: {detail}")]
    Unavailable { upstream: String, token_url: String, detail: String },
    /// No answer within the timeout.
    #[error("the token endpoint `{token_url}` of upstream `{upstream}` did not answer within {seconds} s")]
    Timeout { upstream: String, token_url: String, seconds: u64 },
    /// The authorization server answered with an OAuth error (RFC 6749 §5.2).
    #[error(
        "the authorization server refused client `{client_id}` a token for upstream `{upstream}`: `{error}`{}",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    Refused { upstream: String, client_id: String, status: u16, error: String, description: Option<String> },
    /// The answer is not a usable token response.
    #[error("the token endpoint `{token_url}` of upstream `{upstream}` sent an unusable answer: {detail}")]
    InvalidResponse { upstream: String, token_url: String, detail: String },
}

impl UpstreamTokenError {
    /// What the operator can do about it, when that is clear.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            UpstreamTokenError::Refused { error, .. } => match error.as_str() {
                "invalid_client" | "unauthorized_client" => {
                    Some("check `client_id` and `client_secret` in `[upstream.oauth]`, and that the client may use this grant")
                }
                "invalid_scope" => Some("check `scope` in `[upstream.oauth]` against what the client may ask for"),
                "invalid_target" => {
                    Some("check `resource` (default: the upstream's `url`) and `audience` in `[upstream.oauth]`")
                }
                "invalid_grant" => Some("the caller's token was not accepted for exchange (expired, or not for Moat)"),
                "unsupported_grant_type" => Some("the authorization server does not offer this grant; check `grant`"),
                _ => None,
            },
            UpstreamTokenError::Unavailable { .. } | UpstreamTokenError::Timeout { .. } => {
                Some("check `token_url` in `[upstream.oauth]` and that the authorization server is reachable")
            }
            _ => None,
        }
    }
}

/// Gets, caches and refreshes Moat's access tokens for one upstream. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamTokenSource {
    inner: Arc<Inner>,
}

/// One cached token, or the last failure to get it. The async lock around it is held across a
/// fetch: that is the single flight.
#[derive(Default)]
enum Cached {
    #[default]
    Empty,
    Token(Arc<AccessToken>),
    Failed {
        at: Instant,
        error: UpstreamTokenError,
    },
}

type Slot = Arc<tokio::sync::Mutex<Cached>>;

struct Inner {
    settings: UpstreamTokenSettings,
    token_url: Url,
    http: Arc<dyn HttpClient>,
    /// Moat's own (client-credentials) token.
    own: Slot,
    /// Exchanged tokens by SHA-256 of the subject token.
    exchanged: Mutex<HashMap<[u8; 32], Slot>>,
}

impl fmt::Debug for UpstreamTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTokenSource").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

enum Grant<'a> {
    ClientCredentials,
    Exchange { subject_token: &'a str },
}

impl UpstreamTokenSource {
    /// # Errors
    /// [`UpstreamTokenError::Settings`] when the token URL is not `https` (or `http` on
    /// loopback), or the client id is empty.
    pub fn new(settings: UpstreamTokenSettings, http: Arc<dyn HttpClient>) -> Result<Self, UpstreamTokenError> {
        let bad = |detail: String| UpstreamTokenError::Settings { upstream: settings.upstream.clone(), detail };
        let token_url = require_https_or_loopback("upstream.oauth.token_url", &settings.token_url)
            .map_err(|e| bad(e.to_string()))?;
        if settings.client_id.is_empty() {
            return Err(bad("the client id is empty".into()));
        }
        Ok(UpstreamTokenSource {
            inner: Arc::new(Inner {
                settings,
                token_url,
                http,
                own: Slot::default(),
                exchanged: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The grant the settings name.
    pub fn grant(&self) -> UpstreamGrant {
        self.inner.settings.grant
    }

    /// Moat's own token (client credentials), from the cache while it is fresh.
    ///
    /// # Errors
    /// When the authorization server cannot be reached, refuses, or answers nonsense.
    pub async fn token(&self) -> Result<Arc<AccessToken>, UpstreamTokenError> {
        self.cached_or_fetch(&self.inner.own, Grant::ClientCredentials).await
    }

    /// A token for the upstream exchanged for `subject_token` (RFC 8693), from the cache
    /// while it is fresh. The caller must have validated `subject_token` already.
    ///
    /// # Errors
    /// [`UpstreamTokenError::Settings`] when the grant is not token exchange; else as
    /// [`UpstreamTokenSource::token`].
    pub async fn exchange(&self, subject: &SubjectToken) -> Result<Arc<AccessToken>, UpstreamTokenError> {
        self.exchange_str(subject.0.as_str()).await
    }

    async fn exchange_str(&self, subject_token: &str) -> Result<Arc<AccessToken>, UpstreamTokenError> {
        if self.inner.settings.grant != UpstreamGrant::TokenExchange {
            return Err(UpstreamTokenError::Settings {
                upstream: self.inner.settings.upstream.clone(),
                detail: "token exchange is not configured (`grant = \"token_exchange\"`)".into(),
            });
        }
        let key: [u8; 32] = Sha256::digest(subject_token.as_bytes()).into();
        let slot = self.exchange_slot(key);
        self.cached_or_fetch(&slot, Grant::Exchange { subject_token }).await
    }

    /// The slot's token while it is fresh, its last failure for [`FAILURE_HOLD`], else a new
    /// fetch. Callers of one slot queue on its lock, so one fetch serves them all.
    async fn cached_or_fetch(&self, slot: &Slot, grant: Grant<'_>) -> Result<Arc<AccessToken>, UpstreamTokenError> {
        let mut cached = slot.lock().await;
        match &*cached {
            Cached::Token(t) if t.fresh() => return Ok(t.clone()),
            Cached::Failed { at, error } if at.elapsed() < FAILURE_HOLD => return Err(error.clone()),
            _ => {}
        }
        match self.fetch(grant).await {
            Ok(token) => {
                let token = Arc::new(token);
                *cached = Cached::Token(token.clone());
                Ok(token)
            }
            Err(error) => {
                *cached = Cached::Failed { at: Instant::now(), error: error.clone() };
                Err(error)
            }
        }
    }

    /// The upstream answered 401 to a request that carried `authorization` (a value this
    /// source handed out): that token is dropped, so the next call fetches a new one. A token
    /// fetched since (by a concurrent request) is kept.
    pub fn rejected(&self, authorization: &HeaderValue) {
        let drop_if_same = |slot: &Slot| {
            // A slot that is locked is being refilled right now: nothing to drop.
            if let Ok(mut g) = slot.try_lock() {
                if matches!(&*g, Cached::Token(t) if t.is(authorization.as_bytes())) {
                    *g = Cached::Empty;
                }
            }
        };
        drop_if_same(&self.inner.own);
        if self.inner.settings.grant == UpstreamGrant::TokenExchange {
            if let Ok(map) = self.inner.exchanged.lock() {
                map.values().for_each(drop_if_same);
            }
        }
    }

    fn exchange_slot(&self, key: [u8; 32]) -> Slot {
        let Ok(mut map) = self.inner.exchanged.lock() else {
            // A poisoned map only loses caching, never correctness.
            return Slot::default();
        };
        if let Some(slot) = map.get(&key) {
            return slot.clone();
        }
        if map.len() >= self.inner.settings.max_exchange_entries.max(1) {
            // Keep slots being filled and fresh tokens; if that is still too many, start over.
            map.retain(|_, s| s.try_lock().map(|g| matches!(&*g, Cached::Token(t) if t.fresh())).unwrap_or(true));
            if map.len() >= self.inner.settings.max_exchange_entries.max(1) {
                map.clear();
            }
        }
        let slot = Slot::default();
        map.insert(key, slot.clone());
        slot
    }

    async fn fetch(&self, grant: Grant<'_>) -> Result<AccessToken, UpstreamTokenError> {
        let s = &self.inner.settings;
        let scope = s.scope.join(" ");
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(8);
        match grant {
            Grant::ClientCredentials => form.push(("grant_type", "client_credentials")),
            Grant::Exchange { subject_token } => {
                form.push(("grant_type", TOKEN_EXCHANGE_GRANT));
                form.push(("subject_token", subject_token));
                form.push(("subject_token_type", ACCESS_TOKEN_TYPE));
                form.push(("requested_token_type", ACCESS_TOKEN_TYPE));
            }
        }
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(r) = &s.resource {
            form.push(("resource", r));
        }
        if let Some(a) = &s.audience {
            form.push(("audience", a));
        }
        let call = self.inner.http.post_form(
            &self.inner.token_url,
            &form,
            Some((s.client_id.as_str(), s.client_secret.expose())),
        );
        let resp = match tokio::time::timeout(s.request_timeout, call).await {
            Err(_) => {
                return Err(UpstreamTokenError::Timeout {
                    upstream: s.upstream.clone(),
                    token_url: s.token_url.clone(),
                    seconds: s.request_timeout.as_secs(),
                })
            }
            Ok(Err(e)) => {
                return Err(UpstreamTokenError::Unavailable {
                    upstream: s.upstream.clone(),
                    token_url: s.token_url.clone(),
                    detail: e.detail,
                })
            }
            Ok(Ok(resp)) => resp,
        };
        let exchange = matches!(grant, Grant::Exchange { .. });
        let token = self.parse(resp.status, &resp.body, exchange)?;
        tracing::debug!(
            upstream = %s.upstream,
            grant = if exchange { "token_exchange" } else { "client_credentials" },
            expires_in = token.expires_in().as_secs(),
            "obtained an upstream access token"
        );
        Ok(token)
    }

    /// Parses a token endpoint answer (RFC 6749 §5.1 and §5.2, RFC 8693 §2.2).
    fn parse(&self, status: u16, body: &[u8], exchange: bool) -> Result<AccessToken, UpstreamTokenError> {
        let s = &self.inner.settings;
        let invalid = |detail: &str| UpstreamTokenError::InvalidResponse {
            upstream: s.upstream.clone(),
            token_url: s.token_url.clone(),
            detail: detail.to_owned(),
        };
        let json: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
        if status != 200 {
            // RFC 6749 §5.2: 400 (or 401 for client authentication) with `error`.
            if let (true, Some(Value::String(error))) =
                (matches!(status, 400 | 401), json.as_ref().and_then(|j| j.get("error")))
            {
                let description =
                    json.as_ref().and_then(|j| j.get("error_description")).and_then(Value::as_str).map(printable);
                return Err(UpstreamTokenError::Refused {
                    upstream: s.upstream.clone(),
                    client_id: s.client_id.clone(),
                    status,
                    error: printable(error),
                    description,
                });
            }
            return Err(UpstreamTokenError::Unavailable {
                upstream: s.upstream.clone(),
                token_url: s.token_url.clone(),
                detail: format!("the token endpoint answered HTTP {status}"),
            });
        }
        let json = json.ok_or_else(|| invalid("the answer is not a JSON object"))?;
        let value = match json.get("access_token") {
            Some(Value::String(v)) if !v.is_empty() => Zeroizing::new(v.clone()),
            _ => return Err(invalid("`access_token` is missing or empty")),
        };
        // VSCHAR without space: what can follow `Bearer ` in a header.
        if value.len() > MAX_TOKEN_BYTES || !value.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
            return Err(invalid("`access_token` is too long or has characters a header cannot carry"));
        }
        match json.get("token_type").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("bearer") => {}
            Some(_) => {
                return Err(invalid("`token_type` is not `Bearer` (sender-constrained tokens are not supported)"))
            }
            None => return Err(invalid("`token_type` is missing")),
        }
        if exchange {
            match json.get("issued_token_type").and_then(Value::as_str) {
                Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
                Some(_) => return Err(invalid("`issued_token_type` is not an access token")),
                None => return Err(invalid("`issued_token_type` is missing (RFC 8693 §2.2.1)")),
            }
        }
        // An integer; some servers send it as a string of digits.
        let expires_in = match json.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(t)) => t.parse::<u64>().ok(),
            _ => return Err(invalid("`expires_in` is missing, so Moat cannot know when to replace the token")),
        };
        let lifetime = match expires_in {
            Some(secs) if secs > 0 => Duration::from_secs(secs).min(MAX_CACHE_LIFETIME),
            _ => return Err(invalid("`expires_in` is not a positive number of seconds")),
        };
        let mut header = HeaderValue::from_str(&format!("Bearer {}", value.as_str()))
            .map_err(|_| invalid("`access_token` cannot be sent in a header"))?;
        header.set_sensitive(true);
        let now = Instant::now();
        let margin = s.refresh_margin.min(lifetime / 2);
        Ok(AccessToken { value, header, expires_at: now + lifetime, refresh_at: now + lifetime - margin })
    }
}

/// A server-provided string made safe to repeat in one log line.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_DESCRIPTION_CHARS).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::http_client::{BoxFuture, FetchError, HttpResponse};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers every token request with `body`, after `delay`, counting calls and keeping the
    /// last form.
    struct Fake {
        status: u16,
        body: String,
        delay: Duration,
        calls: AtomicUsize,
        last_form: Mutex<Vec<(String, String)>>,
    }

    impl HttpClient for Fake {
        fn get<'a>(&'a self, _url: &'a Url) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
            Box::pin(async { Err(FetchError { url: String::new(), detail: "no".into() }) })
        }
        fn post_form<'a>(
            &'a self,
            _url: &'a Url,
            form: &'a [(&'a str, &'a str)],
            basic_auth: Option<(&'a str, &'a str)>,
        ) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            *self.last_form.lock().unwrap() = form.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            assert_eq!(basic_auth, Some(("moat", "s3cret")));
            let body = self.body.replace("{n}", &n.to_string());
            let status = self.status;
            let delay = self.delay;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(HttpResponse { status, body: body.into_bytes() })
            })
        }
    }

    fn source(status: u16, body: &str, delay: Duration, grant: UpstreamGrant) -> (UpstreamTokenSource, Arc<Fake>) {
        let fake = Arc::new(Fake {
            status,
            body: body.to_owned(),
            delay,
            calls: AtomicUsize::new(0),
            last_form: Mutex::new(Vec::new()),
        });
        let mut s = UpstreamTokenSettings::new("api", "https://as.example/token", "moat", ClientSecret::new("s3cret"));
        s.grant = grant;
        s.scope = vec!["mcp:read".into(), "mcp:write".into()];
        s.resource = Some("https://api.example/mcp".into());
        (UpstreamTokenSource::new(s, fake.clone()).unwrap(), fake)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    const GOOD: &str = r#"{"access_token":"tok-{n}","token_type":"Bearer","expires_in":600}"#;

    #[test]
    fn concurrent_callers_share_one_fetch() {
        let (src, fake) = source(200, GOOD, Duration::from_millis(100), UpstreamGrant::ClientCredentials);
        let rt = rt();
        let tokens = rt.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    tokio::spawn({
                        let s = src.clone();
                        async move { s.token().await }
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap().unwrap().expose().to_owned());
            }
            out
        });
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert!(tokens.iter().all(|t| t == "tok-0"));
        let form = fake.last_form.lock().unwrap().clone();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some("client_credentials"));
        assert_eq!(get("scope"), Some("mcp:read mcp:write"));
        assert_eq!(get("resource"), Some("https://api.example/mcp"));
    }

    #[test]
    fn a_failure_is_shared_by_the_callers_waiting_for_it() {
        let (src, fake) = source(503, "busy", Duration::from_millis(100), UpstreamGrant::ClientCredentials);
        let rt = rt();
        let failed = rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let s = src.clone();
                    tokio::spawn(async move { s.token().await })
                })
                .collect();
            let mut n = 0;
            for t in tasks {
                n += usize::from(matches!(t.await.unwrap(), Err(UpstreamTokenError::Unavailable { .. })));
            }
            n
        });
        assert_eq!(failed, 8);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "one request, not one per waiting caller");
        // Within the hold, a new call gets the same error without a request.
        assert!(rt.block_on(src.token()).is_err());
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_rejected_token_is_replaced_but_a_newer_one_is_kept() {
        let (src, fake) = source(200, GOOD, Duration::ZERO, UpstreamGrant::ClientCredentials);
        let rt = rt();
        let first = rt.block_on(src.token()).unwrap();
        src.rejected(first.authorization());
        let second = rt.block_on(src.token()).unwrap();
        assert_eq!(second.expose(), "tok-1");
        // A late 401 for the old token does not drop the new one.
        src.rejected(first.authorization());
        assert_eq!(rt.block_on(src.token()).unwrap().expose(), "tok-1");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn answers_are_parsed_strictly() {
        let cases = [
            (r#"{"token_type":"Bearer","expires_in":60}"#, "`access_token` is missing"),
            (r#"{"access_token":"a b","token_type":"Bearer","expires_in":60}"#, "characters a header cannot carry"),
            (r#"{"access_token":"t","token_type":"DPoP","expires_in":60}"#, "is not `Bearer`"),
            (r#"{"access_token":"t","expires_in":60}"#, "`token_type` is missing"),
            (r#"{"access_token":"t","token_type":"bearer"}"#, "`expires_in` is missing"),
            (r#"{"access_token":"t","token_type":"bearer","expires_in":0}"#, "not a positive number"),
            (r#"{"access_token":"t","token_type":"bearer","expires_in":-5}"#, "not a positive number"),
            ("<html>", "not a JSON object"),
        ];
        let rt = rt();
        for (body, want) in cases {
            let (src, _) = source(200, body, Duration::ZERO, UpstreamGrant::ClientCredentials);
            let e = rt.block_on(src.token()).unwrap_err();
            assert!(matches!(e, UpstreamTokenError::InvalidResponse { .. }), "{body}: {e}");
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
        // Lowercase `bearer` and a string `expires_in` are accepted.
        let (src, _) = source(
            200,
            r#"{"access_token":"t","token_type":"bearer","expires_in":"3599"}"#,
            Duration::ZERO,
            UpstreamGrant::ClientCredentials,
        );
        assert!(rt.block_on(src.token()).unwrap().expires_in() > Duration::from_secs(3500));
    }

    #[test]
    fn oauth_errors_are_reported_with_help_and_without_secrets() {
        let rt = rt();
        let (src, _) = source(
            401,
            r#"{"error":"invalid_client","error_description":"client authentication failed\n"}"#,
            Duration::ZERO,
            UpstreamGrant::ClientCredentials,
        );
        let e = rt.block_on(src.token()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the authorization server refused client `moat` a token for upstream `api`: `invalid_client` (client authentication failed)"
        );
        assert!(e.help().unwrap().contains("client_secret"));
        assert!(!format!("{e:?}").contains("s3cret"));
        let (src, _) = source(503, "busy", Duration::ZERO, UpstreamGrant::ClientCredentials);
        assert!(matches!(rt.block_on(src.token()), Err(UpstreamTokenError::Unavailable { .. })));
    }

    #[test]
    fn a_slow_token_endpoint_times_out() {
        let (src, _) = source(200, GOOD, Duration::from_secs(5), UpstreamGrant::ClientCredentials);
        let mut s = src.inner.settings.clone();
        s.request_timeout = Duration::from_millis(50);
        let src = UpstreamTokenSource::new(s, src.inner.http.clone()).unwrap();
        assert!(matches!(rt().block_on(src.token()), Err(UpstreamTokenError::Timeout { .. })));
    }

    #[test]
    fn exchanged_tokens_are_cached_per_subject_and_bounded() {
        let body = r#"{"access_token":"x-{n}","token_type":"Bearer","expires_in":600,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#;
        let (src, fake) = source(200, body, Duration::ZERO, UpstreamGrant::TokenExchange);
        let rt = rt();
        let a = rt.block_on(src.exchange_str("alice-token")).unwrap();
        let form = fake.last_form.lock().unwrap().clone();
        assert!(form.contains(&("grant_type".into(), TOKEN_EXCHANGE_GRANT.into())));
        assert!(form.contains(&("subject_token".into(), "alice-token".into())));
        assert!(form.contains(&("subject_token_type".into(), ACCESS_TOKEN_TYPE.into())));
        assert_eq!(rt.block_on(src.exchange_str("alice-token")).unwrap().expose(), a.expose());
        let b = rt.block_on(src.exchange_str("bob-token")).unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        // The map holds hashes, never the subject tokens.
        let keys: Vec<[u8; 32]> = src.inner.exchanged.lock().unwrap().keys().copied().collect();
        assert!(keys.contains(&<[u8; 32]>::from(Sha256::digest(b"alice-token"))));
        // Bounded: with room for 2 fresh entries, a third subject starts over.
        let mut s = src.inner.settings.clone();
        s.max_exchange_entries = 2;
        let small = UpstreamTokenSource::new(s, fake.clone()).unwrap();
        for who in ["a", "b", "c"] {
            rt.block_on(small.exchange_str(who)).unwrap();
        }
        assert_eq!(small.inner.exchanged.lock().unwrap().len(), 1);
        // Missing `issued_token_type` is refused; client credentials cannot exchange.
        let (src, _) = source(200, GOOD, Duration::ZERO, UpstreamGrant::TokenExchange);
        assert!(rt.block_on(src.exchange_str("t")).unwrap_err().to_string().contains("issued_token_type"));
        let (src, _) = source(200, GOOD, Duration::ZERO, UpstreamGrant::ClientCredentials);
        assert!(matches!(rt.block_on(src.exchange_str("t")), Err(UpstreamTokenError::Settings { .. })));
    }

    #[test]
    fn nothing_secret_is_printed() {
        let (src, _) = source(200, GOOD, Duration::ZERO, UpstreamGrant::ClientCredentials);
        let t = rt().block_on(src.token()).unwrap();
        let shown = format!("{src:?} {t:?} {:?}", t.authorization());
        assert!(!shown.contains("s3cret") && !shown.contains("tok-0"), "{shown}");
        assert!(t.authorization().is_sensitive());
    }

    #[test]
    fn plain_http_token_url_is_refused_off_loopback() {
        let fake = Arc::new(Fake {
            status: 200,
            body: GOOD.into(),
            delay: Duration::ZERO,
            calls: AtomicUsize::new(0),
            last_form: Mutex::new(Vec::new()),
        });
        let s = UpstreamTokenSettings::new("api", "http://as.example/token", "moat", ClientSecret::new("s3cret"));
        assert!(matches!(UpstreamTokenSource::new(s, fake.clone()), Err(UpstreamTokenError::Settings { .. })));
        let s = UpstreamTokenSettings::new("api", "http://127.0.0.1:9/token", "moat", ClientSecret::new("s3cret"));
        assert!(UpstreamTokenSource::new(s, fake).is_ok());
    }
}
