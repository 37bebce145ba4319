//! The OAuth 2.1 resource server: one access token in, a [`Principal`] or an [`AuthError`] out.

use std::sync::Arc;

use crate::claims::ClaimMapping;
use crate::error::{AuthError, Challenge, ConfigError, InvalidTokenReason};
use crate::http_client::HttpClient;
use crate::introspection::{IntrospectionError, Introspector, IntrospectorConfig};
use crate::jwks::{JwksCache, JwksSource, KeyLookupError};
use crate::jwt::{self, ClaimRules};
use crate::metadata::{ProtectedResourceMetadata, WellKnownPaths};
use crate::principal::{AuthMethod, Principal};
use crate::scopes::check_scopes;
use crate::settings::{require_https_or_loopback, OAuthSettings};
use crate::verified::VerifiedTokens;

/// Validates access tokens for one protected resource (Moat's `public_url`).
///
/// `Send + Sync`, and cloning copies one `Arc`.
#[derive(Clone)]
pub struct OAuthValidator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: OAuthSettings,
    rules: Option<ClaimRules>,
    jwks: Option<JwksCache>,
    introspector: Option<Introspector>,
    mapping: ClaimMapping,
    challenge: Arc<Challenge>,
    metadata: ProtectedResourceMetadata,
    well_known: WellKnownPaths,
    verified: VerifiedTokens,
}

impl OAuthValidator {
    /// Builds the validator. Nothing is fetched yet; call [`OAuthValidator::warm_up`] at start
    /// to find discovery or JWKS problems early.
    ///
    /// # Errors
    /// Every problem in `settings` (see [`OAuthSettings::validate`]).
    pub fn new(settings: OAuthSettings, http: Arc<dyn HttpClient>) -> Result<Self, Vec<ConfigError>> {
        settings.validate()?;
        let well_known = WellKnownPaths::for_public_url(&settings.public_url).map_err(|e| vec![e])?;
        let audience = settings.effective_audience().to_owned();
        let mapping = ClaimMapping::new(
            settings.roles_claims.as_deref(),
            settings.groups_claims.as_deref(),
            settings.client_id.as_deref(),
        );
        let (rules, jwks) = match &settings.issuer {
            Some(issuer) => {
                let source = match &settings.jwks_uri {
                    Some(uri) => {
                        JwksSource::Configured(require_https_or_loopback("auth.jwks_uri", uri).map_err(|e| vec![e])?)
                    }
                    None => JwksSource::Discover { issuer: issuer.clone() },
                };
                let rules = ClaimRules {
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                    leeway_seconds: settings.leeway_seconds,
                };
                let cache =
                    JwksCache::new(Arc::clone(&http), source, settings.jwks_refetch_interval, settings.jwks_max_age);
                (Some(rules), Some(cache))
            }
            None => (None, None),
        };
        let introspector = match (&settings.introspection_url, &settings.client_id, &settings.client_secret) {
            (Some(url), Some(id), Some(secret)) => Some(Introspector::new(
                Arc::clone(&http),
                IntrospectorConfig {
                    url: require_https_or_loopback("auth.introspection_url", url).map_err(|e| vec![e])?,
                    client_id: id.clone(),
                    client_secret: secret.clone(),
                    issuer: settings.issuer.clone(),
                    audience,
                    leeway_seconds: settings.leeway_seconds,
                    cache_ttl: settings.introspection_cache_ttl,
                    mapping: mapping.clone(),
                },
            )),
            _ => None,
        };
        let challenge = Arc::new(Challenge {
            resource_metadata: Some(well_known.resource_metadata_url.clone()),
            scope: settings.required_scopes.clone(),
            realm: None,
        });
        let metadata = ProtectedResourceMetadata::from_settings(&settings);
        Ok(OAuthValidator {
            inner: Arc::new(Inner {
                settings,
                rules,
                jwks,
                introspector,
                mapping,
                challenge,
                metadata,
                well_known,
                verified: VerifiedTokens::default(),
            }),
        })
    }

    /// Discovers and fetches the JWKS now. Returns the number of usable keys.
    ///
    /// # Errors
    /// A sentence naming what failed (discovery, fetch, parse).
    pub async fn warm_up(&self) -> Result<usize, String> {
        match &self.inner.jwks {
            Some(cache) => cache.prefetch().await,
            None => Ok(0),
        }
    }

    /// Validates `token` (JWT, or opaque through introspection) and checks `required_scopes`.
    ///
    /// # Errors
    /// `InvalidToken` (401), `InsufficientScope` (403), `Unavailable` (503).
    pub async fn validate_token(&self, token: &str) -> Result<Principal, AuthError> {
        let principal = self.validate_without_scopes(token).await?;
        let required: Vec<&str> = self.inner.settings.required_scopes.iter().map(String::as_str).collect();
        check_scopes(&principal, &required).map_err(|e| AuthError::InsufficientScope {
            missing: e.missing,
            challenge: Arc::clone(&self.inner.challenge),
        })?;
        Ok(principal)
    }

    async fn validate_without_scopes(&self, token: &str) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        if let (Some(jwks), Some(rules), true) = (&inner.jwks, &inner.rules, jwt::looks_like_jwt(token)) {
            // The same token again: verified before with the current keys, not expired.
            let digest = VerifiedTokens::digest(token);
            let generation = jwks.generation();
            if let Some(principal) = inner.verified.get(&digest, generation) {
                return Ok(principal);
            }
            let header = jwt::parse_header(token).map_err(|r| self.invalid(r))?;
            let key = jwks.key_for(header.kid.as_deref(), header.alg).await.map_err(|e| match e {
                KeyLookupError::Unknown => self.invalid(InvalidTokenReason::UnknownKey),
                KeyLookupError::Unavailable(detail) => AuthError::Unavailable { detail },
            })?;
            let claims = jwt::verify(token, &header, &key, rules).map_err(|r| self.invalid(r))?;
            let principal = inner.mapping.principal(&claims, AuthMethod::Jwt).map_err(|r| self.invalid(r))?;
            if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_u64) {
                // Until the moment verification itself would start refusing it.
                let until = exp.saturating_add(rules.leeway_seconds);
                inner.verified.insert(digest, &principal, until, generation);
            }
            return Ok(principal);
        }
        match &inner.introspector {
            Some(introspector) => introspector.introspect(token).await.map_err(|e| match e {
                IntrospectionError::Invalid(r) => self.invalid(r),
                IntrospectionError::Unavailable(detail) => AuthError::Unavailable { detail },
            }),
            None if jwt::looks_like_jwt(token) => Err(self.invalid(InvalidTokenReason::Malformed)),
            None => Err(self.invalid(InvalidTokenReason::UnsupportedTokenFormat)),
        }
    }

    fn invalid(&self, reason: InvalidTokenReason) -> AuthError {
        AuthError::InvalidToken { reason, challenge: Arc::clone(&self.inner.challenge) }
    }

    pub(crate) fn challenge(&self) -> &Arc<Challenge> {
        &self.inner.challenge
    }

    /// The RFC 9728 metadata document.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.inner.metadata
    }

    /// Where to serve [`OAuthValidator::metadata`].
    pub fn well_known_paths(&self) -> &WellKnownPaths {
        &self.inner.well_known
    }

    /// The settings this validator runs with.
    pub fn settings(&self) -> &OAuthSettings {
        &self.inner.settings
    }
}

impl std::fmt::Debug for OAuthValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthValidator").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}
