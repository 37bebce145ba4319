//! `moat scan`: report what is wrong with MCP servers. Modes share one `Args`:
//! `--tools FILE` scans tool definitions from a file (see `scan_tools.rs`); the discovery mode
//! (client configs, live connections) adds its flags here and a branch in `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use moat_detect::Severity;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scan the tool definitions in FILE (`-` for stdin): a tools/list result
    /// (`{"tools": [...]}`), a bare array of tools, or a map of server name to tools/list result.
    #[arg(long, value_name = "FILE")]
    pub tools: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Exit with status 1 when any finding is at or above this severity
    /// (info, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY", default_value = "high", value_parser = parse_severity)]
    pub fail_on: Severity,

    // Discovery mode (without `--tools`); see `scan_clients.rs` and docs/scan.md.
    /// Print the inventory of configured servers (client, scope, file, server, transport,
    /// command or URL) and stop; nothing is checked or started.
    #[arg(long, conflicts_with = "tools")]
    pub list: bool,

    /// Read only this client configuration file instead of discovering them (repeatable).
    /// Any supported client format, or Moat's own `moat.toml`.
    #[arg(long, value_name = "FILE", conflicts_with = "tools")]
    pub config: Vec<PathBuf>,

    /// Also start (stdio) or reach (HTTP) every configured server, fetch its tools, prompts,
    /// resources and instructions, and check them. Stdio servers get a scrubbed environment.
    #[arg(long, conflicts_with_all = ["tools", "list"])]
    pub connect: bool,

    /// Approved-server registry (TOML): a configured server not in it is reported (MCP09).
    #[arg(long, value_name = "FILE", conflicts_with = "tools")]
    pub registry: Option<PathBuf>,

    /// Suppress every finding of this rule (repeatable), e.g. `--ignore MOAT-SCAN-010`.
    #[arg(long, value_name = "RULE", conflicts_with = "tools")]
    pub ignore: Vec<String>,

    /// Suppressions file (TOML, repeatable): `[[ignore]]` entries with `rule`, optional
    /// `server`, `file`, `tool`, and a required `reason`.
    #[arg(long, value_name = "FILE", conflicts_with = "tools")]
    pub ignore_file: Vec<PathBuf>,

    /// Home directory to discover user-level configurations in (default: the current user's).
    #[arg(long, value_name = "DIR", conflicts_with = "tools")]
    pub home: Option<PathBuf>,

    /// Directory that machine-wide paths (`/etc/claude-code/...`) are resolved under
    /// (default: `/`); for scanning a mounted image or a test fixture.
    #[arg(long, value_name = "DIR", conflicts_with = "tools")]
    pub system_root: Option<PathBuf>,

    /// Project directory to look in for project-scoped files such as `.mcp.json` and
    /// `.vscode/mcp.json` (repeatable; default: the current directory). Projects listed in
    /// `~/.claude.json` are always added.
    #[arg(long, value_name = "DIR", conflicts_with = "tools")]
    pub project: Vec<PathBuf>,

    /// Seconds allowed for each server's whole live session (start, initialize, lists).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,

    /// Most servers contacted at once with `--connect`.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub jobs: usize,

    /// Pin file to compare live definitions with (read when it exists).
    #[arg(long, value_name = "FILE", default_value = "moat.lock")]
    pub pins: PathBuf,

    /// Record what the servers offer now into the pin file (needs `--connect`).
    #[arg(long, requires = "connect")]
    pub write_pins: bool,
}

/// How a scan report is written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// The JSON report (`{"servers": [...]}`).
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

pub fn run(args: Args) -> ExitCode {
    match &args.tools {
        Some(path) => super::scan_tools::run(path, args.format, args.fail_on),
        None => super::scan_clients::run(&args),
    }
}
