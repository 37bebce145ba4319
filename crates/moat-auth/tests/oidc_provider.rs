//! moat-auth against a real authorization server: `oidc-provider` (npm, pinned in
//! `tests/peers/oidc/`), started on loopback by these tests.
//!
//! Real tokens come from the provider (client credentials with a resource indicator); bad
//! tokens are forged here with real crypto (the provider's own RSA private key, which its test
//! hook hands out) so that each one fails for exactly the reason its test names.
//!
//! Moat as a client of the same provider: its own upstream tokens by client credentials and by
//! RFC 8693 token exchange (`moat_auth::UpstreamTokenSource`), checked as an upstream would.
//!
//! Skipped, with the reason printed, when node or oidc-provider is missing, unless
//! `MOAT_REQUIRE_PEERS=1`, which turns a missing peer into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use moat_auth::{
    AuthError, AuthMethod, Authenticator, BoxFuture, ClientSecret, FetchError, HttpClient, HttpResponse,
    InvalidTokenReason, OAuthSettings, OAuthValidator, ReqwestClient, SubjectToken, UpstreamGrant, UpstreamTokenError,
    UpstreamTokenSettings, UpstreamTokenSource,
};
use reqwest::Url;
use serde_json::{json, Value};

/// The resource (Moat's public URL) the provider issues tokens for.
const AUDIENCE: &str = "https://moat.test/mcp";
const OTHER_AUDIENCE: &str = "https://other.example/mcp";

// ---------------------------------------------------------------------------------------------
// The provider process

struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/oidc")
}

/// `node` to use: `$MOAT_NODE22` (a node 22 binary, or a folder with `bin/node`), else `node`.
fn node_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOAT_NODE22").map(PathBuf::from) {
        for candidate in [p.clone(), p.join("bin/node"), p.join("node")] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let ok = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    ok.ok().filter(|s| s.success()).map(|_| PathBuf::from("node"))
}

fn provider_installed() -> bool {
    let mut roots = vec![peer_dir().join("node_modules")];
    if let Some(m) = std::env::var_os("MOAT_NODE_MODULES") {
        roots.push(PathBuf::from(m));
    }
    roots.iter().any(|r| r.join("oidc-provider/package.json").is_file())
}

/// Starts a provider, or explains why not: `Err(reason)`.
fn start_provider() -> Result<Provider, String> {
    let node = node_binary().ok_or("node is not on PATH and MOAT_NODE22 is not set")?;
    if !provider_installed() {
        return Err(format!(
            "oidc-provider is not installed (run `npm ci` in {} or set MOAT_NODE_MODULES)",
            peer_dir().display()
        ));
    }
    let mut child = Command::new(node)
        .arg(peer_dir().join("provider.mjs"))
        .arg("0")
        .env("MOAT_OIDC_AUDIENCE", AUDIENCE)
        .stdin(Stdio::piped()) // the provider exits when this closes (test process ends)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start node: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let Some(issuer) = v["issuer"].as_str() {
                    let _ = tx.send(issuer.to_owned());
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(issuer) => Ok(Provider { child, issuer }),
        Err(_) => {
            let _ = child.kill();
            Err("oidc-provider did not start within 30 s".into())
        }
    }
}

/// The provider shared by the tests that do not rotate keys.
fn shared() -> Option<&'static Provider> {
    static SHARED: OnceLock<Result<Provider, String>> = OnceLock::new();
    match SHARED.get_or_init(start_provider) {
        Ok(p) => Some(p),
        Err(reason) => {
            skip(reason);
            None
        }
    }
}

fn skip(reason: &str) {
    if std::env::var("MOAT_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("MOAT_REQUIRE_PEERS=1 but the oidc-provider peer is unavailable: {reason}");
    }
    eprintln!("SKIPPED: oidc-provider peer unavailable: {reason}");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Talking to the provider

async fn client_credentials(issuer: &str, client: (&str, &str), scope: &str, resource: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[("grant_type", "client_credentials"), ("scope", scope), ("resource", resource)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "token request failed: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn jwt_for(issuer: &str, scope: &str, resource: &str) -> String {
    client_credentials(issuer, ("moat-cc", "moat-cc-secret"), scope, resource).await
}

struct ProviderKey {
    kid: String,
    private_pem: String,
    public_pem: String,
}

async fn provider_keys(issuer: &str) -> Vec<ProviderKey> {
    let v: Value = reqwest::get(format!("{issuer}/__test/keys")).await.unwrap().json().await.unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| ProviderKey {
            kid: k["kid"].as_str().unwrap().into(),
            private_pem: k["private_pem"].as_str().unwrap().into(),
            public_pem: k["public_pem"].as_str().unwrap().into(),
        })
        .collect()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn good_claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "sub": "forged-but-valid", "aud": AUDIENCE, "client_id": "moat-cc",
        "iat": now(), "exp": now() + 300, "scope": "mcp:read",
    })
}

/// Signs `claims` with the provider's RSA key (RS256), as the provider would.
fn sign_rs256(key: &ProviderKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".into());
    let enc = EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &enc).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The validator under test

/// Counts JWKS fetches through the real reqwest client.
struct Counting {
    inner: ReqwestClient,
    jwks_gets: AtomicUsize,
}

impl HttpClient for Counting {
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        if url.path() == "/jwks" {
            self.jwks_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get(url)
    }
    fn post_form<'a>(
        &'a self,
        url: &'a Url,
        form: &'a [(&'a str, &'a str)],
        basic_auth: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        self.inner.post_form(url, form, basic_auth)
    }
}

fn counting() -> Arc<Counting> {
    Arc::new(Counting { inner: ReqwestClient::new().unwrap(), jwks_gets: AtomicUsize::new(0) })
}

fn settings(issuer: &str) -> OAuthSettings {
    let mut s = OAuthSettings::new(AUDIENCE, Some(issuer.to_owned()));
    s.required_scopes = vec!["mcp:read".into()];
    s
}

fn validator(s: OAuthSettings, http: Arc<dyn HttpClient>) -> OAuthValidator {
    OAuthValidator::new(s, http).unwrap()
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    h
}

fn refused_because(result: Result<moat_auth::Principal, AuthError>) -> InvalidTokenReason {
    match result {
        Err(e) => {
            let parts = e.into_response_parts();
            assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{e}");
            let www = parts.www_authenticate.unwrap();
            assert!(www.to_str().unwrap().starts_with("Bearer error=\"invalid_token\""), "{www:?}");
            e.invalid_token_reason().cloned().unwrap()
        }
        Ok(p) => panic!("token accepted: {p:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The cases

#[test]
fn no_token_gets_401_pointing_at_the_metadata() {
    let Some(p) = shared() else { return };
    let auth = Authenticator::oauth(validator(settings(&p.issuer), counting()));
    let e = rt().block_on(auth.authenticate(&HeaderMap::new())).unwrap_err();
    let parts = e.into_response_parts();
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        parts.www_authenticate.unwrap(),
        "Bearer scope=\"mcp:read\", resource_metadata=\"https://moat.test/.well-known/oauth-protected-resource/mcp\""
    );
    let (paths, metadata) = auth.protected_resource_metadata().unwrap();
    assert_eq!(paths.path_inserted, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(metadata.authorization_servers, vec![p.issuer.clone()]);
}

#[test]
fn valid_token_from_the_provider_is_accepted_via_discovery() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let token = rt.block_on(jwt_for(&p.issuer, "mcp:read mcp:write", AUDIENCE));
    let http = counting();
    let auth = Authenticator::oauth(validator(settings(&p.issuer), http.clone()));
    let principal = rt.block_on(auth.authenticate(&bearer(&token))).unwrap();
    assert_eq!(principal.subject, "moat-cc");
    assert_eq!(principal.client_id.as_deref(), Some("moat-cc"));
    assert_eq!(principal.issuer.as_deref(), Some(p.issuer.as_str()));
    assert_eq!(principal.auth_method, AuthMethod::Jwt);
    assert!(principal.has_scope("mcp:read") && principal.has_scope("mcp:write"));
    // The JWKS is cached: a second validation fetches nothing.
    rt.block_on(auth.authenticate(&bearer(&token))).unwrap();
    assert_eq!(http.jwks_gets.load(Ordering::SeqCst), 1);
}

#[test]
fn valid_token_with_a_configured_jwks_uri() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let token = rt.block_on(jwt_for(&p.issuer, "mcp:read", AUDIENCE));
    let mut s = settings(&p.issuer);
    s.jwks_uri = Some(format!("{}/jwks", p.issuer));
    let v = validator(s, counting());
    assert!(rt.block_on(v.validate_token(&token)).is_ok());
}

#[test]
fn expired_token_is_refused() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let key = rt.block_on(provider_keys(&p.issuer)).remove(0);
    let mut claims = good_claims(&p.issuer);
    // Beyond the 60 s leeway.
    claims["exp"] = json!(now() - 120);
    claims["iat"] = json!(now() - 900);
    let v = validator(settings(&p.issuer), counting());
    // Control: the same forgery, unexpired, is accepted (so the key and claims are right).
    assert!(rt.block_on(v.validate_token(&sign_rs256(&key, &key.kid, &good_claims(&p.issuer)))).is_ok());
    let token = sign_rs256(&key, &key.kid, &claims);
    assert_eq!(refused_because(rt.block_on(v.validate_token(&token))), InvalidTokenReason::Expired);
    // Within the leeway: still accepted.
    claims["exp"] = json!(now() - 30);
    assert!(rt.block_on(v.validate_token(&sign_rs256(&key, &key.kid, &claims))).is_ok());
    // Not yet valid beyond the leeway.
    let mut early = good_claims(&p.issuer);
    early["nbf"] = json!(now() + 600);
    let token = sign_rs256(&key, &key.kid, &early);
    assert_eq!(refused_because(rt.block_on(v.validate_token(&token))), InvalidTokenReason::NotYetValid);
}

#[test]
fn wrong_issuer_is_refused() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let key = rt.block_on(provider_keys(&p.issuer)).remove(0);
    let mut claims = good_claims(&p.issuer);
    claims["iss"] = json!("https://evil.example");
    let v = validator(settings(&p.issuer), counting());
    let token = sign_rs256(&key, &key.kid, &claims);
    assert_eq!(refused_because(rt.block_on(v.validate_token(&token))), InvalidTokenReason::WrongIssuer);
}

#[test]
fn token_for_another_audience_is_refused() {
    let Some(p) = shared() else { return };
    let rt = rt();
    // A real token, issued by the real provider, for another resource server.
    let token = rt.block_on(jwt_for(&p.issuer, "mcp:read", OTHER_AUDIENCE));
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(payload["aud"], OTHER_AUDIENCE);
    let v = validator(settings(&p.issuer), counting());
    assert_eq!(refused_because(rt.block_on(v.validate_token(&token))), InvalidTokenReason::WrongAudience);
    // And a token with no `aud` at all.
    let key = rt.block_on(provider_keys(&p.issuer)).remove(0);
    let mut claims = good_claims(&p.issuer);
    claims.as_object_mut().unwrap().remove("aud");
    let token = sign_rs256(&key, &key.kid, &claims);
    assert_eq!(refused_because(rt.block_on(v.validate_token(&token))), InvalidTokenReason::MissingClaim("aud"));
}

#[test]
fn alg_none_is_refused() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let key = rt.block_on(provider_keys(&p.issuer)).remove(0);
    let header = json!({"alg": "none", "typ": "JWT", "kid": key.kid});
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(good_claims(&p.issuer).to_string())
    );
    let v = validator(settings(&p.issuer), counting());
    assert_eq!(
        refused_because(rt.block_on(v.validate_token(&token))),
        InvalidTokenReason::UnsupportedAlgorithm("none".into())
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let key = rt.block_on(provider_keys(&p.issuer)).remove(0);
    let v = validator(settings(&p.issuer), counting());
    // The classic key-confusion forgery: HMAC keyed with the public key's PEM text (and, for
    // good measure, with the JWKS JSON of that key), under the real `kid`.
    let jwks: Value =
        rt.block_on(async { reqwest::get(format!("{}/jwks", p.issuer)).await.unwrap().json().await }).unwrap();
    let jwk_text = jwks["keys"][0].to_string();
    for secret in [key.public_pem.as_bytes(), jwk_text.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &good_claims(&p.issuer), &EncodingKey::from_secret(secret)).unwrap();
        assert_eq!(
            refused_because(rt.block_on(v.validate_token(&token))),
            InvalidTokenReason::UnsupportedAlgorithm("HS256".into())
        );
    }
}

#[test]
fn bad_signature_is_refused() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let token = rt.block_on(jwt_for(&p.issuer, "mcp:read", AUDIENCE));
    // Swap in other claims under the real signature.
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut claims = good_claims(&p.issuer);
    claims["sub"] = json!("admin");
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts[1] = &forged_payload;
    let v = validator(settings(&p.issuer), counting());
    assert_eq!(refused_because(rt.block_on(v.validate_token(&parts.join(".")))), InvalidTokenReason::BadSignature);
}

#[test]
fn too_few_scopes_gets_403_with_step_up_data() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let token = rt.block_on(jwt_for(&p.issuer, "mcp:read", AUDIENCE));
    // Required for every request.
    let mut s = settings(&p.issuer);
    s.required_scopes = vec!["mcp:read".into(), "mcp:admin".into()];
    let auth = Authenticator::oauth(validator(s, counting()));
    let e = rt.block_on(auth.authenticate(&bearer(&token))).unwrap_err();
    let parts = e.into_response_parts();
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    assert_eq!(
        parts.www_authenticate.unwrap(),
        "Bearer error=\"insufficient_scope\", scope=\"mcp:read mcp:admin\", resource_metadata=\"https://moat.test/.well-known/oauth-protected-resource/mcp\""
    );
    // Required by one tool, computed by the caller.
    let auth = Authenticator::oauth(validator(settings(&p.issuer), counting()));
    let principal = rt.block_on(auth.authenticate(&bearer(&token))).unwrap();
    let e = auth.check_scopes(&principal, &["mcp:write"]).unwrap_err();
    let parts = e.into_response_parts();
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    let www = parts.www_authenticate.unwrap();
    assert!(www.to_str().unwrap().contains("scope=\"mcp:read mcp:write\""), "{www:?}");
    assert!(auth.check_scopes(&principal, &["mcp:read"]).is_ok());
}

#[test]
fn unknown_kid_refetches_the_rotated_jwks_with_a_rate_limit() {
    // Its own provider: rotation changes the keys other tests sign with.
    let p = match start_provider() {
        Ok(p) => p,
        Err(reason) => return skip(&reason),
    };
    let rt = rt();
    let http = counting();
    let mut s = settings(&p.issuer);
    s.jwks_refetch_interval = Duration::from_secs(2);
    let v = validator(s, http.clone());

    let before = rt.block_on(jwt_for(&p.issuer, "mcp:read", AUDIENCE));
    assert!(rt.block_on(v.validate_token(&before)).is_ok());
    assert_eq!(http.jwks_gets.load(Ordering::SeqCst), 1);

    // Rotate: the provider now signs with a new key (the old one stays published).
    let rotated: Value = rt
        .block_on(async {
            reqwest::Client::new().post(format!("{}/__test/rotate", p.issuer)).send().await.unwrap().json().await
        })
        .unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    let after = rt.block_on(jwt_for(&p.issuer, "mcp:read", AUDIENCE));
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(after.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["kid"], new_kid.as_str());

    // Within the rate limit the unknown kid is refused without a fetch...
    assert_eq!(refused_because(rt.block_on(v.validate_token(&after))), InvalidTokenReason::UnknownKey);
    assert_eq!(http.jwks_gets.load(Ordering::SeqCst), 1);
    // ...and once the interval has passed, one refetch finds the new key.
    std::thread::sleep(Duration::from_millis(2100));
    let principal = rt.block_on(v.validate_token(&after)).unwrap();
    assert_eq!(principal.subject, "moat-cc");
    assert_eq!(http.jwks_gets.load(Ordering::SeqCst), 2);
    // The old key is still published, so old tokens still verify (again, with the new key set).
    assert!(rt.block_on(v.validate_token(&before)).is_ok());

    // A burst of tokens with random kids (signed with the real key) causes at most one fetch
    // per interval.
    std::thread::sleep(Duration::from_millis(2100));
    let key = rt.block_on(provider_keys(&p.issuer)).remove(0);
    for i in 0..20 {
        let token = sign_rs256(&key, &format!("no-such-kid-{i}"), &good_claims(&p.issuer));
        assert_eq!(refused_because(rt.block_on(v.validate_token(&token))), InvalidTokenReason::UnknownKey);
    }
    assert_eq!(http.jwks_gets.load(Ordering::SeqCst), 3);
}

#[test]
fn opaque_token_is_introspected() {
    let Some(p) = shared() else { return };
    let rt = rt();
    let token = rt.block_on(client_credentials(
        &p.issuer,
        ("moat-opaque", "moat-opaque-secret"),
        "mcp:read mcp:write",
        AUDIENCE,
    ));
    assert!(!token.contains('.'), "expected an opaque token, got {token}");
    let mut s = settings(&p.issuer);
    s.introspection_url = Some(format!("{}/token/introspection", p.issuer));
    s.client_id = Some("moat-rs".into());
    s.client_secret = Some(ClientSecret::new("moat-rs-secret"));
    let v = validator(s.clone(), counting());
    let principal = rt.block_on(v.validate_token(&token)).unwrap();
    assert_eq!(principal.auth_method, AuthMethod::Introspection);
    assert_eq!(principal.subject, "moat-opaque");
    assert!(principal.has_scope("mcp:write"));
    // A made-up opaque token is inactive.
    assert_eq!(
        refused_because(rt.block_on(v.validate_token("made-up-opaque-token-value"))),
        InvalidTokenReason::Inactive
    );
    // Wrong client secret: the authorization server refuses us, so we cannot check: 503.
    s.client_secret = Some(ClientSecret::new("wrong"));
    let v = validator(s, counting());
    let e = rt.block_on(v.validate_token(&token)).unwrap_err();
    assert_eq!(e.into_response_parts().status, StatusCode::SERVICE_UNAVAILABLE);
    // Without introspection configured, an opaque token is refused.
    let v = validator(settings(&p.issuer), counting());
    assert_eq!(refused_because(rt.block_on(v.validate_token(&token))), InvalidTokenReason::UnsupportedTokenFormat);
}

#[test]
fn unreachable_issuer_fails_closed() {
    // Nothing listens on port 9 of loopback.
    let v = validator(settings("http://127.0.0.1:9"), counting());
    let token = sign_hs_dummy();
    let e = rt().block_on(v.validate_token(&token)).unwrap_err();
    assert_eq!(e.into_response_parts().status, StatusCode::SERVICE_UNAVAILABLE, "{e}");
}

/// A structurally valid RS256 JWT whose signature is never checked (the keys cannot be fetched).
fn sign_hs_dummy() -> String {
    let header = json!({"alg": "RS256", "kid": "k"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode("{}"),
        URL_SAFE_NO_PAD.encode("sig")
    )
}

// ---------------------------------------------------------------------------------------------
// Moat as a client: its own tokens for upstreams (no token passthrough)

/// Counts token requests through the real reqwest client.
struct CountingPosts {
    inner: ReqwestClient,
    posts: AtomicUsize,
}

impl HttpClient for CountingPosts {
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        self.inner.get(url)
    }
    fn post_form<'a>(
        &'a self,
        url: &'a Url,
        form: &'a [(&'a str, &'a str)],
        basic_auth: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        self.posts.fetch_add(1, Ordering::SeqCst);
        self.inner.post_form(url, form, basic_auth)
    }
}

fn upstream_source(
    issuer: &str,
    secret: &str,
    resource: &str,
    grant: UpstreamGrant,
) -> (UpstreamTokenSource, Arc<CountingPosts>) {
    let http = Arc::new(CountingPosts { inner: ReqwestClient::new().unwrap(), posts: AtomicUsize::new(0) });
    let mut s =
        UpstreamTokenSettings::new("api", format!("{issuer}/token"), "moat-upstream", ClientSecret::new(secret));
    s.scope = vec!["mcp:read".into(), "mcp:write".into()];
    s.resource = Some(resource.to_owned());
    s.grant = grant;
    (UpstreamTokenSource::new(s, http.clone()).unwrap(), http)
}

/// The provider's token, checked as the upstream would: signature, issuer, expiry, audience.
fn verified_by_upstream(issuer: &str, resource: &str, token: &str) -> moat_auth::Principal {
    let v = validator(OAuthSettings::new(resource, Some(issuer.to_owned())), counting());
    rt().block_on(v.validate_token(token)).unwrap()
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[test]
fn upstream_client_credentials_token_is_cached_then_refreshed_after_expiry() {
    let Some(p) = shared() else { return };
    // Tokens for this resource live 2 s, so the source replaces them after 1 s.
    let resource = "https://upstream.test/short-ttl";
    let (src, http) = upstream_source(&p.issuer, "moat-upstream-secret", resource, UpstreamGrant::ClientCredentials);
    let rt = rt();
    let first = rt.block_on(src.token()).unwrap();
    let principal = verified_by_upstream(&p.issuer, resource, first.expose());
    assert_eq!(principal.subject, "moat-upstream");
    assert!(principal.has_scope("mcp:read") && principal.has_scope("mcp:write"));
    // Cached: no second request.
    let again = rt.block_on(src.token()).unwrap();
    assert_eq!(again.expose(), first.expose());
    assert_eq!(http.posts.load(Ordering::SeqCst), 1);
    // Past the refresh point: a new token from the provider.
    std::thread::sleep(Duration::from_millis(1100));
    let fresh = rt.block_on(src.token()).unwrap();
    assert_ne!(fresh.expose(), first.expose());
    assert_eq!(http.posts.load(Ordering::SeqCst), 2);
    verified_by_upstream(&p.issuer, resource, fresh.expose());
}

#[test]
fn upstream_token_is_fetched_once_for_concurrent_callers_and_replaced_when_rejected() {
    let Some(p) = shared() else { return };
    let resource = "https://upstream.test/mcp";
    let (src, http) = upstream_source(&p.issuer, "moat-upstream-secret", resource, UpstreamGrant::ClientCredentials);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tokens: Vec<String> = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = src.clone();
                tokio::spawn(async move { s.token().await.unwrap().expose().to_owned() })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(http.posts.load(Ordering::SeqCst), 1);
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    // The upstream answered 401 with this token: the next call gets another.
    let current = rt.block_on(src.token()).unwrap();
    src.rejected(current.authorization());
    let next = rt.block_on(src.token()).unwrap();
    assert_ne!(next.expose(), current.expose());
    assert_eq!(http.posts.load(Ordering::SeqCst), 2);
    assert_eq!(claims_of(next.expose())["aud"], resource);
}

#[test]
fn upstream_token_with_a_wrong_secret_is_a_clear_error() {
    let Some(p) = shared() else { return };
    let (src, _) =
        upstream_source(&p.issuer, "not-the-secret", "https://upstream.test/mcp", UpstreamGrant::ClientCredentials);
    let e = rt().block_on(src.token()).unwrap_err();
    assert!(matches!(&e, UpstreamTokenError::Refused { error, status: 401, .. } if error == "invalid_client"), "{e:?}");
    assert!(e.to_string().contains("refused client `moat-upstream` a token for upstream `api`"), "{e}");
    assert!(e.help().unwrap().contains("client_secret"));
    assert!(!format!("{e} {e:?} {src:?}").contains("not-the-secret"));
    // An unknown resource is refused too, with its own advice.
    let (src, _) = upstream_source(
        &p.issuer,
        "moat-upstream-secret",
        "https://unknown.example/mcp",
        UpstreamGrant::ClientCredentials,
    );
    let e = rt().block_on(src.token()).unwrap_err();
    assert!(matches!(&e, UpstreamTokenError::Refused { error, .. } if error == "invalid_target"), "{e:?}");
    assert!(e.help().unwrap().contains("resource"));
}

#[test]
fn token_exchange_yields_a_token_for_the_upstream_on_behalf_of_the_caller() {
    let Some(p) = shared() else { return };
    let rt = rt();
    // The caller's token, issued for Moat (its audience is Moat, not the upstream).
    let caller = rt.block_on(jwt_for(&p.issuer, "mcp:read mcp:write", AUDIENCE));
    assert_eq!(claims_of(&caller)["sub"], "moat-cc");
    let resource = "https://upstream.test/mcp";
    let (src, http) = upstream_source(&p.issuer, "moat-upstream-secret", resource, UpstreamGrant::TokenExchange);
    // As the gateway does: the caller is authenticated first, then its token is kept to exchange.
    let own = validator(settings(&p.issuer), counting());
    let principal = rt.block_on(own.validate_token(&caller)).unwrap();
    let subject = SubjectToken::from_request(&principal, &bearer(&caller)).unwrap();
    assert_eq!(format!("{subject:?}"), "SubjectToken(***)");
    let exchanged = rt.block_on(src.exchange(&subject)).unwrap();
    assert_ne!(exchanged.expose(), caller, "the caller's token is never what the upstream gets");
    // The upstream accepts it: its audience; the subject is still the original caller.
    let principal = verified_by_upstream(&p.issuer, resource, exchanged.expose());
    assert_eq!(principal.subject, "moat-cc");
    assert_eq!(principal.client_id.as_deref(), Some("moat-upstream"));
    assert_eq!(claims_of(exchanged.expose())["act"]["sub"], "moat-upstream");
    // Moat's own audience refuses it, and the caller's token is refused by the upstream.
    assert_eq!(refused_because(rt.block_on(own.validate_token(exchanged.expose()))), InvalidTokenReason::WrongAudience);
    let upstream = validator(OAuthSettings::new(resource, Some(p.issuer.clone())), counting());
    assert_eq!(refused_because(rt.block_on(upstream.validate_token(&caller))), InvalidTokenReason::WrongAudience);
    // Cached per subject token: the same caller token exchanges once.
    assert_eq!(rt.block_on(src.exchange(&subject)).unwrap().expose(), exchanged.expose());
    assert_eq!(http.posts.load(Ordering::SeqCst), 1);
    // A token that was not issued for Moat cannot be exchanged.
    let foreign = rt.block_on(jwt_for(&p.issuer, "mcp:read", OTHER_AUDIENCE));
    let mut api_key_principal = principal.clone();
    api_key_principal.auth_method = AuthMethod::ApiKey;
    assert!(
        SubjectToken::from_request(&api_key_principal, &bearer(&foreign)).is_none(),
        "API keys are never exchanged"
    );
    let foreign = SubjectToken::from_request(&principal, &bearer(&foreign)).unwrap();
    let e = rt.block_on(src.exchange(&foreign)).unwrap_err();
    assert!(matches!(&e, UpstreamTokenError::Refused { error, .. } if error == "invalid_grant"), "{e:?}");
}
