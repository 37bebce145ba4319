//! The issuer's signing keys: discovery (RFC 8414 / OpenID Connect), JWKS parsing, caching,
//! and rate-limited refetch on an unknown `kid`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde_json::Value;

use crate::http_client::HttpClient;
use crate::settings::require_https_or_loopback;

/// Most keys we keep from one JWKS.
const MAX_KEYS: usize = 64;

/// The kind of public key, which fixes the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    Ed25519,
}

/// One public key from the JWKS, ready to verify.
pub(crate) struct VerifierKey {
    kind: KeyKind,
    /// The JWK's `alg`, when it declares one: then only that algorithm is accepted.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl VerifierKey {
    /// INVARIANT: RSA keys verify RS256/PS256, P-256 keys ES256, Ed25519 keys EdDSA, and a key
    /// that declares `alg` verifies only that. This is what stops a token from choosing how a
    /// key is used (the HS256-with-the-public-key attack never even reaches here, but a PS256
    /// token against a key published for RS256 does).
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        if self.alg.is_some_and(|declared| declared != alg) {
            return false;
        }
        matches!(
            (self.kind, alg),
            (KeyKind::Rsa, Algorithm::RS256 | Algorithm::PS256)
                | (KeyKind::EcP256, Algorithm::ES256)
                | (KeyKind::Ed25519, Algorithm::EdDSA)
        )
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// Keys by `kid`, plus the keys without one.
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<VerifierKey>>,
    without_kid: Vec<Arc<VerifierKey>>,
}

impl KeySet {
    /// The key for a token. A token without `kid` is accepted only when exactly one key can
    /// verify its algorithm (no trying every key).
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifierKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => {
                let mut candidates = self.by_kid.values().chain(self.without_kid.iter()).filter(|k| k.accepts(alg));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(Arc::clone(only)),
                    _ => None,
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }
}

/// Parses a JWKS document, keeping the signature keys we can use and skipping the others
/// (encryption keys, P-384, RSA shorter than 2048 bits…) instead of failing the whole set.
///
/// # Errors
/// When the document is not a JSON object with a `keys` array.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "jwks is not json".to_owned())?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or_else(|| "jwks has no `keys` array".to_owned())?;
    let mut set = KeySet::default();
    for jwk in keys.iter().take(MAX_KEYS) {
        let Some(key) = parse_jwk(jwk) else { continue };
        let key = Arc::new(key);
        match jwk.get("kid").and_then(Value::as_str) {
            Some(kid) => {
                set.by_kid.insert(kid.to_owned(), key);
            }
            None => set.without_kid.push(key),
        }
    }
    Ok(set)
}

fn parse_jwk(jwk: &Value) -> Option<VerifierKey> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    if s("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops").and_then(Value::as_array) {
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return None;
        }
    }
    let alg = match s("alg") {
        None => None,
        Some("RS256") => Some(Algorithm::RS256),
        Some("PS256") => Some(Algorithm::PS256),
        Some("ES256") => Some(Algorithm::ES256),
        Some("EdDSA") => Some(Algorithm::EdDSA),
        Some(_) => return None,
    };
    let (kind, key) = match (s("kty")?, s("crv")) {
        ("RSA", _) => {
            let n = s("n")?;
            let modulus = URL_SAFE_NO_PAD.decode(n).ok()?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant < 256 {
                return None; // below 2048 bits
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_components(n, s("e")?).ok()?)
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (s("x")?, s("y")?);
            let ok = |c: &str| URL_SAFE_NO_PAD.decode(c).ok().is_some_and(|b| b.len() == 32);
            if !ok(x) || !ok(y) {
                return None;
            }
            (KeyKind::EcP256, DecodingKey::from_ec_components(x, y).ok()?)
        }
        ("OKP", Some("Ed25519")) => {
            let x = s("x")?;
            if URL_SAFE_NO_PAD.decode(x).ok()?.len() != 32 {
                return None;
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_components(x).ok()?)
        }
        _ => return None,
    };
    let key = VerifierKey { kind, alg, key };
    // A declared algorithm that does not fit the key type makes the key unusable.
    if let Some(a) = alg {
        if !key.accepts(a) {
            return None;
        }
    }
    Some(key)
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub(crate) enum JwksSource {
    /// `[auth] jwks_uri`.
    Configured(Url),
    /// Discover `jwks_uri` from the issuer's metadata.
    Discover { issuer: String },
}

/// Why a key could not be produced.
#[derive(Debug)]
pub(crate) enum KeyLookupError {
    /// The JWKS was fetched (or fetching is rate-limited) and has no such key.
    Unknown,
    /// No JWKS could be fetched at all.
    Unavailable(String),
}

struct CacheState {
    keys: Arc<KeySet>,
    jwks_uri: Option<Url>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// The JWKS cache. Reads take a short read lock and clone an `Arc`; fetches are serialized by
/// an async mutex so that a burst of tokens with an unknown `kid` causes one fetch, and at
/// most one per `refetch_interval`.
pub(crate) struct JwksCache {
    http: Arc<dyn HttpClient>,
    source: JwksSource,
    refetch_interval: Duration,
    max_age: Duration,
    state: RwLock<CacheState>,
    fetch_lock: tokio::sync::Mutex<()>,
    /// Bumped by every successful fetch; results verified with older keys are not reused.
    generation: AtomicU64,
}

impl JwksCache {
    pub(crate) fn new(
        http: Arc<dyn HttpClient>,
        source: JwksSource,
        refetch_interval: Duration,
        max_age: Duration,
    ) -> Self {
        let jwks_uri = match &source {
            JwksSource::Configured(u) => Some(u.clone()),
            JwksSource::Discover { .. } => None,
        };
        JwksCache {
            http,
            source,
            refetch_interval,
            max_age,
            state: RwLock::new(CacheState {
                keys: Arc::new(KeySet::default()),
                jwks_uri,
                fetched_at: None,
                last_attempt: None,
            }),
            fetch_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    /// Changes whenever the key set is replaced.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The key to verify a token with `kid` and `alg`.
    pub(crate) async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<VerifierKey>, KeyLookupError> {
        let (found, fresh, have_keys) = self.lookup(kid, alg);
        if let (Some(key), true) = (&found, fresh) {
            return Ok(Arc::clone(key));
        }
        // Stale, empty, or unknown kid: fetch if allowed.
        if self.may_fetch() {
            let _guard = self.fetch_lock.lock().await;
            // Another task may have fetched while we waited.
            let (again, fresh_now, _) = self.lookup(kid, alg);
            if let (Some(key), true) = (&again, fresh_now) {
                return Ok(Arc::clone(key));
            }
            if self.may_fetch() {
                if let Err(e) = self.fetch().await {
                    tracing::warn!(error = %e, "could not refresh the issuer's signing keys");
                    if let Some(key) = again.or(found) {
                        return Ok(key); // keep using the keys we had
                    }
                    if !self.has_keys() {
                        return Err(KeyLookupError::Unavailable(e));
                    }
                    return Err(KeyLookupError::Unknown);
                }
            }
            let (after, _, _) = self.lookup(kid, alg);
            return after.ok_or(KeyLookupError::Unknown);
        }
        found.ok_or(if have_keys {
            KeyLookupError::Unknown
        } else {
            KeyLookupError::Unavailable("signing keys not fetched yet (rate-limited)".into())
        })
    }

    /// Fetches the keys now (at start, so configuration errors show early).
    pub(crate) async fn prefetch(&self) -> Result<usize, String> {
        let _guard = self.fetch_lock.lock().await;
        self.fetch().await?;
        Ok(self.state.read().map(|s| s.keys.len()).unwrap_or(0))
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> (Option<Arc<VerifierKey>>, bool, bool) {
        let Ok(state) = self.state.read() else {
            return (None, false, false);
        };
        let fresh = state.fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
        (state.keys.find(kid, alg), fresh, state.keys.len() > 0)
    }

    fn has_keys(&self) -> bool {
        self.state.read().map(|s| s.keys.len() > 0).unwrap_or(false)
    }

    /// A fetch is allowed when none was attempted within `refetch_interval` (whether it is
    /// wanted for an unknown `kid` or because the cache is older than `max_age`).
    fn may_fetch(&self) -> bool {
        let Ok(state) = self.state.read() else { return false };
        state.last_attempt.is_none_or(|t| t.elapsed() >= self.refetch_interval)
    }

    async fn fetch(&self) -> Result<(), String> {
        let known_uri = {
            let mut state = self.state.write().map_err(|_| "key cache poisoned".to_owned())?;
            state.last_attempt = Some(Instant::now());
            state.jwks_uri.clone()
        };
        let jwks_uri = match (known_uri, &self.source) {
            (Some(u), _) => u,
            (None, JwksSource::Discover { issuer }) => discover_jwks_uri(&*self.http, issuer).await?,
            (None, JwksSource::Configured(u)) => u.clone(),
        };
        let resp = self.http.get(&jwks_uri).await.map_err(|e| e.to_string())?;
        if resp.status != 200 {
            return Err(format!("jwks at `{jwks_uri}` answered status {}", resp.status));
        }
        let keys = parse_jwks(&resp.body)?;
        tracing::debug!(keys = keys.len(), jwks_uri = %jwks_uri, "fetched signing keys");
        let mut state = self.state.write().map_err(|_| "key cache poisoned".to_owned())?;
        state.keys = Arc::new(keys);
        state.jwks_uri = Some(jwks_uri);
        state.fetched_at = Some(Instant::now());
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The metadata URLs to try for `issuer`, in order: RFC 8414 path-inserted, OpenID Connect
/// path-inserted, OpenID Connect appended (for an issuer with a path, such as Keycloak's
/// `/realms/x` or Entra's `/{tenant}/v2.0`); RFC 8414 then OpenID Connect at the root otherwise.
pub(crate) fn discovery_urls(issuer: &Url) -> Vec<String> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    }
}

/// Finds `jwks_uri` in the issuer's metadata. The metadata's `issuer` must equal the configured
/// one exactly (RFC 8414 §3.3, OIDC Discovery §4.3), and `jwks_uri` must be https (or loopback).
async fn discover_jwks_uri(http: &dyn HttpClient, issuer: &str) -> Result<Url, String> {
    let issuer_url = Url::parse(issuer).map_err(|_| format!("issuer `{issuer}` is not a url"))?;
    let mut problems = Vec::new();
    for candidate in discovery_urls(&issuer_url) {
        let Ok(url) = Url::parse(&candidate) else { continue };
        let resp = match http.get(&url).await {
            Ok(r) => r,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        if resp.status != 200 {
            problems.push(format!("`{candidate}` answered status {}", resp.status));
            continue;
        }
        let Ok(meta) = serde_json::from_slice::<Value>(&resp.body) else {
            problems.push(format!("`{candidate}` is not json"));
            continue;
        };
        if meta.get("issuer").and_then(Value::as_str) != Some(issuer) {
            problems.push(format!("`{candidate}` names a different issuer"));
            continue;
        }
        let Some(jwks) = meta.get("jwks_uri").and_then(Value::as_str) else {
            problems.push(format!("`{candidate}` has no `jwks_uri`"));
            continue;
        };
        return require_https_or_loopback("jwks_uri", jwks).map_err(|e| e.to_string());
    }
    Err(format!("discovery for issuer `{issuer}` failed: {}", problems.join("; ")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_follow_rfc8414_and_oidc() {
        let u = |s: &str| Url::parse(s).unwrap_or_else(|_| Url::parse("https://x").unwrap_or_else(|_| unreachable!()));
        assert_eq!(
            discovery_urls(&u("https://login.microsoftonline.com/tid/v2.0")),
            vec![
                "https://login.microsoftonline.com/.well-known/oauth-authorization-server/tid/v2.0",
                "https://login.microsoftonline.com/.well-known/openid-configuration/tid/v2.0",
                "https://login.microsoftonline.com/tid/v2.0/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            discovery_urls(&u("https://as.example/")),
            vec![
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn jwks_keeps_usable_signature_keys_only() {
        let n = URL_SAFE_NO_PAD.encode([0xC1u8; 256]);
        let short_n = URL_SAFE_NO_PAD.encode([0xC1u8; 128]);
        let xy = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": n, "e": "AQAB", "alg": "RS256", "use": "sig"},
            {"kty": "RSA", "kid": "enc", "n": n, "e": "AQAB", "alg": "RSA-OAEP", "use": "enc"},
            {"kty": "RSA", "kid": "short", "n": short_n, "e": "AQAB"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": xy, "y": xy},
            {"kty": "EC", "kid": "p256", "crv": "P-256", "x": xy, "y": xy},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": xy},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "lying", "n": n, "e": "AQAB", "alg": "ES256"},
            "garbage"
        ]});
        let set = parse_jwks(doc.to_string().as_bytes()).unwrap_or_default();
        let mut kids: Vec<_> = set.by_kid.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, vec!["ed", "p256", "rsa"]);
        let rsa = set.find(Some("rsa"), Algorithm::RS256);
        assert!(rsa.as_ref().is_some_and(|k| k.accepts(Algorithm::RS256)));
        // Declared RS256: a PS256 token may not use it.
        assert!(rsa.is_some_and(|k| !k.accepts(Algorithm::PS256)));
        assert!(set.find(Some("hmac"), Algorithm::RS256).is_none());
        // No kid and two candidates for EdDSA? Only one: found.
        assert!(set.find(None, Algorithm::EdDSA).is_some());
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"[").is_err());
    }
}
