//! `moat gateway`: the Streamable HTTP gateway in front of every configured upstream.

use std::path::PathBuf;
use std::process::ExitCode;

/// Serve one MCP endpoint in front of the configured upstream servers.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file. Default: `./moat.toml` if it exists, else the embedded default
    /// (the built-in demo server behind a loopback endpoint).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let loaded = match super::config::load_or_report(args.config.as_deref()) {
        Some(l) => l,
        None => return ExitCode::from(2),
    };
    if let Err(e) = super::refuse_unenforced(&loaded.config) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    tracing::info!(config = %loaded.origin, "configuration loaded");
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry = match crate::telemetry::init(&loaded.config.telemetry, &loaded.base_dir(), rt.handle().clone()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(moat_gateway::run_gateway(loaded, super::shutdown_signal()));
    // Flush the last spans while the runtime that sends them still runs.
    if let Some(t) = telemetry {
        t.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
