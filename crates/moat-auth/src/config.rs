//! From `moat.toml`'s `[auth]` and `[policy]` (the types in `moat-config`) to a running
//! [`Authenticator`] and [`Authorizer`]: resolves the client secret reference, builds the
//! settings, and loads the policy files. The gateway calls these once at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use moat_config::auth::{AuthConfig, AuthMode, PolicyConfig};

use crate::apikey::{default_key_file, ApiKeyAuthenticator, FileKeyStore};
use crate::error::ConfigError;
use crate::http_client::{FetchError, HttpClient, ReqwestClient};
use crate::oauth::OAuthValidator;
use crate::policy::{Authorizer, PolicyError};
use crate::settings::{ClientSecret, OAuthSettings};
use crate::Authenticator;

/// Why the authenticator could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Settings problems (all of them).
    #[error("invalid `[auth]` settings: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Settings(Vec<ConfigError>),
    /// `client_secret` could not be resolved, or is not text.
    #[error("{0}")]
    Secret(String),
    /// The HTTP client could not be created.
    #[error("cannot create the http client: {0}")]
    Http(FetchError),
    /// `mode = "api_key"` without `api_keys_file` on a system with no data directory.
    #[error("`auth.api_keys_file` is not set and this system has no data directory")]
    NoKeyFile,
}

/// Builds the authenticator for `[auth]`. `public_url` is the gateway's canonical URI;
/// `base_dir` is the folder of the configuration file (for `file:` secrets and relative paths).
///
/// Network access is not attempted here; call [`Authenticator::warm_up`] next.
///
/// # Errors
/// [`BuildError`]; settings errors are all reported together.
pub fn authenticator_from_config(
    auth: &AuthConfig,
    public_url: &str,
    base_dir: &Path,
) -> Result<Authenticator, BuildError> {
    match auth.mode {
        AuthMode::None => Ok(Authenticator::none()),
        AuthMode::ApiKey => {
            let path = match &auth.api_keys_file {
                Some(p) => resolve(base_dir, p),
                None => default_key_file().ok_or(BuildError::NoKeyFile)?,
            };
            Ok(Authenticator::api_key(ApiKeyAuthenticator::new(Arc::new(FileKeyStore::new(path)))))
        }
        AuthMode::Oauth => {
            let http: Arc<dyn HttpClient> = Arc::new(ReqwestClient::new().map_err(BuildError::Http)?);
            let settings = oauth_settings(auth, public_url, base_dir)?;
            let validator = OAuthValidator::new(settings, http).map_err(BuildError::Settings)?;
            Ok(Authenticator::oauth(validator))
        }
    }
}

/// The OAuth settings for `[auth]` (secret resolved).
///
/// # Errors
/// [`BuildError::Secret`] when `client_secret` cannot be read or is not UTF-8.
pub fn oauth_settings(auth: &AuthConfig, public_url: &str, base_dir: &Path) -> Result<OAuthSettings, BuildError> {
    let mut s = OAuthSettings::new(public_url, auth.issuer.clone());
    s.jwks_uri = auth.jwks_uri.clone();
    s.audience = auth.audience.clone();
    s.introspection_url = auth.introspection_url.clone();
    s.client_id = auth.client_id.clone();
    if let Some(reference) = &auth.client_secret {
        let secret = reference.resolve(base_dir).map_err(|e| BuildError::Secret(e.to_string()))?;
        let text =
            secret.expose_str().ok_or_else(|| BuildError::Secret(format!("secret `{reference}` is not UTF-8 text")))?;
        s.client_secret = Some(ClientSecret::new(text));
    }
    s.required_scopes = auth.required_scopes.clone();
    s.roles_claims = auth.roles_claims.clone();
    s.groups_claims = auth.groups_claims.clone();
    s.leeway_seconds = auth.leeway_seconds;
    s.authorization_servers = auth.authorization_servers.clone();
    s.scopes_supported = auth.scopes_supported.clone();
    Ok(s)
}

/// Loads `[policy] files` (relative paths against `base_dir`). No files: permit all.
///
/// # Errors
/// Every unreadable file, parse and validation error, with file and line.
pub fn authorizer_from_config(policy: &PolicyConfig, base_dir: &Path) -> Result<Authorizer, PolicyError> {
    let paths: Vec<PathBuf> = policy.files.iter().map(|p| resolve(base_dir, p)).collect();
    Authorizer::from_files(&paths)
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AuthConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn oauth_section_becomes_a_validator() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s3cret\n").unwrap();
        let auth = parse(
            r#"
            mode = "oauth"
            issuer = "https://as.example"
            introspection_url = "https://as.example/introspect"
            client_id = "moat"
            client_secret = "file:secret.txt"
            required_scopes = ["mcp:read"]
            "#,
        );
        let s = oauth_settings(&auth, "https://moat.example/mcp", dir.path()).unwrap();
        assert_eq!(s.client_secret.as_ref().map(ClientSecret::expose), Some("s3cret"));
        let a = authenticator_from_config(&auth, "https://moat.example/mcp", dir.path()).unwrap();
        assert_eq!(a.mode_name(), "oauth");
        let (paths, meta) = a.protected_resource_metadata().unwrap();
        assert_eq!(paths.path_inserted, "/.well-known/oauth-protected-resource/mcp");
        assert_eq!(meta.scopes_supported, vec!["mcp:read".to_owned()]);
    }

    #[test]
    fn bad_settings_and_missing_secrets_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let insecure = parse("mode = \"oauth\"\nissuer = \"http://as.example\"");
        assert!(matches!(
            authenticator_from_config(&insecure, "https://moat.example/mcp", dir.path()),
            Err(BuildError::Settings(_))
        ));
        let missing = parse("mode = \"oauth\"\nissuer = \"https://as.example\"\nclient_secret = \"file:nope.txt\"");
        assert!(matches!(
            authenticator_from_config(&missing, "https://moat.example/mcp", dir.path()),
            Err(BuildError::Secret(_))
        ));
    }

    #[test]
    fn api_key_and_policy_paths_are_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let auth = parse("mode = \"api_key\"\napi_keys_file = \"keys.json\"");
        assert_eq!(authenticator_from_config(&auth, "https://m/mcp", dir.path()).unwrap().mode_name(), "api_key");
        std::fs::write(dir.path().join("p.cedar"), "permit(principal, action, resource);").unwrap();
        let policy: PolicyConfig = toml::from_str("files = [\"p.cedar\"]").unwrap();
        assert_eq!(authorizer_from_config(&policy, dir.path()).unwrap().policy_count(), 1);
        let none = PolicyConfig::default();
        assert!(!authorizer_from_config(&none, dir.path()).unwrap().has_policies());
    }
}
