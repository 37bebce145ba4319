//! `moat config check [PATH]`: validate a configuration and print it as Moat reads it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use moat_config::{LoadedConfig, SecretRef};

/// Work with Moat's configuration.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration and print the effective configuration (defaults filled in).
    /// Secrets appear only as their references, with whether each one resolves.
    Check {
        /// The file to check. Default: `./moat.toml` if it exists, else the embedded default.
        path: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        ConfigCommand::Check { path } => {
            let Some(loaded) = load_or_report(path.as_deref()) else { return ExitCode::FAILURE };
            let text = match toml::to_string_pretty(&loaded.config) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot print the configuration: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("# effective configuration from {}", loaded.origin);
            print!("{text}");
            let mut unresolved = 0;
            for (what, r) in references(&loaded) {
                match r.resolve(&loaded.base_dir()) {
                    Ok(_) => eprintln!("secret {what} = `{r}`: resolves"),
                    Err(e) => {
                        unresolved += 1;
                        eprintln!("warning: secret {what}: {e}");
                    }
                }
            }
            if unresolved > 0 {
                eprintln!("{unresolved} secret reference(s) do not resolve in this environment");
            }
            eprintln!("configuration OK");
            ExitCode::SUCCESS
        }
    }
}

/// Loads a configuration, printing every error on stderr when it is invalid.
pub fn load_or_report(path: Option<&Path>) -> Option<LoadedConfig> {
    match moat_config::load(path) {
        Ok(l) => Some(l),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

fn references(loaded: &LoadedConfig) -> Vec<(String, SecretRef)> {
    let c = &loaded.config;
    let mut out = Vec::new();
    if let Some(r) = &c.gateway.tls_key {
        out.push(("`gateway.tls_key`".to_string(), r.clone()));
    }
    for u in &c.upstreams {
        for (k, v) in &u.env {
            if let moat_config::EnvValue::Reference(r) = v {
                out.push((format!("`upstream.{}.env.{k}`", u.name), r.clone()));
            }
        }
    }
    if let Some(r) = &c.auth.client_secret {
        out.push(("`auth.client_secret`".to_string(), r.clone()));
    }
    out
}
