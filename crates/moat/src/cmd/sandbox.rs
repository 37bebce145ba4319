//! `moat sandbox check`: what this kernel can enforce for stdio upstreams.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use moat_sandbox::{self_test, KernelSupport, SelfTest};
use serde_json::json;

/// Inspect the Linux sandbox that confines stdio upstreams (Landlock, seccomp, rlimits).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Report what this kernel supports and whether a sandboxed child is really confined.
    ///
    /// Exit status: 0 when every protection is available and enforced, 1 when one is missing
    /// (stdio upstreams will refuse to start unless `sandbox.best_effort = true`), 2 on error.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Skip the live test (starting a sandboxed `/bin/sh` that tries to read a file it must not).
    #[arg(long)]
    no_live_test: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: Args) -> ExitCode {
    match args.action {
        Action::Check(check) => run_check(check),
    }
}

fn run_check(args: CheckArgs) -> ExitCode {
    let kernel = KernelSupport::probe();
    let live = if args.no_live_test {
        None
    } else {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => Some(rt.block_on(self_test())),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let complete = kernel.landlock.filesystem
        && kernel.landlock.tcp
        && kernel.seccomp_filter
        && kernel.no_new_privs
        && live.as_ref().is_none_or(|t| t.started && t.filesystem_denied);

    match args.format {
        Format::Json => {
            let value = json!({ "kernel": kernel, "live_test": live, "complete": complete });
            match serde_json::to_string_pretty(&value) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("error: cannot encode the report: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Format::Text => {
            print!("{kernel}");
            if let Some(t) = &live {
                println!("live test       {}", describe(t));
            }
            if complete {
                println!("\nevery sandbox protection is available on this kernel");
            } else {
                println!(
                    "\nsome protections are missing: stdio upstreams start only with `sandbox.best_effort = true`"
                );
                if !kernel.landlock.tcp && kernel.landlock.filesystem {
                    println!("(without landlock TCP rules, `network = false` is still enforced by seccomp; a `host:port` allow-list is not)");
                }
            }
        }
    }
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn describe(t: &SelfTest) -> String {
    match (&t.error, t.started, t.filesystem_denied) {
        (Some(e), _, _) => format!("failed: {e}"),
        (None, true, true) => "a sandboxed child was refused a file outside its allowed paths".into(),
        (None, true, false) => "a sandboxed child could read a file outside its allowed paths: NOT CONFINED".into(),
        (None, false, _) => "no child started".into(),
    }
}
