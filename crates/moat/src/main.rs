//! The `moat` binary: command-line parsing and dispatch. Each subcommand lives in
//! `cmd/<name>.rs`, owns its `Args`, and returns an exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod telemetry;

/// Moat: a security gateway and scanner for the Model Context Protocol.
#[derive(Debug, Parser)]
#[command(name = "moat", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter, in `RUST_LOG` syntax (e.g. `info`, `moat_gateway=debug`).
    #[arg(long, global = true, env = "MOAT_LOG", default_value = "info")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

// One variant per subcommand; keep them alphabetical.
#[derive(Debug, Subcommand)]
enum Command {
    /// Check and read the hash-chained audit log (`moat audit verify|tail|query|export|keygen`).
    Audit(cmd::audit::Args),
    /// Validate and print Moat's configuration (`moat config check`).
    Config(cmd::config::Args),
    /// Run the built-in, deliberately vulnerable MCP demo server.
    DemoServer(cmd::demo_server::Args),
    /// Scan text as a tool result is scanned: injection, hidden text, secrets, PII.
    Inspect(cmd::inspect::Args),
    /// Serve one Streamable HTTP MCP endpoint in front of the configured upstream servers.
    Gateway(cmd::gateway::Args),
    /// Manage API keys for `[auth] mode = "api_key"` (create, list, revoke).
    Keys(cmd::keys::Args),
    /// Review, approve and revoke pinned tool definitions; export and import `moat.lock`.
    Pins(cmd::pins::Args),
    /// Inspect the Linux sandbox for stdio upstreams (`moat sandbox check`).
    Sandbox(cmd::sandbox::Args),
    /// Report what is wrong with MCP servers (`moat scan --tools FILE`).
    Scan(cmd::scan::Args),
    /// Run one stdio MCP server behind Moat's guards, on stdio (for desktop clients).
    Wrap(cmd::wrap::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_logging(&cli.log);
    match cli.command {
        Command::Audit(args) => cmd::audit::run(args),
        Command::Config(args) => cmd::config::run(args),
        Command::DemoServer(args) => cmd::demo_server::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Pins(args) => cmd::pins::run(args),
        Command::Sandbox(args) => cmd::sandbox::run(args),
        Command::Wrap(args) => cmd::wrap::run(args),
        Command::Scan(args) => cmd::scan::run(args),
    }
}
