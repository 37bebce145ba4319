//! The gateway: Moat is itself the MCP server its clients see. It answers `initialize`,
//! aggregates the lists of its upstream servers under namespaced names, routes calls, and
//! routes server-to-client requests back to the client session that caused them.
//!
//! The path of a message (ARCHITECTURE.md): front ([`front::http`] or [`front::stdio`]) →
//! session ([`session`]) → [`router`] → upstream ([`upstream`]) and back.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Refusals (`Denial`, an HTTP `Response`) are returned by value, on the refusal path only:
// boxing them would cost every refusal an allocation and buy the common path nothing.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod front;
pub mod guard;
pub mod metrics;
pub mod names;
pub mod request;
pub mod router;
pub mod session;
pub mod telemetry;
pub mod upstream;

pub use router::{Reply, Router, StreamItem};
pub use session::{Session, SessionTable};
pub use upstream::Upstream;

use std::time::Duration;

use moat_config::LoadedConfig;
use tokio::sync::mpsc;

/// How often the gauges (sessions, upstreams up, quarantined definitions) are refreshed.
const METRICS_REFRESH: Duration = Duration::from_secs(5);
/// How often expired sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on `{0}`: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error(transparent)]
    Tls(#[from] front::tls::TlsError),
    #[error("the configuration has no upstream; add an `[[upstream]]` table")]
    NoUpstream,
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("cannot load the detection rules: {0}")]
    Rules(String),
    #[error("cannot start the audit log: {0}")]
    Audit(String),
    #[error("cannot load the lock file: {0}")]
    Lock(String),
    #[error("authentication or policy setup failed: {0}")]
    Auth(String),
}

/// Opens the store, builds the guards, starts every upstream and the router over them.
pub async fn start_router(loaded: &LoadedConfig) -> Result<std::sync::Arc<Router>, StartError> {
    let config = &loaded.config;
    if config.upstreams.is_empty() {
        return Err(StartError::NoUpstream);
    }
    let store =
        moat_store_open::open(config.store.url.as_deref()).await.map_err(|e| StartError::Store(e.to_string()))?;
    tracing::info!(store = store.backend(), "store open");
    let detector = moat_detect::Detector::builtin().map_err(|e| StartError::Rules(e.to_string()))?;
    let lock = match &config.guards.lock_file {
        Some(p) => {
            let path = loaded.base_dir().join(p);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| StartError::Lock(format!("cannot read `{}`: {e}", path.display())))?;
            Some(
                moat_detect::lockfile::LockFile::parse(&text)
                    .map_err(|e| StartError::Lock(format!("`{}`: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let authz = moat_auth::config::authorizer_from_config(&config.policy, &loaded.base_dir())
        .map_err(|e| StartError::Auth(e.to_string()))?;
    if authz.has_policies() {
        tracing::info!(
            policies = authz.policy_count(),
            "authorization policies loaded; anything not permitted is denied"
        );
    }
    let guards = std::sync::Arc::new(guard::Guards::new(config.guards.clone(), detector, store, lock, authz));
    let (events_tx, events_rx) = mpsc::channel(1024);
    let upstreams = config
        .upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| Upstream::start(i, u.clone(), loaded.base_dir(), events_tx.clone()))
        .collect();
    let sessions =
        SessionTable::new(config.sessions.idle_timeout.0, config.sessions.max_lifetime.0, config.gateway.max_sessions);
    sessions.spawn_sweeper(SWEEP_EVERY);
    let audit = start_audit(loaded, &guards.store).await?;

    let router = Router::new(
        upstreams,
        events_rx,
        sessions,
        &config.gateway.name_separator,
        guards,
        audit,
        config.audit.include_arguments,
    );
    router.spawn_metrics_refresh(METRICS_REFRESH);
    Ok(router)
}

/// Starts the audit writer over the configured sinks (`docs/audit.md`).
async fn start_audit(
    loaded: &LoadedConfig,
    store: &std::sync::Arc<dyn moat_store::Store>,
) -> Result<Option<moat_audit::AuditLog>, StartError> {
    let config = &loaded.config;
    let a = &config.audit;
    let mut sinks: Vec<Box<dyn moat_audit::AuditSink>> = Vec::new();
    if a.store {
        match store.audit() {
            Some(s) => sinks.push(Box::new(moat_audit::StoreSink::new(s, store.backend()))),
            None => {
                return Err(StartError::Audit(format!(
                    "the `{}` store keeps no audit records; set `audit.store = false` and `audit.jsonl`",
                    store.backend()
                )))
            }
        }
    }
    if let Some(path) = &a.jsonl {
        let path = loaded.base_dir().join(path);
        sinks.push(Box::new(moat_audit::JsonlSink::open(&path).map_err(|e| StartError::Audit(e.to_string()))?));
    }
    if sinks.is_empty() {
        tracing::warn!("audit log off: `audit.store = false` and no `audit.jsonl`");
        return Ok(None);
    }
    let signer = match &a.signing_key {
        Some(r) => {
            let secret = r.resolve(&loaded.base_dir()).map_err(|e| StartError::Audit(e.to_string()))?;
            Some(
                moat_audit::AuditSigner::from_key_bytes(secret.expose())
                    .map_err(|e| StartError::Audit(e.to_string()))?,
            )
        }
        None => {
            tracing::warn!(
                "audit records are hash-chained but not sealed: set `audit.signing_key` (see `moat audit keygen`)"
            );
            None
        }
    };
    let required = a.required.unwrap_or(config.auth.mode == moat_config::auth::AuthMode::Oauth);
    let log_config = moat_audit::AuditLogConfig {
        required,
        seal_every: a.seal_every,
        seal_interval: a.seal_interval.0,
        ..Default::default()
    };
    let log =
        moat_audit::AuditLog::start(log_config, sinks, signer).await.map_err(|e| StartError::Audit(e.to_string()))?;
    tracing::info!(required, "audit log on");
    Ok(Some(log))
}

/// Runs `moat gateway` until `shutdown` resolves; upstreams are stopped on the way out.
pub async fn run_gateway(
    loaded: LoadedConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let g = &loaded.config.gateway;
    let tls = match (&g.tls_cert, &g.tls_key) {
        (Some(c), Some(k)) => Some(front::tls::acceptor(c.clone(), k.clone(), loaded.base_dir())?),
        _ => None,
    };
    let router = start_router(&loaded).await?;
    let listener = tokio::net::TcpListener::bind(g.listen).await.map_err(|e| StartError::Listen(g.listen, e))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let local = listener.local_addr().unwrap_or(g.listen);
    tracing::info!(endpoint = %format!("{scheme}://{local}{}", g.path), upstreams = loaded.config.upstreams.len(), "moat gateway listening");
    let authn =
        moat_auth::config::authenticator_from_config(&loaded.config.auth, &g.canonical_url(), &loaded.base_dir())
            .map_err(|e| StartError::Auth(e.to_string()))?;
    tracing::info!(mode = authn.mode_name(), "authentication");
    if authn.mode_name() == "none" {
        tracing::warn!(
            "authentication is off (`auth.mode = \"none\"`): every local caller is trusted; use it only on loopback"
        );
    }
    if let Err(e) = authn.warm_up().await {
        tracing::warn!(error = %e, "could not reach the authorization server yet; will retry on the first request");
    }
    let app = front::http::HttpFront::new(router.clone(), g, authn, &loaded.config.policy).app();
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
    let admin_cfg = &loaded.config.admin;
    if admin_cfg.enabled {
        let listener = tokio::net::TcpListener::bind(admin_cfg.listen)
            .await
            .map_err(|e| StartError::Listen(admin_cfg.listen, e))?;
        tracing::info!(endpoint = %format!("http://{}", listener.local_addr().unwrap_or(admin_cfg.listen)), "admin listener (metrics, health)");
        let r = router.clone();
        let ready = move || r.upstreams().iter().all(|u| u.connection_now().is_some());
        let mut stopped = admin_stopped.clone();
        let metrics = router.metrics().clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = admin::serve_admin(listener, metrics, ready, shutdown).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
    }
    front::http::serve(listener, app, tls, shutdown).await;
    stop_admin.send_replace(true);
    for up in router.upstreams() {
        up.shutdown().await;
    }
    Ok(())
}

/// Runs `moat wrap`: the stdio front around the configured single upstream.
pub async fn run_wrap(loaded: LoadedConfig) -> Result<(), StartError> {
    let limits = moat_mcp::Limits {
        max_bytes: loaded.config.gateway.max_body_bytes,
        max_depth: loaded.config.gateway.max_json_depth,
    };
    let router = start_router(&loaded).await?;
    let result = front::stdio::serve(router.clone(), limits).await;
    for up in router.upstreams() {
        up.shutdown().await;
    }
    if let Err(e) = result {
        tracing::error!(error = %e, "stdio front failed");
    }
    Ok(())
}
