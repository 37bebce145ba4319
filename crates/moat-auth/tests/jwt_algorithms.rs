//! Each accepted algorithm verifies with its own key type only; keys are chosen by `kid`.
//! Keys are generated here (ring) or taken from the benchmark fixture (RSA); the JWKS is served
//! from memory through the `HttpClient` seam.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use moat_auth::{
    AuthError, BoxFuture, FetchError, HttpClient, HttpResponse, InvalidTokenReason, OAuthSettings, OAuthValidator,
};
use reqwest::Url;
use ring::signature::KeyPair as _;
use serde_json::{json, Value};

const ISSUER: &str = "https://as.example";
const AUDIENCE: &str = "https://moat.example/mcp";

/// Serves discovery metadata and a JWKS from memory, counting requests.
struct Memory {
    jwks: std::sync::Mutex<Value>,
    gets: AtomicUsize,
}

impl HttpClient for Memory {
    fn get<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let (status, body) = match url.path() {
            "/.well-known/oauth-authorization-server" => {
                (200, json!({"issuer": ISSUER, "jwks_uri": format!("{ISSUER}/jwks")}).to_string())
            }
            "/jwks" => (200, self.jwks.lock().unwrap().to_string()),
            _ => (404, String::new()),
        };
        Box::pin(async move { Ok(HttpResponse { status, body: body.into_bytes() }) })
    }
    fn post_form<'a>(
        &'a self,
        _url: &'a Url,
        _form: &'a [(&'a str, &'a str)],
        _basic_auth: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        Box::pin(async { Err(FetchError { url: String::new(), detail: "unused".into() }) })
    }
}

fn claims() -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    json!({"iss": ISSUER, "aud": [AUDIENCE, "other"], "sub": "alice", "exp": now + 300})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, &claims(), key).unwrap()
}

struct Keys {
    rsa: EncodingKey,
    rsa_n: String,
    ec: EncodingKey,
    ec_x: String,
    ec_y: String,
    ed: EncodingKey,
    ed_x: String,
}

fn keys() -> Keys {
    let rng = ring::rand::SystemRandom::new();
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("../benches/fixtures/rs256-bench-key.pem")).unwrap();
    let jwks: Value = serde_json::from_str(include_str!("../benches/fixtures/rs256-bench-jwks.json")).unwrap();
    let rsa_n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let ec = EncodingKey::from_ec_der(pkcs8.as_ref());
    let ed_pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed_pair = ring::signature::Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).unwrap();
    Keys {
        rsa,
        rsa_n,
        ec,
        ec_x: URL_SAFE_NO_PAD.encode(&point[1..33]),
        ec_y: URL_SAFE_NO_PAD.encode(&point[33..65]),
        ed: EncodingKey::from_ed_der(ed_pkcs8.as_ref()),
        ed_x: URL_SAFE_NO_PAD.encode(ed_pair.public_key().as_ref()),
    }
}

fn validator(jwks: Value) -> (OAuthValidator, Arc<Memory>) {
    let http = Arc::new(Memory { jwks: std::sync::Mutex::new(jwks), gets: AtomicUsize::new(0) });
    let v = OAuthValidator::new(OAuthSettings::new(AUDIENCE, Some(ISSUER.into())), http.clone()).unwrap();
    (v, http)
}

fn reason(r: Result<moat_auth::Principal, AuthError>) -> InvalidTokenReason {
    match r {
        Err(e) => e.invalid_token_reason().cloned().unwrap_or_else(|| panic!("not invalid_token: {e}")),
        Ok(p) => panic!("accepted: {p:?}"),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn every_accepted_algorithm_verifies_with_its_key_type_only() {
    let k = keys();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rs", "alg": "RS256", "n": k.rsa_n, "e": "AQAB"},
        {"kty": "RSA", "kid": "rsa-any", "n": k.rsa_n, "e": "AQAB"},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": k.ec_x, "y": k.ec_y},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": k.ed_x},
    ]});
    let (v, http) = validator(jwks);
    let rt = rt();
    for token in [
        sign(Algorithm::RS256, Some("rs"), &k.rsa),
        sign(Algorithm::RS256, Some("rsa-any"), &k.rsa),
        sign(Algorithm::PS256, Some("rsa-any"), &k.rsa),
        sign(Algorithm::ES256, Some("ec"), &k.ec),
        sign(Algorithm::EdDSA, Some("ed"), &k.ed),
    ] {
        let p = rt.block_on(v.validate_token(&token)).unwrap();
        assert_eq!(p.subject, "alice");
    }
    // Discovery once, JWKS once, then the cache.
    assert_eq!(http.gets.load(Ordering::SeqCst), 2);
    // PS256 under a key published for RS256 only.
    let t = sign(Algorithm::PS256, Some("rs"), &k.rsa);
    assert_eq!(reason(rt.block_on(v.validate_token(&t))), InvalidTokenReason::KeyAlgorithmMismatch);
    // An EdDSA token naming the EC key; an ES256 token naming the RSA key.
    let t = sign(Algorithm::EdDSA, Some("ec"), &k.ed);
    assert_eq!(reason(rt.block_on(v.validate_token(&t))), InvalidTokenReason::KeyAlgorithmMismatch);
    let t = sign(Algorithm::ES256, Some("rsa-any"), &k.ec);
    assert_eq!(reason(rt.block_on(v.validate_token(&t))), InvalidTokenReason::KeyAlgorithmMismatch);
    // The right key type but another key's signature.
    let other = keys();
    let t = sign(Algorithm::EdDSA, Some("ed"), &other.ed);
    assert_eq!(reason(rt.block_on(v.validate_token(&t))), InvalidTokenReason::BadSignature);
    // Algorithms outside the list, even with a matching key family.
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS512] {
        let t = sign(alg, Some("rsa-any"), &k.rsa);
        assert!(matches!(reason(rt.block_on(v.validate_token(&t))), InvalidTokenReason::UnsupportedAlgorithm(_)));
    }
}

#[test]
fn a_token_without_kid_needs_exactly_one_candidate_key() {
    let k = keys();
    let rt = rt();
    let (one, _) = validator(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": k.ed_x}]}));
    assert!(rt.block_on(one.validate_token(&sign(Algorithm::EdDSA, None, &k.ed))).is_ok());
    let other = keys();
    let (two, _) = validator(json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": k.ed_x, "kid": "a"},
        {"kty": "OKP", "crv": "Ed25519", "x": other.ed_x, "kid": "b"},
    ]}));
    assert_eq!(
        reason(rt.block_on(two.validate_token(&sign(Algorithm::EdDSA, None, &k.ed)))),
        InvalidTokenReason::UnknownKey
    );
}

#[test]
fn an_insecure_issuer_fails_at_construction() {
    let http = Arc::new(Memory { jwks: std::sync::Mutex::new(json!({})), gets: AtomicUsize::new(0) });
    let errors =
        OAuthValidator::new(OAuthSettings::new(AUDIENCE, Some("http://login.example.com".into())), http).err().unwrap();
    assert!(errors.iter().any(|e| e.to_string().contains("must use https")), "{errors:?}");
}

#[test]
fn a_verified_token_stops_working_when_its_key_is_withdrawn() {
    let k = keys();
    let other = keys();
    let http = Arc::new(Memory {
        jwks: std::sync::Mutex::new(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": k.ed_x, "kid": "old"}]})),
        gets: AtomicUsize::new(0),
    });
    let mut s = OAuthSettings::new(AUDIENCE, Some(ISSUER.into()));
    s.jwks_refetch_interval = std::time::Duration::ZERO;
    let v = OAuthValidator::new(s, http.clone()).unwrap();
    let rt = rt();
    let token = sign(Algorithm::EdDSA, Some("old"), &k.ed);
    assert!(rt.block_on(v.validate_token(&token)).is_ok());
    assert!(rt.block_on(v.validate_token(&token)).is_ok(), "again, from the verified-token cache");
    // The issuer withdraws the key (compromised) and publishes a new one; a token with the new
    // kid makes Moat refetch.
    *http.jwks.lock().unwrap() = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": other.ed_x, "kid": "new"}]});
    let fresh = sign(Algorithm::EdDSA, Some("new"), &other.ed);
    assert!(rt.block_on(v.validate_token(&fresh)).is_ok());
    // The old token was verified before, but not with these keys: refused.
    assert_eq!(reason(rt.block_on(v.validate_token(&token))), InvalidTokenReason::UnknownKey);
}
