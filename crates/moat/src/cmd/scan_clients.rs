//! `moat scan` without `--tools`: discover every MCP client configuration on this machine
//! (or the files given with `--config`), check each server, optionally connect to each, and
//! report. The work is done by the `moat-scan` crate; this module turns flags into its
//! options and its report into output and an exit status (0 clean, 1 a finding at or above
//! `--fail-on`, 2 an error).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use moat_scan::live::LiveOptions;
use moat_scan::report::{self, Color};
use moat_scan::{DiscoverOptions, Os, Report, Roots, ScanOptions};

use super::scan::{Args, Format};

pub fn run(args: &Args) -> ExitCode {
    let home = match args.home.clone().or_else(default_home) {
        Some(h) => h,
        None => {
            eprintln!("error: cannot tell the home directory\nhelp: give `--home DIR`");
            return ExitCode::from(2);
        }
    };
    let projects = if args.project.is_empty() {
        std::env::current_dir().map(|d| vec![d]).unwrap_or_default()
    } else {
        args.project.clone()
    };
    let roots = Roots {
        appdata: if args.home.is_some() { None } else { std::env::var_os("APPDATA").map(PathBuf::from) },
        home: home.clone(),
        os: Os::current(),
        system_root: args.system_root.clone(),
    };
    let discover = DiscoverOptions { roots, projects, explicit: args.config.clone() };

    if args.list {
        let inventory = moat_scan::discover(&discover);
        let out = match args.format {
            Format::Table => report::list_table(&inventory.servers, Some(&home)),
            Format::Json => Report::build(inventory.files, &inventory.servers, None, Vec::new(), 0, None).to_json(),
            Format::Sarif => {
                let r = Report::build(inventory.files, &inventory.servers, None, Vec::new(), 0, None);
                pretty(&report::to_sarif(&r, None))
            }
        };
        return emit(&out, ExitCode::SUCCESS);
    }

    let opts = ScanOptions {
        discover,
        registry: args.registry.clone(),
        ignore_rules: args.ignore.clone(),
        ignore_files: args.ignore_file.clone(),
        live: args.connect.then(|| LiveOptions {
            timeout: Duration::from_secs(args.timeout.max(1)),
            concurrency: args.jobs.max(1),
            progress: std::io::stderr().is_terminal(),
        }),
        pins: Some(args.pins.clone()),
        write_pins: args.write_pins,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(moat_scan::run(&opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let out = match args.format {
        Format::Table => {
            let color = if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
                Color::Always
            } else {
                Color::Never
            };
            report::findings_table(&report, color, Some(&home))
        }
        Format::Json => report.to_json(),
        Format::Sarif => {
            let detector = moat_detect::Detector::builtin().ok();
            pretty(&report::to_sarif(&report, detector.as_ref()))
        }
    };
    let status =
        if report.max_severity().is_some_and(|s| s >= args.fail_on) { ExitCode::from(1) } else { ExitCode::SUCCESS };
    emit(&out, status)
}

fn default_home() -> Option<PathBuf> {
    let var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(var).filter(|h| !h.is_empty()).map(PathBuf::from)
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn emit(text: &str, status: ExitCode) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => status,
        // A closed pipe (`moat scan | head`) is not worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => status,
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            ExitCode::from(2)
        }
    }
}
