//! The authenticated caller.

use std::collections::BTreeSet;
use std::fmt;

/// Who is calling: the result of authentication, the input of authorization.
///
/// Built only by this crate's authenticators (or by tests through [`Principal::new`]); the
/// gateway binds sessions to [`Principal::key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `sub` of the token (or the client id when a client-credentials token has no `sub`), or
    /// the subject an API key was created for.
    pub subject: String,
    /// The OAuth client the token was issued to (`client_id`, `azp` or Entra's `appid`).
    pub client_id: Option<String>,
    /// Granted scopes (`scope`, or Entra's `scp`, split on spaces).
    pub scopes: BTreeSet<String>,
    /// Roles from the configured role claims (defaults: `roles`, `realm_access.roles`,
    /// `resource_access.<client>.roles`), or the roles of an API key.
    pub roles: BTreeSet<String>,
    /// Groups from the configured group claims (default: `groups`).
    pub groups: BTreeSet<String>,
    /// Tenant (Entra's `tid`), when the issuer has tenants.
    pub tenant: Option<String>,
    /// The issuer that vouched for this principal (`iss`), or `None` for API keys and anonymous.
    pub issuer: Option<String>,
    /// How the caller proved who they are.
    pub auth_method: AuthMethod,
}

/// How a [`Principal`] was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A JWT access token verified against the issuer's JWKS.
    Jwt,
    /// An opaque access token checked by RFC 7662 introspection.
    Introspection,
    /// A Moat API key.
    ApiKey,
    /// `[auth] mode = "none"`: nobody was authenticated.
    Anonymous,
}

impl AuthMethod {
    /// The lowercase name used in logs, audit records and Cedar (`principal.auth_method`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::Introspection => "introspection",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Anonymous => "anonymous",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Principal {
    /// A principal with only a subject; the other fields empty.
    pub fn new(subject: impl Into<String>, auth_method: AuthMethod) -> Self {
        Principal {
            subject: subject.into(),
            client_id: None,
            scopes: BTreeSet::new(),
            roles: BTreeSet::new(),
            groups: BTreeSet::new(),
            tenant: None,
            issuer: None,
            auth_method,
        }
    }

    /// The principal used when `[auth] mode = "none"`.
    pub fn anonymous() -> Self {
        Principal::new("anonymous", AuthMethod::Anonymous)
    }

    /// A stable identity for binding state (sessions) to this caller: the same person through
    /// the same issuer always gets the same key, and two issuers can never collide.
    ///
    /// Format: `<method>:<issuer>#<subject>` for tokens (tenant included when present),
    /// `api_key:<subject>` for keys, `anonymous` for none.
    pub fn key(&self) -> String {
        match self.auth_method {
            AuthMethod::Anonymous => "anonymous".to_owned(),
            AuthMethod::ApiKey => format!("api_key:{}", self.subject),
            AuthMethod::Jwt | AuthMethod::Introspection => format!(
                "oauth:{}#{}#{}",
                self.issuer.as_deref().unwrap_or(""),
                self.tenant.as_deref().unwrap_or(""),
                self.subject
            ),
        }
    }

    /// Whether the principal was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn key_separates_issuers_and_methods() {
        let mut a = Principal::new("alice", AuthMethod::Jwt);
        a.issuer = Some("https://a.example".into());
        let mut b = a.clone();
        b.issuer = Some("https://b.example".into());
        assert_ne!(a.key(), b.key());
        let k = Principal::new("alice", AuthMethod::ApiKey);
        assert_ne!(a.key(), k.key());
        let mut intro = a.clone();
        intro.auth_method = AuthMethod::Introspection;
        // The same subject through the same issuer is the same person, whatever the token format.
        assert_eq!(a.key(), intro.key());
    }
}
