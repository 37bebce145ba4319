//! One whole scan: discovery, static checks, optional live checks, suppressions, report.

use std::path::PathBuf;

use moat_detect::{Detector, Finding, Owasp, Severity};

use crate::analyze;
use crate::checks;
use crate::discover::{discover, DiscoverOptions, Inventory};
use crate::ignore::{IgnoreError, Suppressions};
use crate::live::{self, LiveOptions};
use crate::model::ScanFinding;
use crate::pins::{self, PinError, PinFile};
use crate::registry::{Registry, RegistryError};
use crate::report::Report;
use crate::rules;

/// What one scan does.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub discover: DiscoverOptions,
    /// Approved-server registry (`--registry`).
    pub registry: Option<PathBuf>,
    /// Rules suppressed everywhere (`--ignore`).
    pub ignore_rules: Vec<String>,
    /// Ignore files (`--ignore-file`).
    pub ignore_files: Vec<PathBuf>,
    /// Live checks (`--connect`); `None` for a static scan.
    pub live: Option<LiveOptions>,
    /// Pin file to compare with (read when it exists).
    pub pins: Option<PathBuf>,
    /// Record what the servers offer now into the pin file.
    pub write_pins: bool,
}

/// Why a scan could not run (exit status 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    #[error(transparent)]
    Pins(#[from] PinError),
    #[error("the built-in detection rules failed to load: {0}")]
    Detector(String),
    #[error("`--write-pins` needs `--connect`")]
    WritePinsWithoutConnect,
}

/// Loads everything the options name before anything runs, so that a bad registry, ignore
/// file or pin file is reported before any server is started.
struct Prepared {
    registry: Option<Registry>,
    suppressions: Suppressions,
    pins: Option<PinFile>,
    detector: Detector,
}

fn prepare(opts: &ScanOptions) -> Result<Prepared, ScanError> {
    if opts.write_pins && opts.live.is_none() {
        return Err(ScanError::WritePinsWithoutConnect);
    }
    let registry = opts.registry.as_deref().map(Registry::load).transpose()?;
    let mut suppressions = Suppressions::new(opts.ignore_rules.clone());
    for file in &opts.ignore_files {
        suppressions.load_file(file)?;
    }
    let pins = match &opts.pins {
        Some(path) if path.exists() => Some(pins::load(path)?),
        _ => None,
    };
    let detector = Detector::builtin().map_err(|e| ScanError::Detector(e.to_string()))?;
    Ok(Prepared { registry, suppressions, pins, detector })
}

/// Runs a scan.
///
/// # Errors
///
/// When the registry, an ignore file or the pin file cannot be loaded or written. Problems
/// with client configurations and servers are findings, not errors.
pub async fn run(opts: &ScanOptions) -> Result<Report, ScanError> {
    let prepared = prepare(opts)?;
    let inventory = discover(&opts.discover);
    let mut findings = static_findings(&inventory, &prepared);
    let live_results = match &opts.live {
        Some(live_opts) => Some(live::fetch_all(&inventory.servers, live_opts).await),
        None => None,
    };
    if let Some(results) = &live_results {
        findings.extend(analyze::live_findings(
            &inventory.servers,
            results,
            &prepared.detector,
            prepared.pins.as_ref(),
        ));
        if opts.write_pins {
            if let Some(path) = &opts.pins {
                let mut pins = prepared.pins.clone().unwrap_or_default();
                for r in results {
                    if let (Some(server), Some(snap)) = (inventory.servers.get(r.index), &r.snapshot) {
                        pins::record(&mut pins, server, snap);
                    }
                }
                pins::save(&pins, path)?;
            }
        }
    }
    let before = findings.len();
    findings.retain(|f| !prepared.suppressions.suppresses(f));
    let suppressed = before - findings.len();
    Ok(Report::build(
        inventory.files,
        &inventory.servers,
        live_results.as_deref(),
        findings,
        suppressed,
        Some(&prepared.detector),
    ))
}

fn static_findings(inv: &Inventory, prepared: &Prepared) -> Vec<ScanFinding> {
    let mut out = Vec::new();
    for file in &inv.files {
        if let Some(error) = &file.error {
            out.push(ScanFinding {
                finding: Finding {
                    rule: rules::CONFIG_UNREADABLE.to_owned(),
                    severity: Severity::Low,
                    owasp: Owasp::Mcp09,
                    location: String::new(),
                    message: format!("{} configuration could not be read: {error}", file.client),
                    evidence: String::new(),
                    span: None,
                },
                client: file.client,
                server: String::new(),
                file: file.path.clone(),
                line: None,
                tool: None,
                diff: Vec::new(),
            });
        }
    }
    for server in &inv.servers {
        out.extend(checks::check_server(server, &prepared.detector, prepared.registry.as_ref()));
    }
    out
}
