//! Subcommands. Each module exposes `Args` (clap) and `run(args) -> ExitCode`.

pub mod demo_server;
pub mod sandbox;

use tracing_subscriber::EnvFilter;

/// Logs go to stderr, so that stdout stays free for data (and for the stdio transport).
pub fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
