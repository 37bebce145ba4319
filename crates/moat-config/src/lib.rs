//! Moat's configuration: the `moat.toml` schema, the loader, and secret references.
//!
//! Loading is two steps (STYLE.md §7, "parse, then resolve"): serde turns the file into these
//! typed sections, rejecting unknown keys; then [`validate`] checks meaning (addresses, names,
//! inline secrets) and reports every problem at once, each located at its file, line and key.
//! Secrets are never values here, only [`SecretRef`]s (`env:NAME` or `file:PATH`) that the
//! binary resolves when it starts.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod duration;
pub mod error;
pub mod gateway;
pub mod guards;
mod locate;
pub mod sandbox;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod upstream;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use duration::Duration;
pub use error::{ConfigError, ConfigErrors};
pub use gateway::{GatewayConfig, SessionsConfig};
pub use secret::{Secret, SecretRef};
pub use upstream::{EnvValue, UpstreamConfig};

/// The configuration used when no file is given and `./moat.toml` does not exist: the gateway
/// on loopback in front of the built-in demo server, with every guard at its safe default.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The whole of `moat.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub sessions: SessionsConfig,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default)]
    pub store: store::StoreConfig,
    #[serde(default)]
    pub auth: auth::AuthConfig,
    #[serde(default)]
    pub policy: auth::PolicyConfig,
    #[serde(default)]
    pub audit: audit::AuditConfig,
    #[serde(default)]
    pub guards: guards::GuardsConfig,
    #[serde(default)]
    pub admin: admin::AdminConfig,
    #[serde(default)]
    pub telemetry: telemetry::TelemetryConfig,
}

/// Where a configuration came from; named in every error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Embedded => f.write_str("<embedded default>"),
        }
    }
}

/// A checked configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub origin: Origin,
}

impl LoadedConfig {
    /// The folder relative paths in the file are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match &self.origin {
            Origin::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            Origin::Embedded => PathBuf::from("."),
        }
    }
}

/// Finds and loads the configuration: `explicit` when given (it must exist), else
/// `./moat.toml` when present, else [`EMBEDDED_DEFAULT`].
pub fn load(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigErrors> {
    match explicit {
        Some(path) => load_file(path),
        None => {
            let local = Path::new("moat.toml");
            if local.is_file() {
                load_file(local)
            } else {
                parse(EMBEDDED_DEFAULT, Origin::Embedded)
            }
        }
    }
}

/// Loads one file.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let origin = Origin::File(path.to_path_buf());
    let source = std::fs::read_to_string(path).map_err(|e| ConfigErrors::one(ConfigError::io(origin.clone(), e)))?;
    parse(&source, origin)
}

/// Parses and validates a configuration held in memory.
pub fn parse(source: &str, origin: Origin) -> Result<LoadedConfig, ConfigErrors> {
    let config: Config =
        toml::from_str(source).map_err(|e| ConfigErrors::one(ConfigError::from_toml(&origin, source, &e)))?;
    validate::validate(&config, source, &origin)?;
    Ok(LoadedConfig { config, origin })
}
