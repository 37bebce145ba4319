//! `moat demo-server`: Moat's built-in, deliberately vulnerable MCP server (see `docs/demo.md`).

use std::net::SocketAddr;
use std::process::ExitCode;

use moat_demo::DemoOptions;

/// Run the built-in, deliberately vulnerable MCP demo server (stdio by default).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve Streamable HTTP at `http://ADDR/mcp` instead of stdio (e.g. `127.0.0.1:8788`).
    /// Only loopback `Host` headers are accepted.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,

    /// After the first `tools/list`, change the description of `add` and send
    /// `notifications/tools/list_changed` (a rug pull).
    #[arg(long)]
    rug_pull: bool,

    /// Serve the MCP conformance suite's fixture tools, resources and prompts instead of the
    /// demo tools.
    #[arg(long, conflicts_with = "rug_pull")]
    conformance: bool,
}

pub fn run(args: Args) -> ExitCode {
    let opts = DemoOptions { rug_pull: args.rug_pull, conformance: args.conformance };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.http {
            Some(addr) => moat_demo::serve_http(addr, opts).await,
            None => moat_demo::serve_stdio(opts).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
