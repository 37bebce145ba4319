//! RFC 7662 token introspection for opaque access tokens, with a bounded cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::claims::ClaimMapping;
use crate::error::InvalidTokenReason;
use crate::http_client::HttpClient;
use crate::principal::{AuthMethod, Principal};
use crate::settings::ClientSecret;

/// Most cached answers; when full, expired ones are dropped, then everything.
const MAX_CACHE_ENTRIES: usize = 10_000;

pub(crate) enum IntrospectionError {
    Invalid(InvalidTokenReason),
    Unavailable(String),
}

struct Cached {
    principal: Principal,
    until: Instant,
}

pub(crate) struct Introspector {
    http: Arc<dyn HttpClient>,
    url: Url,
    client_id: String,
    client_secret: ClientSecret,
    issuer: Option<String>,
    audience: String,
    leeway_seconds: u64,
    cache_ttl: Duration,
    mapping: ClaimMapping,
    /// Keyed by SHA-256 of the token, so the cache holds no usable token.
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

pub(crate) struct IntrospectorConfig {
    pub url: Url,
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub issuer: Option<String>,
    pub audience: String,
    pub leeway_seconds: u64,
    pub cache_ttl: Duration,
    pub mapping: ClaimMapping,
}

impl Introspector {
    pub(crate) fn new(http: Arc<dyn HttpClient>, c: IntrospectorConfig) -> Self {
        Introspector {
            http,
            url: c.url,
            client_id: c.client_id,
            client_secret: c.client_secret,
            issuer: c.issuer,
            audience: c.audience,
            leeway_seconds: c.leeway_seconds,
            cache_ttl: c.cache_ttl,
            mapping: c.mapping,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn introspect(&self, token: &str) -> Result<Principal, IntrospectionError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Ok(cache) = self.cache.lock() {
            if let Some(hit) = cache.get(&key) {
                if Instant::now() < hit.until {
                    return Ok(hit.principal.clone());
                }
            }
        }
        let form = [("token", token), ("token_type_hint", "access_token")];
        let resp = self
            .http
            .post_form(&self.url, &form, Some((&self.client_id, self.client_secret.expose())))
            .await
            .map_err(|e| IntrospectionError::Unavailable(e.to_string()))?;
        if resp.status != 200 {
            return Err(IntrospectionError::Unavailable(format!("introspection answered status {}", resp.status)));
        }
        let answer: Map<String, Value> = serde_json::from_slice(&resp.body)
            .map_err(|_| IntrospectionError::Unavailable("introspection answer is not a json object".into()))?;
        let (principal, exp) = self.check(&answer).map_err(IntrospectionError::Invalid)?;
        self.remember(key, &principal, exp);
        Ok(principal)
    }

    /// Applies to an introspection answer the same rules as to a JWT: active, issuer,
    /// audience (required: the MCP spec makes audience binding mandatory), `exp`, `nbf`.
    fn check(&self, answer: &Map<String, Value>) -> Result<(Principal, Option<u64>), InvalidTokenReason> {
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(InvalidTokenReason::Inactive);
        }
        if let Some(expected) = &self.issuer {
            match answer.get("iss") {
                Some(Value::String(iss)) if iss == expected => {}
                None => {} // RFC 7662 makes `iss` optional; the endpoint itself is the issuer's.
                _ => return Err(InvalidTokenReason::WrongIssuer),
            }
        }
        let aud_ok = match answer.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(self.audience.as_str())),
            _ => return Err(InvalidTokenReason::MissingClaim("aud")),
        };
        if !aud_ok {
            return Err(InvalidTokenReason::WrongAudience);
        }
        let now = unix_now();
        let exp = match answer.get("exp") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or(InvalidTokenReason::MissingClaim("exp"))?),
        };
        if exp.is_some_and(|exp| exp.saturating_add(self.leeway_seconds) < now) {
            return Err(InvalidTokenReason::Expired);
        }
        if let Some(nbf) = answer.get("nbf") {
            let nbf = nbf.as_u64().ok_or(InvalidTokenReason::MissingClaim("nbf"))?;
            if nbf > now.saturating_add(self.leeway_seconds) {
                return Err(InvalidTokenReason::NotYetValid);
            }
        }
        let mut principal = self.mapping.principal(answer, AuthMethod::Introspection)?;
        if principal.issuer.is_none() {
            principal.issuer = self.issuer.clone();
        }
        Ok((principal, exp))
    }

    /// Caches an active answer until the token expires or `cache_ttl` passes, whichever is
    /// first. Answers without `exp` are not cached.
    fn remember(&self, key: [u8; 32], principal: &Principal, exp: Option<u64>) {
        let Some(exp) = exp else { return };
        let left = Duration::from_secs(exp.saturating_sub(unix_now()));
        let ttl = left.min(self.cache_ttl);
        if ttl.is_zero() {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else { return };
        if cache.len() >= MAX_CACHE_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, Cached { principal: principal.clone(), until: Instant::now() + ttl });
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::http_client::{BoxFuture, FetchError, HttpResponse};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        answer: Value,
        calls: AtomicUsize,
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
            self.calls.fetch_add(1, Ordering::SeqCst);
            let ok = basic_auth == Some(("moat", "s3cret")) && form.first().map(|f| f.0) == Some("token");
            let body = if ok { self.answer.to_string() } else { "{}".into() };
            Box::pin(async move { Ok(HttpResponse { status: if ok { 200 } else { 401 }, body: body.into_bytes() }) })
        }
    }

    fn introspector(answer: Value) -> (Introspector, Arc<Fake>) {
        let fake = Arc::new(Fake { answer, calls: AtomicUsize::new(0) });
        let url = Url::parse("https://as.example/introspect").unwrap_or_else(|_| unreachable!());
        let i = Introspector::new(
            fake.clone(),
            IntrospectorConfig {
                url,
                client_id: "moat".into(),
                client_secret: ClientSecret::new("s3cret"),
                issuer: Some("https://as.example".into()),
                audience: "https://moat.example/mcp".into(),
                leeway_seconds: 60,
                cache_ttl: Duration::from_secs(300),
                mapping: ClaimMapping::new(None, None, None),
            },
        );
        (i, fake)
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(f))
            .unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn active_token_is_cached_until_it_expires() {
        let exp = unix_now() + 120;
        let (i, fake) = introspector(serde_json::json!({
            "active": true, "sub": "alice", "aud": "https://moat.example/mcp",
            "iss": "https://as.example", "exp": exp, "scope": "mcp:read"
        }));
        let p = run(i.introspect("tok")).ok();
        assert_eq!(p.as_ref().map(|p| p.subject.as_str()), Some("alice"));
        assert_eq!(p.as_ref().map(|p| p.auth_method), Some(AuthMethod::Introspection));
        let _ = run(i.introspect("tok"));
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        let _ = run(i.introspect("other"));
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn answers_are_checked_like_jwts() {
        let now = unix_now();
        let cases = [
            (serde_json::json!({"active": false}), InvalidTokenReason::Inactive),
            (serde_json::json!({"active": "true", "aud": "https://moat.example/mcp"}), InvalidTokenReason::Inactive),
            (serde_json::json!({"active": true, "sub": "a"}), InvalidTokenReason::MissingClaim("aud")),
            (
                serde_json::json!({"active": true, "sub": "a", "aud": ["https://other.example"]}),
                InvalidTokenReason::WrongAudience,
            ),
            (
                serde_json::json!({"active": true, "sub": "a", "aud": "https://moat.example/mcp", "iss": "https://evil.example"}),
                InvalidTokenReason::WrongIssuer,
            ),
            (
                serde_json::json!({"active": true, "sub": "a", "aud": "https://moat.example/mcp", "exp": now - 3600}),
                InvalidTokenReason::Expired,
            ),
            (
                serde_json::json!({"active": true, "sub": "a", "aud": "https://moat.example/mcp", "nbf": now + 3600}),
                InvalidTokenReason::NotYetValid,
            ),
        ];
        for (answer, want) in cases {
            let (i, _) = introspector(answer.clone());
            match run(i.introspect("tok")) {
                Err(IntrospectionError::Invalid(got)) => assert_eq!(got, want, "{answer}"),
                _ => panic!("{answer} was not refused"),
            }
        }
    }
}
