//! Authentication errors, and the one place where they become HTTP answers.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

/// Why a request was not authenticated. Every variant maps to exactly one HTTP answer through
/// [`AuthError::into_response_parts`]; `Display` is for the log (it may name the reason a
/// token failed, never the token).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was presented: 401 with a challenge that points at the metadata.
    #[error("no access token was presented")]
    MissingToken { challenge: Arc<Challenge> },
    /// A credential was presented and refused: 401 `error="invalid_token"`.
    #[error("the access token was refused: {reason}")]
    InvalidToken { reason: InvalidTokenReason, challenge: Arc<Challenge> },
    /// The `Authorization` header is malformed or repeated: 400 `error="invalid_request"`.
    #[error("the authorization header is malformed: {detail}")]
    InvalidRequest { detail: &'static str, challenge: Arc<Challenge> },
    /// The token is good but lacks scopes: 403 `error="insufficient_scope"`, with the scopes
    /// to ask for (step-up authorization).
    #[error("the access token lacks the scopes {}", missing.join(" "))]
    InsufficientScope { missing: Vec<String>, challenge: Arc<Challenge> },
    /// The authorization server (JWKS, discovery or introspection) could not be reached or
    /// answered nonsense, so the token could not be checked: 503, and the request is refused.
    #[error("the token could not be checked: {detail}")]
    Unavailable { detail: String },
}

/// Why a presented token was refused. For logs and audit only: the client just sees
/// `invalid_token`, so that it learns nothing about what we check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTokenReason {
    /// Not a JWT, bad base64, bad JSON, or too long.
    Malformed,
    /// `alg` is not one of RS256, PS256, ES256, EdDSA (this is where `none` and HS256 end).
    UnsupportedAlgorithm(String),
    /// No key in the issuer's JWKS has this `kid` (also after a refetch).
    UnknownKey,
    /// The key named by `kid` cannot verify this `alg` (type, curve or declared `alg` differ).
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not name this resource.
    WrongAudience,
    /// A claim that must be present is missing or has the wrong type.
    MissingClaim(&'static str),
    /// Introspection said `active: false`.
    Inactive,
    /// The token is neither a JWT nor introspectable (no introspection configured).
    UnsupportedTokenFormat,
    /// The API key is unknown, revoked, or its secret does not match.
    UnknownApiKey,
}

impl fmt::Display for InvalidTokenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidTokenReason::Malformed => f.write_str("malformed token"),
            InvalidTokenReason::UnsupportedAlgorithm(alg) => {
                write!(f, "algorithm `{alg}` is not accepted")
            }
            InvalidTokenReason::UnknownKey => f.write_str("no signing key with this key id"),
            InvalidTokenReason::KeyAlgorithmMismatch => {
                f.write_str("the signing key does not match the token's algorithm")
            }
            InvalidTokenReason::BadSignature => f.write_str("invalid signature"),
            InvalidTokenReason::Expired => f.write_str("token expired"),
            InvalidTokenReason::NotYetValid => f.write_str("token not yet valid"),
            InvalidTokenReason::WrongIssuer => f.write_str("wrong issuer"),
            InvalidTokenReason::WrongAudience => f.write_str("token was issued for another audience"),
            InvalidTokenReason::MissingClaim(c) => write!(f, "claim `{c}` is missing or invalid"),
            InvalidTokenReason::Inactive => f.write_str("introspection says the token is not active"),
            InvalidTokenReason::UnsupportedTokenFormat => {
                f.write_str("opaque token but no introspection endpoint is configured")
            }
            InvalidTokenReason::UnknownApiKey => f.write_str("unknown, revoked or wrong api key"),
        }
    }
}

/// What goes into a `WWW-Authenticate: Bearer` challenge besides the error: the metadata URL
/// (RFC 9728 §5.1) and the scopes to request. Built once per [`crate::Authenticator`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    pub(crate) resource_metadata: Option<String>,
    pub(crate) scope: Vec<String>,
    pub(crate) realm: Option<String>,
}

/// The HTTP answer to an [`AuthError`].
#[derive(Debug, Clone)]
pub struct ResponseParts {
    /// 400, 401, 403 or 503.
    pub status: StatusCode,
    /// The `WWW-Authenticate` header value, for 400/401/403.
    pub www_authenticate: Option<HeaderValue>,
    /// A short message for the response body; never contains internals.
    pub message: &'static str,
}

impl AuthError {
    /// The status, `WWW-Authenticate` header and body message to send.
    pub fn into_response_parts(&self) -> ResponseParts {
        match self {
            AuthError::MissingToken { challenge } => ResponseParts {
                status: StatusCode::UNAUTHORIZED,
                www_authenticate: Some(bearer_header(challenge, None, &challenge.scope)),
                message: "authentication required",
            },
            AuthError::InvalidToken { challenge, .. } => ResponseParts {
                status: StatusCode::UNAUTHORIZED,
                www_authenticate: Some(bearer_header(challenge, Some("invalid_token"), &challenge.scope)),
                message: "invalid access token",
            },
            AuthError::InvalidRequest { challenge, .. } => ResponseParts {
                status: StatusCode::BAD_REQUEST,
                www_authenticate: Some(bearer_header(challenge, Some("invalid_request"), &[])),
                message: "malformed authorization header",
            },
            AuthError::InsufficientScope { missing, challenge } => {
                // Ask for everything this request needs: the required scopes plus the missing
                // ones (MCP step-up: the client re-authorizes with this set).
                let mut scope = challenge.scope.clone();
                for m in missing {
                    if !scope.contains(m) {
                        scope.push(m.clone());
                    }
                }
                ResponseParts {
                    status: StatusCode::FORBIDDEN,
                    www_authenticate: Some(bearer_header(challenge, Some("insufficient_scope"), &scope)),
                    message: "insufficient scope",
                }
            }
            AuthError::Unavailable { .. } => ResponseParts {
                status: StatusCode::SERVICE_UNAVAILABLE,
                www_authenticate: None,
                message: "authorization server unavailable",
            },
        }
    }

    /// The refusal reason of an invalid token, for audit records.
    pub fn invalid_token_reason(&self) -> Option<&InvalidTokenReason> {
        match self {
            AuthError::InvalidToken { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Whether the caller presented a credential that was refused (as opposed to presenting
    /// none): the front may count these towards brute-force limits.
    pub fn is_refused_credential(&self) -> bool {
        matches!(self, AuthError::InvalidToken { .. } | AuthError::InvalidRequest { .. })
    }
}

/// Builds `Bearer realm="..", error="..", scope="..", resource_metadata=".."`.
///
/// Values are quoted strings (RFC 9110 §11.2); we only put URLs, scope tokens and fixed words
/// in them, and drop `"` and `\` defensively so a configured value can never break the header.
fn bearer_header(challenge: &Challenge, error: Option<&str>, scope: &[String]) -> HeaderValue {
    let mut params: Vec<String> = Vec::new();
    if let Some(realm) = &challenge.realm {
        params.push(format!("realm=\"{}\"", quote_safe(realm)));
    }
    if let Some(error) = error {
        params.push(format!("error=\"{error}\""));
    }
    if !scope.is_empty() {
        params.push(format!("scope=\"{}\"", quote_safe(&scope.join(" "))));
    }
    if let Some(url) = &challenge.resource_metadata {
        params.push(format!("resource_metadata=\"{}\"", quote_safe(url)));
    }
    let value = if params.is_empty() { "Bearer".to_owned() } else { format!("Bearer {}", params.join(", ")) };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

fn quote_safe(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c)).collect()
}

/// A problem in the authentication or policy settings, found when they are built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("`{key}` must use https (http is accepted only for loopback hosts), got `{url}`")]
    InsecureUrl { key: &'static str, url: String },
    #[error("`{key}` is not a valid URL: `{url}`")]
    InvalidUrl { key: &'static str, url: String },
    #[error("`{key}` is required when {when}")]
    Missing { key: &'static str, when: &'static str },
    #[error("`leeway_seconds` is {value}, the most allowed is {max}")]
    LeewayTooLarge { value: u64, max: u64 },
    #[error("`{key}` is invalid: {detail}")]
    Invalid { key: &'static str, detail: String },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn challenge() -> Arc<Challenge> {
        Arc::new(Challenge {
            resource_metadata: Some("https://moat.example/.well-known/oauth-protected-resource/mcp".into()),
            scope: vec!["mcp:read".into()],
            realm: None,
        })
    }

    fn header(e: &AuthError) -> String {
        e.into_response_parts().www_authenticate.and_then(|h| h.to_str().ok().map(str::to_owned)).unwrap_or_default()
    }

    #[test]
    fn missing_token_is_401_with_metadata_and_scope_and_no_error() {
        let e = AuthError::MissingToken { challenge: challenge() };
        assert_eq!(e.into_response_parts().status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&e),
            "Bearer scope=\"mcp:read\", resource_metadata=\"https://moat.example/.well-known/oauth-protected-resource/mcp\""
        );
    }

    #[test]
    fn invalid_token_names_the_error() {
        let e = AuthError::InvalidToken { reason: InvalidTokenReason::Expired, challenge: challenge() };
        assert_eq!(e.into_response_parts().status, StatusCode::UNAUTHORIZED);
        assert!(header(&e).starts_with("Bearer error=\"invalid_token\", scope=\"mcp:read\""));
        // The reason stays in the log, not on the wire.
        assert!(!header(&e).contains("expired"));
    }

    #[test]
    fn insufficient_scope_is_403_and_asks_for_the_union() {
        let e = AuthError::InsufficientScope { missing: vec!["mcp:admin".into()], challenge: challenge() };
        assert_eq!(e.into_response_parts().status, StatusCode::FORBIDDEN);
        assert!(header(&e).starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp:read mcp:admin\""));
    }

    #[test]
    fn quotes_cannot_break_the_header() {
        let c =
            Arc::new(Challenge { resource_metadata: Some("https://x/\"evil\\".into()), scope: vec![], realm: None });
        let e = AuthError::MissingToken { challenge: c };
        assert_eq!(header(&e), "Bearer resource_metadata=\"https://x/evil\"");
    }
}
