//! Moat's identity and access: who is calling, and what they may do.
//!
//! # Authentication
//!
//! [`Authenticator`] turns the `Authorization` header of one HTTP request into a [`Principal`],
//! or into an [`AuthError`] that already knows its HTTP status and `WWW-Authenticate` challenge
//! ([`AuthError::into_response_parts`]). It has three modes:
//!
//! - **OAuth 2.1 resource server** ([`OAuthValidator`]), as the MCP authorization specification
//!   (2025-11-25) requires: RFC 9728 protected-resource metadata ([`ProtectedResourceMetadata`]),
//!   RFC 6750 bearer tokens and challenges, JWT access tokens verified against the issuer's JWKS
//!   (found by RFC 8414 or OpenID Connect discovery, or configured), and opaque tokens through
//!   RFC 7662 introspection. The audience check cannot be turned off: a token minted for another
//!   resource is refused, which is what makes token passthrough and confused-deputy attacks fail.
//! - **API keys** ([`apikey`]): `moat_<id>_<secret>`, stored only as salted hashes.
//! - **None**: every request is the anonymous principal (loopback development only; the gateway
//!   enforces that).
//!
//! Only asymmetric signature algorithms are accepted (RS256, PS256, ES256, EdDSA). The algorithm
//! list is not configurable on purpose: `none` and HMAC are the two classic JWT bypasses (an
//! HS256 token "signed" with the issuer's public RSA key), and the key chosen for a token must
//! match the family of the algorithm its header names.
//!
//! # Upstream credentials
//!
//! [`UpstreamTokenSource`] is the client side: Moat's own OAuth tokens for HTTP upstreams
//! (client credentials, or RFC 8693 token exchange of the caller's token), cached and
//! refreshed, so that the caller's token is never passed through.
//!
//! # Authorization
//!
//! [`policy::Authorizer`] evaluates Cedar policies for each MCP action on a tool, prompt or
//! resource. Its [`policy::Decision`] carries the ids of the policies that decided it, and any
//! evaluation error denies (fail closed).
//!
//! # Design
//!
//! Everything here is `Send + Sync` and cheap to clone (an `Arc` inside), so the front can keep
//! one [`Authenticator`] in its state and clone it into every request. Network access goes
//! through the small [`HttpClient`] trait; the default implementation is `reqwest` with rustls,
//! no redirects, short timeouts and bounded bodies.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod apikey;
mod authenticator;
mod claims;
pub mod config;
mod error;
mod header;
mod http_client;
mod introspection;
mod jwks;
mod jwt;
mod metadata;
mod oauth;
pub mod policy;
mod principal;
mod scopes;
mod settings;
mod upstream_token;
mod verified;

pub use authenticator::Authenticator;
pub use claims::ClaimMapping;
pub use error::{AuthError, ConfigError, InvalidTokenReason, ResponseParts};
pub use http_client::{BoxFuture, FetchError, HttpClient, HttpResponse, ReqwestClient};
pub use metadata::{ProtectedResourceMetadata, WellKnownPaths};
pub use oauth::OAuthValidator;
pub use principal::{AuthMethod, Principal};
pub use scopes::{check_scopes, InsufficientScope};
pub use settings::{
    is_loopback_url, require_https_or_loopback, ClientSecret, OAuthSettings, DEFAULT_LEEWAY_SECONDS, MAX_LEEWAY_SECONDS,
};
pub use upstream_token::{
    AccessToken, SubjectToken, UpstreamGrant, UpstreamTokenError, UpstreamTokenSettings, UpstreamTokenSource,
    ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT,
};
