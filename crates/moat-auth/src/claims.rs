//! From token claims (JWT payload or introspection answer) to a [`Principal`].

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::error::InvalidTokenReason;
use crate::principal::{AuthMethod, Principal};

/// Most roles/groups/scopes taken from one token; the rest are ignored (bounds the work a
/// token with a huge `groups` array can cause in policy evaluation).
const MAX_VALUES_PER_SET: usize = 1024;

/// Where roles and groups are read from.
///
/// Defaults, which cover Microsoft Entra ID and Keycloak without configuration:
/// - roles: `roles` (Entra app roles, many others), `realm_access.roles` (Keycloak realm
///   roles), `resource_access.<client_id>.roles` (Keycloak client roles of Moat's own client);
/// - groups: `groups`.
///
/// A configured claim is a dotted path into the claims (`realm_access.roles`); its value may be
/// a string or an array of strings. Configured lists replace the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    roles: Vec<Vec<String>>,
    groups: Vec<Vec<String>>,
}

impl ClaimMapping {
    /// The mapping for these settings; `client_id` selects Keycloak's client roles.
    pub fn new(roles_claims: Option<&[String]>, groups_claims: Option<&[String]>, client_id: Option<&str>) -> Self {
        let roles = match roles_claims {
            Some(paths) => paths.iter().map(|p| split_path(p)).collect(),
            None => {
                let mut v = vec![vec!["roles".to_owned()], split_path("realm_access.roles")];
                if let Some(client) = client_id {
                    // Built from segments, so a client id containing dots still works.
                    v.push(vec!["resource_access".to_owned(), client.to_owned(), "roles".to_owned()]);
                }
                v
            }
        };
        let groups = match groups_claims {
            Some(paths) => paths.iter().map(|p| split_path(p)).collect(),
            None => vec![vec!["groups".to_owned()]],
        };
        ClaimMapping { roles, groups }
    }

    /// Builds the principal. `iss` has already been checked by the caller.
    ///
    /// # Errors
    /// [`InvalidTokenReason::MissingClaim`] when there is neither `sub` nor a client id.
    pub(crate) fn principal(
        &self,
        claims: &Map<String, Value>,
        auth_method: AuthMethod,
    ) -> Result<Principal, InvalidTokenReason> {
        let client_id = ["client_id", "azp", "appid"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) | Some(_) => return Err(InvalidTokenReason::MissingClaim("sub")),
            None => client_id.clone().ok_or(InvalidTokenReason::MissingClaim("sub"))?,
        };
        let mut scopes = BTreeSet::new();
        for key in ["scope", "scp"] {
            collect(claims.get(key), &mut scopes, true);
        }
        let mut roles = BTreeSet::new();
        for path in &self.roles {
            collect(lookup(claims, path), &mut roles, false);
        }
        let mut groups = BTreeSet::new();
        for path in &self.groups {
            collect(lookup(claims, path), &mut groups, false);
        }
        Ok(Principal {
            subject,
            client_id,
            scopes,
            roles,
            groups,
            tenant: claims.get("tid").and_then(Value::as_str).map(str::to_owned),
            issuer: claims.get("iss").and_then(Value::as_str).map(str::to_owned),
            auth_method,
        })
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_owned).collect()
}

fn lookup<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// Adds a string (split on spaces when `space_separated`) or an array of strings to `out`.
fn collect(value: Option<&Value>, out: &mut BTreeSet<String>, space_separated: bool) {
    let mut add = |s: &str| {
        if !s.is_empty() && out.len() < MAX_VALUES_PER_SET {
            out.insert(s.to_owned());
        }
    };
    match value {
        Some(Value::String(s)) if space_separated => s.split(' ').for_each(&mut add),
        Some(Value::String(s)) => add(s),
        Some(Value::Array(items)) => {
            for item in items {
                if let Some(s) = item.as_str() {
                    add(s);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn entra_v2_access_token() {
        let claims = obj(json!({
            "iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
            "tid": "9188040d-6c67-4c5b-b112-36a304b66dad",
            "scp": "mcp.read mcp.write",
            "roles": ["Moat.Admin"],
            "groups": ["a1b2", "c3d4"],
        }));
        let p = ClaimMapping::new(None, None, None).principal(&claims, AuthMethod::Jwt);
        let p = p.unwrap_or_else(|_| Principal::anonymous());
        assert_eq!(p.subject, "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ");
        assert_eq!(p.client_id.as_deref(), Some("6e74172b-be56-4843-9ff4-e66a39bb12e3"));
        assert_eq!(p.tenant.as_deref(), Some("9188040d-6c67-4c5b-b112-36a304b66dad"));
        assert_eq!(p.scopes, set(&["mcp.read", "mcp.write"]));
        assert_eq!(p.roles, set(&["Moat.Admin"]));
        assert_eq!(p.groups, set(&["a1b2", "c3d4"]));
    }

    #[test]
    fn keycloak_realm_and_client_roles() {
        let claims = obj(json!({
            "iss": "https://kc.example/realms/corp",
            "sub": "f:1:alice",
            "azp": "claude",
            "scope": "openid mcp:read",
            "realm_access": {"roles": ["reader", "offline_access"]},
            "resource_access": {
                "moat.gateway": {"roles": ["operator"]},
                "other": {"roles": ["not-ours"]}
            },
        }));
        let p = ClaimMapping::new(None, None, Some("moat.gateway"))
            .principal(&claims, AuthMethod::Jwt)
            .unwrap_or_else(|_| Principal::anonymous());
        assert_eq!(p.roles, set(&["offline_access", "operator", "reader"]));
        assert_eq!(p.scopes, set(&["mcp:read", "openid"]));
        assert_eq!(p.client_id.as_deref(), Some("claude"));
    }

    #[test]
    fn configured_claims_replace_the_defaults() {
        let claims = obj(json!({
            "sub": "bob", "roles": ["x"], "https://example.com/roles": "y",
            "org": {"teams": ["blue"]}
        }));
        let p = ClaimMapping::new(Some(&["org.teams".to_owned()]), Some(&[]), None)
            .principal(&claims, AuthMethod::Jwt)
            .unwrap_or_else(|_| Principal::anonymous());
        assert_eq!(p.roles, set(&["blue"]));
        assert!(p.groups.is_empty());
    }

    #[test]
    fn client_credentials_token_without_sub_uses_the_client_id() {
        let claims = obj(json!({"client_id": "svc", "scp": ["a", "b"]}));
        let p = ClaimMapping::new(None, None, None)
            .principal(&claims, AuthMethod::Introspection)
            .unwrap_or_else(|_| Principal::anonymous());
        assert_eq!(p.subject, "svc");
        assert_eq!(p.scopes, set(&["a", "b"]));
        let none = obj(json!({"scope": "a"}));
        assert_eq!(
            ClaimMapping::new(None, None, None).principal(&none, AuthMethod::Jwt),
            Err(InvalidTokenReason::MissingClaim("sub"))
        );
        let bad = obj(json!({"sub": 42}));
        assert!(ClaimMapping::new(None, None, None).principal(&bad, AuthMethod::Jwt).is_err());
    }
}
