//! Scope checks (the caller computes which scopes a method or tool needs).

use crate::principal::Principal;

/// The principal lacks scopes. The front answers 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."` (see
/// [`crate::Authenticator::insufficient_scope`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing scopes: {}", missing.join(" "))]
pub struct InsufficientScope {
    /// The required scopes the principal does not have, in the order they were asked for.
    pub missing: Vec<String>,
}

/// Checks that `principal` holds every scope in `required`.
///
/// # Errors
/// [`InsufficientScope`] listing each missing scope.
pub fn check_scopes(principal: &Principal, required: &[&str]) -> Result<(), InsufficientScope> {
    let mut missing: Vec<String> = Vec::new();
    for scope in required {
        if !principal.scopes.contains(*scope) && !missing.iter().any(|m| m == scope) {
            missing.push((*scope).to_owned());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(InsufficientScope { missing })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::AuthMethod;

    #[test]
    fn reports_each_missing_scope_once() {
        let mut p = Principal::new("a", AuthMethod::Jwt);
        p.scopes.insert("mcp:read".into());
        assert_eq!(check_scopes(&p, &["mcp:read"]), Ok(()));
        assert_eq!(check_scopes(&p, &[]), Ok(()));
        assert_eq!(
            check_scopes(&p, &["mcp:read", "mcp:write", "mcp:write", "mcp:admin"]),
            Err(InsufficientScope { missing: vec!["mcp:write".into(), "mcp:admin".into()] })
        );
    }
}
