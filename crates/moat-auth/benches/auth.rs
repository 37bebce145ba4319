//! Identity and access benchmarks:
//! - JWT validation with a cached JWKS (RS256, ES256, EdDSA), the whole `validate_token` path;
//! - a Cedar decision with 100 policies.
//!
//! Run: `cargo bench -p moat-auth --bench auth`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use moat_auth::policy::{Action, Authorizer, Context, Resource, ToolAnnotations};
use moat_auth::{
    AuthMethod, BoxFuture, FetchError, HttpClient, HttpResponse, OAuthSettings, OAuthValidator, Principal,
};
use reqwest::Url;
use ring::signature::KeyPair as _;
use serde_json::json;

const ISSUER: &str = "https://as.example";
const AUDIENCE: &str = "https://moat.example/mcp";

/// Serves one JWKS from memory.
struct StaticJwks(String);

impl HttpClient for StaticJwks {
    fn get<'a>(&'a self, _url: &'a Url) -> BoxFuture<'a, Result<HttpResponse, FetchError>> {
        let body = self.0.clone().into_bytes();
        Box::pin(async move { Ok(HttpResponse { status: 200, body }) })
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

/// Distinct tokens per validator, more than the verified-token cache holds, so that cycling
/// through them measures full verification every time.
const FIRST_SIGHT_TOKENS: usize = 20_000;

fn claims(jti: usize) -> serde_json::Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "azp": "claude", "jti": jti.to_string(),
        "iat": now, "exp": now + 3600, "scope": "mcp:read mcp:write",
        "roles": ["reader"], "groups": ["team-7"],
    })
}

fn sign_n(alg: Algorithm, kid: &str, key: &EncodingKey, jti: usize) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, &claims(jti), key).unwrap()
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    sign_n(alg, kid, key, 0)
}

/// (name, jwks, algorithm, kid, signing key) for each algorithm.
fn fixtures() -> Vec<(&'static str, String, Algorithm, &'static str, EncodingKey)> {
    let rng = ring::rand::SystemRandom::new();
    let mut out = Vec::new();

    let rsa_pem = include_str!("fixtures/rs256-bench-key.pem");
    let rsa_jwks = include_str!("fixtures/rs256-bench-jwks.json").to_owned();
    let rsa = EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap();
    out.push(("rs256", rsa_jwks, Algorithm::RS256, "bench-rs256", rsa));

    let pkcs8 =
        ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    let point = pair.public_key().as_ref(); // 0x04 ‖ x ‖ y
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench-es256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])}]});
    out.push(("es256", jwks.to_string(), Algorithm::ES256, "bench-es256", EncodingKey::from_ec_der(pkcs8.as_ref())));

    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "bench-eddsa",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}]});
    out.push(("eddsa", jwks.to_string(), Algorithm::EdDSA, "bench-eddsa", EncodingKey::from_ed_der(pkcs8.as_ref())));
    out
}

fn jwt_validation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut first = c.benchmark_group("jwt_validate_first_sight");
    let mut validators = Vec::new();
    for (name, jwks, alg, kid, key) in fixtures() {
        let mut s = OAuthSettings::new(AUDIENCE, Some(ISSUER.into()));
        s.jwks_uri = Some(format!("{ISSUER}/jwks"));
        s.required_scopes = vec!["mcp:read".into()];
        let v = OAuthValidator::new(s, Arc::new(StaticJwks(jwks))).unwrap();
        // Fill the JWKS cache, and prove the tokens are valid, before measuring.
        let tokens: Vec<String> = (0..FIRST_SIGHT_TOKENS).map(|i| sign_n(alg, kid, &key, i)).collect();
        assert_eq!(rt.block_on(v.validate_token(&tokens[0])).unwrap().subject, "alice");
        let mut i = 0;
        first.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % FIRST_SIGHT_TOKENS;
                rt.block_on(v.validate_token(std::hint::black_box(&tokens[i]))).unwrap()
            })
        });
        validators.push((name, v, tokens));
    }
    first.finish();

    // The common case: a client sends the same token on every request.
    let mut repeated = c.benchmark_group("jwt_validate_repeated");
    for (name, v, tokens) in &validators {
        let token = &tokens[0];
        repeated
            .bench_function(*name, |b| b.iter(|| rt.block_on(v.validate_token(std::hint::black_box(token))).unwrap()));
    }
    repeated.finish();

    // Baseline in the same run: jsonwebtoken's decode alone (RSA signature check and claims
    // checks, key already parsed), i.e. the floor under `validate_token`.
    let jwks: serde_json::Value = serde_json::from_str(include_str!("fixtures/rs256-bench-jwks.json")).unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_components(jwks["keys"][0]["n"].as_str().unwrap(), "AQAB").unwrap();
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256-bench-key.pem")).unwrap();
    let token = sign(Algorithm::RS256, "bench-rs256", &rsa);
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    c.bench_function("baseline_jsonwebtoken_decode_rs256", |b| {
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(std::hint::black_box(&token), &key, &validation).unwrap())
    });
}

/// 100 policies: 97 per-team upstream permits, a read-only role, admins, and a forbid on
/// destructive tools. The principal matches the 8th team, so every policy is evaluated.
fn hundred_policies() -> String {
    let mut text = String::new();
    for i in 0..97 {
        text.push_str(&format!(
            "@id(\"team-{i}\")\npermit (principal, action, resource in Moat::Upstream::\"upstream-{i}\")\nwhen {{ principal.groups.contains(\"team-{i}\") }};\n"
        ));
    }
    text.push_str(
        r#"@id("readers")
permit (principal, action in [Moat::Action::"list_tools", Moat::Action::"call_tool"], resource)
when { principal.roles.contains("reader") && resource.read_only };
@id("admins")
permit (principal, action, resource) when { principal.roles.contains("admin") };
@id("destructive-needs-admin")
forbid (principal, action == Moat::Action::"call_tool", resource is Moat::Tool)
when { resource.destructive } unless { principal.roles.contains("admin") };
"#,
    );
    text
}

fn cedar_decision(c: &mut Criterion) {
    let a = Authorizer::from_sources(&[("bench.cedar".into(), hundred_policies())]).unwrap();
    assert_eq!(a.policy_count(), 100);
    let mut p = Principal::new("alice", AuthMethod::Jwt);
    p.groups.insert("team-7".into());
    p.roles.insert("reader".into());
    p.scopes.insert("mcp:read".into());
    let args = json!({"query": "select 1", "limit": 10});
    let ctx = Context { arguments: args.as_object(), source_ip: "10.0.0.7".parse().ok(), ..Context::now() };
    let tool = Resource::Tool {
        upstream: "upstream-7",
        name: "query",
        annotations: ToolAnnotations { read_only_hint: Some(true), ..Default::default() },
    };
    assert!(a.is_authorized(&p, Action::CallTool, &tool, &ctx).is_allowed());
    c.bench_function("cedar_decision_100_policies", |b| {
        b.iter(|| a.is_authorized(std::hint::black_box(&p), Action::CallTool, &tool, &ctx))
    });

    // Worst case: 100 policies with no scope at all (conditions only), so every one is
    // evaluated for every request.
    let mut flat = String::new();
    for i in 0..99 {
        flat.push_str(&format!(
            "permit (principal, action, resource) when {{ principal.groups.contains(\"team-{i}\") && resource.upstream == \"upstream-{i}\" }};\n"
        ));
    }
    flat.push_str("forbid (principal, action, resource) when { resource is Moat::Tool && resource.destructive && !principal.roles.contains(\"admin\") };\n");
    let flat = Authorizer::from_sources(&[("flat.cedar".into(), flat)]).unwrap();
    assert_eq!(flat.policy_count(), 100);
    assert!(flat.is_authorized(&p, Action::CallTool, &tool, &ctx).is_allowed());
    c.bench_function("cedar_decision_100_unscoped_policies", |b| {
        b.iter(|| flat.is_authorized(std::hint::black_box(&p), Action::CallTool, &tool, &ctx))
    });

    // Baseline in the same run: one `permit(principal, action, resource);` — the fixed cost of
    // building the request, entities and context.
    let one = Authorizer::from_sources(&[("one.cedar".into(), "permit(principal, action, resource);".into())]).unwrap();
    c.bench_function("cedar_decision_1_policy", |b| {
        b.iter(|| one.is_authorized(std::hint::black_box(&p), Action::CallTool, &tool, &ctx))
    });
}

criterion_group!(benches, jwt_validation, cedar_decision);
criterion_main!(benches);
