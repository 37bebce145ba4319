//! Moat's built-in, deliberately vulnerable MCP server.
//!
//! Moat needs something real to defend in its quick start, docs, tests and benchmarks, so this
//! crate is a genuine MCP server (built on the official Rust SDK, `rmcp`, speaking protocol
//! 2025-11-25 over stdio or Streamable HTTP) whose tools show the attacks Moat answers:
//! tool poisoning (`get_weather`), indirect prompt injection (`read_document`), PII and
//! secret leakage (`lookup_customer`), command injection (`ping_host`) and, with
//! [`DemoOptions::rug_pull`], a rug pull (the description of `add` changes after the first
//! `tools/list`). Nothing here is dangerous to the machine it runs on: no tool reads a file,
//! runs a command or opens a connection; the harm is in what the texts ask an AI assistant
//! to do. `docs/demo.md` describes each tool and the attack it shows.
//!
//! With [`DemoOptions::conformance`] the server offers instead the fixture tools, resources and
//! prompts that the MCP conformance suite (`@modelcontextprotocol/conformance`) calls in its
//! server scenarios, so that the suite can be run against Moat's gateway with this server
//! behind it.
//!
//! Why the demo server speaks only handshake-era protocol versions (up to 2025-11-25): it
//! stands for the servers Moat fronts today. A client of the stateless 2026-07-28 revision
//! probes with `server/discover` first; this server answers the probe with JSON-RPC error
//! -32601 (method not found), as a 2025-11-25 server does, and such clients fall back to
//! `initialize`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod conformance;
mod vulnerable;

pub use conformance::ConformanceServer;
pub use vulnerable::{DemoServer, RUG_PULLED_ADD_DESCRIPTION};

/// The path at which [`serve_http`] serves the Streamable HTTP endpoint.
pub const HTTP_PATH: &str = "/mcp";

/// What the demo server offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemoOptions {
    /// After the first `tools/list`, change the description of `add` and send
    /// `notifications/tools/list_changed` (a rug pull).
    pub rug_pull: bool,
    /// Serve the conformance suite's fixture tools, resources and prompts instead of the demo
    /// tools (`rug_pull` is then ignored).
    pub conformance: bool,
}

/// Why the demo server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The listening socket could not be opened.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The HTTP server failed while serving.
    #[error("the demo server's HTTP listener failed: {0}")]
    Http(std::io::Error),
    /// The MCP session over stdio could not start (for example, the first message was not
    /// `initialize`).
    #[error("the demo server's stdio session failed to start: {0}")]
    StdioStart(String),
    /// The MCP session over stdio ended abnormally.
    #[error("the demo server's stdio session failed: {0}")]
    StdioRun(String),
}

/// Serves one MCP session over stdin/stdout until the client closes stdin.
///
/// # Errors
///
/// [`DemoError::StdioStart`] when the session cannot start, [`DemoError::StdioRun`] when it
/// ends abnormally.
pub async fn serve_stdio(opts: DemoOptions) -> Result<(), DemoError> {
    let transport = rmcp::transport::stdio();
    if opts.conformance {
        let running =
            ConformanceServer::new().serve(transport).await.map_err(|e| DemoError::StdioStart(e.to_string()))?;
        running.waiting().await.map_err(|e| DemoError::StdioRun(e.to_string()))?;
    } else {
        let running =
            DemoServer::new(opts.rug_pull).serve(transport).await.map_err(|e| DemoError::StdioStart(e.to_string()))?;
        running.waiting().await.map_err(|e| DemoError::StdioRun(e.to_string()))?;
    }
    Ok(())
}

/// Serves Streamable HTTP at `http://ADDR/mcp` until the process ends.
///
/// # Errors
///
/// [`DemoError::Bind`] when `addr` cannot be bound, [`DemoError::Http`] when serving fails.
pub async fn serve_http(addr: SocketAddr, opts: DemoOptions) -> Result<(), DemoError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| DemoError::Bind { addr, source })?;
    serve_http_on(listener, opts, CancellationToken::new()).await
}

/// Serves Streamable HTTP at `/mcp` on an already bound listener until `shutdown` is
/// cancelled. Benchmarks and tests bind port 0 and read the port from the listener.
///
/// Only loopback `Host` headers (`localhost`, `127.0.0.1`, `[::1]`) are accepted, which
/// protects a locally running server against DNS rebinding; requests naming another host get
/// HTTP 403.
///
/// # Errors
///
/// [`DemoError::Http`] when serving fails.
pub async fn serve_http_on(
    listener: TcpListener,
    opts: DemoOptions,
    shutdown: CancellationToken,
) -> Result<(), DemoError> {
    let router = http_router(opts, shutdown.child_token());
    if let Ok(local) = listener.local_addr() {
        tracing::info!("demo server listening on http://{local}{HTTP_PATH}");
    }
    // Without TCP_NODELAY every small reply waits on the client's delayed ACK (~40 ms).
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(DemoError::Http)
}

/// The demo server as an axum router with the MCP endpoint at `/mcp`, for embedding.
pub fn http_router(opts: DemoOptions, shutdown: CancellationToken) -> axum::Router {
    let config = StreamableHttpServerConfig::default().with_cancellation_token(shutdown);
    let sessions = Arc::new(LocalSessionManager::default());
    if opts.conformance {
        let service = StreamableHttpService::new(|| Ok(ConformanceServer::new()), sessions, config);
        axum::Router::new().nest_service(HTTP_PATH, service)
    } else {
        // One rug-pull state for the whole process: a server that changes its tools changes
        // them for every client, not only for the session that listed them first.
        let server = DemoServer::new(opts.rug_pull);
        let service = StreamableHttpService::new(move || Ok(server.clone()), sessions, config);
        axum::Router::new().nest_service(HTTP_PATH, service)
    }
}
