//! The guard chain (ARCHITECTURE.md, "request guards" and "response guards").
//!
//! The router calls these phases in a fixed order, and each returns a decision:
//!
//! 1. [`Guards::filter_list`] — on every list an upstream returns: pin each definition
//!    (trust on first use, or require approval), quarantine changed or poisoned ones, and
//!    hide what is quarantined.
//! 2. [`Guards::check_call`] — before a `tools/call` leaves: rate limits, then the
//!    arguments against the pinned schema and the path, URL, shell, SQL and secret policies.
//! 3. [`Guards::check_result`] — before a result reaches the client: size cap, sanitizing,
//!    injection detection (block / redact / spotlight / flag), secret and PII redaction.
//!
//! Every phase that decides something emits one [`DecisionRecord`] (`moat::decision`).
//! Any guard that errors denies (fail closed).

pub mod args;
pub mod decision;
pub mod output;
pub mod pins;
pub mod rate;

use std::sync::Arc;

use moat_config::guards::{GuardsConfig, Level, OutputAction};
use moat_detect::lockfile::LockFile;
use moat_detect::{Detector, Severity};
use moat_store::Store;
use serde_json::Value;

pub use decision::{Decision, DecisionRecord};
pub use output::ResultDecision;
pub use pins::{Filtered, ListKindPin, Quarantine};

/// A refusal the client reads as a JSON-RPC error.
#[derive(Debug, Clone)]
pub struct Denial {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
    /// Rule ids behind the refusal, for the decision record.
    pub rules: Vec<String>,
}

impl Denial {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Denial { code, message: message.into(), data: None, rules: Vec::new() }
    }
    pub fn with_rules(mut self, rules: Vec<String>) -> Self {
        self.rules = rules;
        self
    }
}

/// Everything the phases share: configuration, the detector and the store.
pub struct Guards {
    pub config: GuardsConfig,
    pub detector: Detector,
    pub store: Arc<dyn Store>,
    pub pins: pins::PinGuard,
    pub args: args::ArgumentGuard,
    pub output: output::OutputGuardRuntime,
    pub rate: rate::RateGuard,
    /// Cedar policies (`[policy] files`); permits everything when none are configured.
    pub authz: Arc<moat_auth::policy::Authorizer>,
}

impl std::fmt::Debug for Guards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guards").field("store", &self.store.backend()).finish()
    }
}

impl Guards {
    /// Whether the session's principal may act on a resource (Cedar; fail closed).
    pub fn authorize(
        &self,
        session: &crate::session::Session,
        action: moat_auth::policy::Action,
        resource: &moat_auth::policy::Resource<'_>,
        arguments: Option<&Value>,
    ) -> Result<(), Denial> {
        let ctx = moat_auth::policy::Context {
            arguments: arguments.and_then(Value::as_object),
            time: std::time::SystemTime::now(),
            source_ip: None,
        };
        match self.authz.is_authorized(&session.identity, action, resource, &ctx) {
            moat_auth::policy::Decision::Allow { .. } => Ok(()),
            moat_auth::policy::Decision::Deny { reasons, errors } => {
                if !errors.is_empty() {
                    tracing::warn!(errors = ?errors, "policy evaluation failed; denied");
                }
                Err(Denial::new(moat_mcp::jsonrpc::code::DENIED, "denied by policy")
                    .with_rules(reasons.into_iter().map(|r| format!("policy:{r}")).collect()))
            }
        }
    }

    pub fn new(
        config: GuardsConfig,
        detector: Detector,
        store: Arc<dyn Store>,
        lock: Option<LockFile>,
        authz: moat_auth::policy::Authorizer,
    ) -> Guards {
        let c = &config;
        if lock.is_some() {
            tracing::info!("enforcing the lock file: definitions not in it are quarantined");
        }
        let g = Guards {
            pins: pins::PinGuard::new(store.clone(), detector.clone(), c.tool_metadata.clone(), lock),
            args: args::ArgumentGuard::new(c.arguments.clone(), c.tools.clone(), detector.clone()),
            output: output::OutputGuardRuntime::new(c.output.clone(), c.tools.clone(), detector.clone()),
            rate: rate::RateGuard::new(c.rate_limits.clone(), store.clone()),
            authz: Arc::new(authz),
            config,
            detector,
            store,
        };
        g.log_switches();
        g
    }

    /// Every guard switched off is said once, at start.
    fn log_switches(&self) {
        let c = &self.config;
        if !c.tool_metadata.enabled {
            tracing::warn!("guard off: tool metadata analysis (`guards.tool_metadata.enabled = false`)");
        }
        if !c.arguments.enabled {
            tracing::warn!("guard off: argument checks (`guards.arguments.enabled = false`)");
        } else if !c.arguments.validate_schema {
            tracing::warn!("guard off: argument schema validation (`guards.arguments.validate_schema = false`)");
        }
        if !c.output.enabled {
            tracing::warn!("guard off: output guards (`guards.output.enabled = false`)");
        } else {
            if !c.output.sanitize {
                tracing::warn!("guard off: output sanitizing (`guards.output.sanitize = false`)");
            }
            if !c.output.redact_secrets {
                tracing::warn!("guard off: secret redaction (`guards.output.redact_secrets = false`)");
            }
            if !c.output.redact_pii {
                tracing::warn!("guard off: PII redaction (`guards.output.redact_pii = false`)");
            }
            if c.output.injection == OutputAction::Flag {
                tracing::warn!("injection findings below `guards.output.block_at` are only flagged");
            }
        }
    }
}

/// The configured level as the detector's severity.
pub fn severity(level: Level) -> Severity {
    match level {
        Level::Info => Severity::Info,
        Level::Low => Severity::Low,
        Level::Medium => Severity::Medium,
        Level::High => Severity::High,
        Level::Critical => Severity::Critical,
    }
}
