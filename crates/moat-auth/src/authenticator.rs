//! The one entry point the front calls for every request.

use std::sync::Arc;

use http::HeaderMap;

use crate::apikey::{ApiKeyAuthenticator, ApiKeyError};
use crate::error::{AuthError, Challenge};
use crate::header::{bearer_token, Bearer};
use crate::metadata::{ProtectedResourceMetadata, WellKnownPaths};
use crate::oauth::OAuthValidator;
use crate::principal::Principal;
use crate::scopes::{check_scopes, InsufficientScope};

/// Authenticates requests in the configured `[auth] mode`. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Authenticator {
    mode: Arc<Mode>,
}

enum Mode {
    None,
    OAuth(OAuthValidator),
    ApiKey { keys: ApiKeyAuthenticator, challenge: Arc<Challenge> },
}

impl Authenticator {
    /// `mode = "none"`: every request is [`Principal::anonymous`]. The gateway must allow this
    /// only on a loopback listener.
    pub fn none() -> Self {
        Authenticator { mode: Arc::new(Mode::None) }
    }

    /// `mode = "oauth"`.
    pub fn oauth(validator: OAuthValidator) -> Self {
        Authenticator { mode: Arc::new(Mode::OAuth(validator)) }
    }

    /// `mode = "api_key"`.
    pub fn api_key(keys: ApiKeyAuthenticator) -> Self {
        let challenge =
            Arc::new(Challenge { resource_metadata: None, scope: Vec::new(), realm: Some("moat".to_owned()) });
        Authenticator { mode: Arc::new(Mode::ApiKey { keys, challenge }) }
    }

    /// Authenticates one request from its headers (`Authorization: Bearer …` only).
    ///
    /// # Errors
    /// An [`AuthError`]; answer with [`AuthError::into_response_parts`].
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let challenge = match &*self.mode {
            Mode::None => return Ok(Principal::anonymous()),
            Mode::OAuth(v) => Arc::clone(v.challenge()),
            Mode::ApiKey { challenge, .. } => Arc::clone(challenge),
        };
        let token = match bearer_token(headers) {
            Bearer::Token(t) => t,
            Bearer::Absent => return Err(AuthError::MissingToken { challenge }),
            Bearer::Malformed(detail) => return Err(AuthError::InvalidRequest { detail, challenge }),
        };
        match &*self.mode {
            Mode::None => Ok(Principal::anonymous()),
            Mode::OAuth(v) => v.validate_token(token).await,
            Mode::ApiKey { keys, .. } => keys.authenticate(token).map_err(|e| match e {
                ApiKeyError::Invalid(reason) => AuthError::InvalidToken { reason, challenge },
                ApiKeyError::Store(e) => {
                    tracing::error!(error = %e, "api key store unreadable; refusing requests");
                    AuthError::Unavailable { detail: e.to_string() }
                }
            }),
        }
    }

    /// Checks scopes the caller computed for a method or tool, answering with a 403 step-up
    /// challenge when some are missing.
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`].
    pub fn check_scopes(&self, principal: &Principal, required: &[&str]) -> Result<(), AuthError> {
        check_scopes(principal, required).map_err(|e| self.insufficient_scope(e))
    }

    /// Turns an [`InsufficientScope`] into the 403 answer for this mode.
    pub fn insufficient_scope(&self, e: InsufficientScope) -> AuthError {
        let challenge = match &*self.mode {
            Mode::OAuth(v) => Arc::clone(v.challenge()),
            Mode::ApiKey { challenge, .. } => Arc::clone(challenge),
            Mode::None => Arc::new(Challenge::default()),
        };
        AuthError::InsufficientScope { missing: e.missing, challenge }
    }

    /// The RFC 9728 metadata and where to serve it; `None` unless `mode = "oauth"`.
    pub fn protected_resource_metadata(&self) -> Option<(&WellKnownPaths, &ProtectedResourceMetadata)> {
        match &*self.mode {
            Mode::OAuth(v) => Some((v.well_known_paths(), v.metadata())),
            _ => None,
        }
    }

    /// Fetches what can be fetched ahead of the first request (the JWKS in OAuth mode).
    ///
    /// # Errors
    /// What failed, for a warning at start.
    pub async fn warm_up(&self) -> Result<(), String> {
        match &*self.mode {
            Mode::OAuth(v) => v.warm_up().await.map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The mode's name: `none`, `oauth` or `api_key`.
    pub fn mode_name(&self) -> &'static str {
        match &*self.mode {
            Mode::None => "none",
            Mode::OAuth(_) => "oauth",
            Mode::ApiKey { .. } => "api_key",
        }
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("mode", &self.mode_name()).finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;
    use http::{HeaderValue, StatusCode};

    #[test]
    fn none_mode_is_anonymous() {
        let a = Authenticator::none();
        let rt = tokio::runtime::Builder::new_current_thread().build();
        let p = rt.ok().and_then(|rt| rt.block_on(a.authenticate(&HeaderMap::new())).ok());
        assert_eq!(p, Some(Principal::anonymous()));
        assert!(a.protected_resource_metadata().is_none());
    }

    #[test]
    fn api_key_mode_challenges_without_metadata() {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let store = Arc::new(crate::apikey::FileKeyStore::new(dir.path().join("k.json")));
        let a = Authenticator::api_key(ApiKeyAuthenticator::new(store));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|_| unreachable!());
        let e = rt.block_on(a.authenticate(&HeaderMap::new())).err();
        let parts = e.map(|e| e.into_response_parts());
        assert_eq!(parts.as_ref().map(|p| p.status), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(parts.and_then(|p| p.www_authenticate), Some(HeaderValue::from_static("Bearer realm=\"moat\"")));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer moat_0123456789abcdef_00"));
        let e = rt.block_on(a.authenticate(&h)).err();
        assert!(matches!(e, Some(AuthError::InvalidToken { .. })));
    }
}
