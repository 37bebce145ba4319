//! The `moat` binary: command-line parsing and dispatch. Each subcommand lives in
//! `cmd/<name>.rs`, owns its `Args`, and returns an exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

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
    /// Run the built-in, deliberately vulnerable MCP demo server.
    DemoServer(cmd::demo_server::Args),
    /// Inspect the Linux sandbox for stdio upstreams (`moat sandbox check`).
    Sandbox(cmd::sandbox::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_logging(&cli.log);
    match cli.command {
        Command::DemoServer(args) => cmd::demo_server::run(args),
        Command::Sandbox(args) => cmd::sandbox::run(args),
    }
}
