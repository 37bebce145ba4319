//! Subcommands. Each module exposes `Args` (clap) and `run(args) -> ExitCode`.

pub mod audit;
pub mod config;
pub mod demo_server;
pub mod gateway;
pub mod inspect;
pub mod keys;
pub mod pins;
pub mod sandbox;
pub mod scan;
pub mod scan_clients;
pub mod scan_tools;
pub mod wrap;

use tracing_subscriber::EnvFilter;

/// Logs go to stderr, so that stdout stays free for data (and for the stdio transport).
pub fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// Fails closed on configuration that asks for something this build cannot give.
pub fn refuse_unenforced(config: &moat_config::Config) -> Result<(), String> {
    if config.auth.mode == moat_config::auth::AuthMode::None && !config.gateway.listen.ip().is_loopback() {
        return Err(format!(
            "`auth.mode` is `none` but the gateway listens on `{}`, which is not loopback; set `auth.mode = \"oauth\"` or `\"api_key\"`",
            config.gateway.listen
        ));
    }
    Ok(())
}
