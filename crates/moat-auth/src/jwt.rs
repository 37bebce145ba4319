//! JWT access-token verification (RFC 7519, RFC 9068) with a fixed list of asymmetric
//! algorithms.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::error::InvalidTokenReason;
use crate::jwks::VerifierKey;

/// Longest JOSE header we decode.
const MAX_HEADER_LEN: usize = 2048;

/// The parts of a JOSE header we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoseHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Whether `token` has the shape of a JWS compact serialization (three base64url parts whose
/// first decodes to a JSON object with `alg`). Used to choose between JWT verification and
/// introspection; it proves nothing.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    decode_header_json(h).is_some_and(|v| v.contains_key("alg"))
}

fn decode_header_json(segment: &str) -> Option<Map<String, Value>> {
    if segment.len() > MAX_HEADER_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Reads and checks the JOSE header before any key is looked up.
///
/// # Errors
/// `Malformed` for anything unparsable; `UnsupportedAlgorithm` for `none`, HMAC and every
/// algorithm outside [`ALLOWED_ALGORITHMS`]; `Malformed` for a `crit` header (we implement no
/// extensions, so RFC 7515 §4.1.11 says refuse) or a `typ` that is not a JWT access token.
pub(crate) fn parse_header(token: &str) -> Result<JoseHeader, InvalidTokenReason> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(InvalidTokenReason::Malformed);
    };
    let header = decode_header_json(h).ok_or(InvalidTokenReason::Malformed)?;
    let alg_name = header.get("alg").and_then(Value::as_str).ok_or(InvalidTokenReason::Malformed)?;
    // INVARIANT: the only accepted algorithms, all asymmetric; never `none`, never HMAC.
    let alg = match alg_name {
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        other => return Err(InvalidTokenReason::UnsupportedAlgorithm(other.chars().take(32).collect())),
    };
    if header.contains_key("crit") {
        return Err(InvalidTokenReason::Malformed);
    }
    if let Some(typ) = header.get("typ") {
        // RFC 9068 says `at+jwt`; Entra and Keycloak send `JWT`. Anything else (a JWE, a
        // logout token, a DPoP proof...) is not an access token.
        let typ = typ.as_str().ok_or(InvalidTokenReason::Malformed)?.to_ascii_lowercase();
        if !matches!(typ.as_str(), "jwt" | "at+jwt" | "application/at+jwt") {
            return Err(InvalidTokenReason::Malformed);
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(InvalidTokenReason::Malformed),
    };
    Ok(JoseHeader { alg, kid })
}

/// What the claims must say.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
}

/// Verifies signature, `iss`, `aud`, `exp` and `nbf`, and returns the claims.
///
/// # Errors
/// The reason the token is refused.
pub(crate) fn verify(
    token: &str,
    header: &JoseHeader,
    key: &VerifierKey,
    rules: &ClaimRules,
) -> Result<Map<String, Value>, InvalidTokenReason> {
    if !key.accepts(header.alg) {
        return Err(InvalidTokenReason::KeyAlgorithmMismatch);
    }
    // One algorithm: the header's, already checked against the allow-list and the key.
    let mut validation = Validation::new(header.alg);
    validation.leeway = rules.leeway_seconds;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_issuer(&[rules.issuer.as_str()]);
    validation.set_audience(&[rules.audience.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding_key(), &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::Crypto(_) => InvalidTokenReason::BadSignature,
                ErrorKind::ExpiredSignature => InvalidTokenReason::Expired,
                ErrorKind::ImmatureSignature => InvalidTokenReason::NotYetValid,
                ErrorKind::InvalidIssuer => InvalidTokenReason::WrongIssuer,
                ErrorKind::InvalidAudience => InvalidTokenReason::WrongAudience,
                ErrorKind::MissingRequiredClaim(c) => InvalidTokenReason::MissingClaim(match c.as_str() {
                    "exp" => "exp",
                    "iss" => "iss",
                    "aud" => "aud",
                    _ => "required claim",
                }),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    InvalidTokenReason::KeyAlgorithmMismatch
                }
                _ => InvalidTokenReason::Malformed,
            }
        })?;
    Ok(data.claims)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn token_with_header(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn only_asymmetric_algorithms_pass_the_header_check() {
        for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
            let t = token_with_header(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#));
            assert!(parse_header(&t).is_ok(), "{alg}");
        }
        for alg in ["none", "None", "HS256", "HS512", "RS384", "ES512", "RSA-OAEP"] {
            let t = token_with_header(&format!(r#"{{"alg":"{alg}"}}"#));
            assert_eq!(parse_header(&t), Err(InvalidTokenReason::UnsupportedAlgorithm(alg.to_owned())), "{alg}");
        }
    }

    #[test]
    fn header_shape_is_checked() {
        assert_eq!(parse_header("a.b"), Err(InvalidTokenReason::Malformed));
        assert_eq!(parse_header("a.b.c.d"), Err(InvalidTokenReason::Malformed));
        assert_eq!(parse_header("!!.e30.x"), Err(InvalidTokenReason::Malformed));
        let crit = token_with_header(r#"{"alg":"RS256","crit":["exp"]}"#);
        assert_eq!(parse_header(&crit), Err(InvalidTokenReason::Malformed));
        let jwe = token_with_header(r#"{"alg":"RS256","typ":"JWE"}"#);
        assert_eq!(parse_header(&jwe), Err(InvalidTokenReason::Malformed));
        let at = token_with_header(r#"{"alg":"RS256","typ":"at+jwt","kid":"k1"}"#);
        assert_eq!(parse_header(&at), Ok(JoseHeader { alg: Algorithm::RS256, kid: Some("k1".into()) }));
        assert!(looks_like_jwt(&at));
        assert!(!looks_like_jwt("opaque-token-value"));
        assert!(!looks_like_jwt("a.b.c"));
    }
}
