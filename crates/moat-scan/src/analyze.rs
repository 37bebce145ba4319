//! Judging what live servers offer: the detection engine on every tool, prompt, resource
//! template and set of instructions; the engine's cross-server checks (a tool name offered by
//! two servers, look-alike names, descriptions naming another server's tool) among the
//! servers one client sees together; and the comparison with the pin file.

use std::collections::{BTreeMap, HashSet};

use moat_detect::{Detector, Finding, ServerInput, Severity};

use crate::live::LiveResult;
use crate::model::{Client, ScanFinding, ServerEntry};
use crate::pins::{self, PinFile};
use crate::registry::launch_sha256;
use crate::rules;

/// Findings from the live results of `servers`.
pub fn live_findings(
    servers: &[ServerEntry],
    results: &[LiveResult],
    detector: &Detector,
    pins: Option<&PinFile>,
) -> Vec<ScanFinding> {
    let mut out = Vec::new();
    for r in results {
        let (Some(server), Some(error)) = (servers.get(r.index), &r.error) else {
            continue;
        };
        out.push(ScanFinding::at(
            server,
            Finding {
                rule: rules::CONNECT_FAILED.to_owned(),
                severity: Severity::Info,
                owasp: moat_detect::Owasp::Mcp09,
                location: server.pointer.clone(),
                message: format!("server `{}` could not be scanned live: {error}", server.name),
                evidence: last_line(&r.stderr),
                span: None,
            },
        ));
    }

    // The servers one client sees together, each launch once: the same server configured
    // at user and project scope is one server, not a name collision.
    let mut by_client: BTreeMap<Client, Vec<&LiveResult>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.snapshot.is_some()) {
        if let Some(s) = servers.get(r.index) {
            by_client.entry(s.client).or_default().push(r);
        }
    }
    for group in by_client.values() {
        let mut launches: Vec<(String, Vec<&LiveResult>)> = Vec::new();
        for r in group {
            let Some(s) = servers.get(r.index) else { continue };
            let key = launch_sha256(s);
            match launches.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(r),
                None => launches.push((key, vec![r])),
            }
        }
        let inputs: Vec<ServerInput<'_>> = launches
            .iter()
            .filter_map(|(_, members)| {
                let first = members.first()?;
                let snap = first.snapshot.as_ref()?;
                Some(ServerInput {
                    name: servers.get(first.index).map_or("", |s| s.name.as_str()),
                    tools: &snap.tools,
                    instructions: snap.instructions.as_deref(),
                    prompts: &snap.prompts,
                    resource_templates: &snap.resource_templates,
                })
            })
            .collect();
        let reports = detector.scan_tools(&inputs);
        for ((_, members), report) in launches.iter().zip(reports) {
            for member in members {
                let Some(server) = servers.get(member.index) else { continue };
                for f in &report.findings {
                    out.push(ScanFinding::at(server, f.clone()));
                }
                for tool in &report.tools {
                    for f in &tool.findings {
                        let mut sf = ScanFinding::at(server, f.clone());
                        sf.finding.location =
                            format!("/tools/{}{}", moat_detect::escape_pointer(&tool.name), f.location);
                        sf.tool = Some(tool.name.clone());
                        out.push(sf);
                    }
                }
            }
        }
    }

    // Pins: each upstream identity once.
    if let Some(pins) = pins {
        let mut seen = HashSet::new();
        for r in results {
            let (Some(server), Some(snap)) = (servers.get(r.index), &r.snapshot) else {
                continue;
            };
            if seen.insert(pins::identity(server)) {
                out.extend(pins::compare(server, snap, pins));
            }
        }
    }
    out
}

fn last_line(text: &str) -> String {
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(200).collect()
}
