//! `moat wrap -- CMD ARGS...`: the gateway's pipeline around one stdio server, on stdio,
//! for desktop clients that launch servers themselves.

use std::path::PathBuf;
use std::process::ExitCode;

use moat_config::UpstreamConfig;

/// Run one stdio MCP server behind Moat's guards, speaking MCP on stdin/stdout.
#[derive(Debug, clap::Args)]
#[command(trailing_var_arg = true)]
pub struct Args {
    /// Configuration file for guards and limits. Its `[[upstream]]` tables are not used:
    /// the upstream is the command given after `--`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,

    /// Name of the wrapped server (in logs and pins). Default: the program's file name.
    #[arg(long)]
    pub name: Option<String>,

    /// The server to run, and its arguments.
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    let mut loaded = match super::config::load_or_report(args.config.as_deref()) {
        Some(l) => l,
        None => return ExitCode::from(2),
    };
    let default_name = args
        .command
        .first()
        .and_then(|p| std::path::Path::new(p).file_stem())
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "wrapped".to_string());
    let template = loaded.config.upstreams.first().cloned();
    let upstream = UpstreamConfig {
        name: args.name.unwrap_or(default_name),
        command: Some(args.command),
        url: None,
        credential: None,
        headers: Default::default(),
        oauth: None,
        env: template.as_ref().map(|t| t.env.clone()).unwrap_or_default(),
        cwd: None,
        sandbox: template.as_ref().and_then(|t| t.sandbox.clone()),
        pinning: template.as_ref().map(|t| t.pinning).unwrap_or_default(),
        max_concurrent: template.as_ref().map_or(64, |t| t.max_concurrent),
        timeout: template.map_or(moat_config::Duration::secs(120), |t| t.timeout),
    };
    loaded.config.upstreams = vec![upstream];
    if let Err(e) = super::refuse_unenforced(&loaded.config) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
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
    let result = rt.block_on(moat_gateway::run_wrap(loaded));
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
