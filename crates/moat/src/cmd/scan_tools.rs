//! `moat scan --tools FILE`: scan tool definitions from a file and report per server and tool,
//! as a table, JSON (`{"servers": [{"name", "tools": [{"name", "verdict", "findings"}]}]}`) or
//! SARIF 2.1.0. Exit 0 when no finding is at or above `--fail-on`, 1 when one is, 2 on bad input.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use moat_detect::{servers_from_value, Detector, Finding, ServerReport, Severity};
use serde_json::{json, Value};

use super::scan::Format;

pub fn run(path: &Path, format: Format, fail_on: Severity) -> ExitCode {
    let reports = match load_and_scan(path) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let out = match format {
        Format::Json => serde_json::to_string_pretty(&json_report(&reports)).unwrap_or_default() + "\n",
        Format::Sarif => serde_json::to_string_pretty(&sarif_report(&reports, path)).unwrap_or_default() + "\n",
        Format::Table => table_report(&reports),
    };
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        return ExitCode::from(2);
    }
    let tripped = reports.iter().flat_map(all_findings).any(|f| f.severity >= fail_on);
    if tripped {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn load_and_scan(path: &Path) -> Result<Vec<ServerReport>, String> {
    let shown = path.display();
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read tools from stdin: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read tools file `{shown}`: {e}"))?
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("tools file `{shown}` is not valid JSON: {e}"))?;
    let servers = servers_from_value(&doc).map_err(|e| format!("tools file `{shown}`: {e}"))?;
    let detector = Detector::builtin().map_err(|e| format!("built-in rules failed to load: {e}"))?;
    Ok(detector.scan_tools(&servers))
}

fn all_findings(r: &ServerReport) -> impl Iterator<Item = &Finding> {
    r.findings.iter().chain(r.tools.iter().flat_map(|t| t.findings.iter()))
}

/// The JSON contract. Server-level findings (instructions, prompts, resource templates) are
/// listed under `"findings"` beside `"tools"` only when there are any.
pub fn json_report(reports: &[ServerReport]) -> Value {
    let servers: Vec<Value> = reports
        .iter()
        .map(|s| {
            let tools: Vec<Value> = s
                .tools
                .iter()
                .map(|t| json!({ "name": t.name, "verdict": t.verdict, "findings": t.findings }))
                .collect();
            let mut server = json!({ "name": s.name, "tools": tools });
            if !s.findings.is_empty() {
                if let Some(obj) = server.as_object_mut() {
                    obj.insert("findings".into(), json!(s.findings));
                }
            }
            server
        })
        .collect();
    json!({ "servers": servers })
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// SARIF 2.1.0: one result per finding, its logical location `server/tool` plus the JSON pointer.
pub fn sarif_report(reports: &[ServerReport], path: &Path) -> Value {
    let mut rule_ids: Vec<&str> = Vec::new();
    let mut results = Vec::new();
    for s in reports {
        let tool_findings = s.tools.iter().flat_map(|t| t.findings.iter().map(move |f| (Some(t.name.as_str()), f)));
        for (tool, f) in s.findings.iter().map(|f| (None, f)).chain(tool_findings) {
            if !rule_ids.contains(&f.rule.as_str()) {
                rule_ids.push(&f.rule);
            }
            let logical = match tool {
                Some(t) => format!("{}/{}{}", s.name, t, f.location),
                None => format!("{}{}", s.name, f.location),
            };
            results.push(json!({
                "ruleId": f.rule,
                "level": sarif_level(f.severity),
                "message": { "text": format!("{} (evidence: {})", f.message, f.evidence) },
                "locations": [{
                    "physicalLocation": { "artifactLocation": { "uri": path.display().to_string() } },
                    "logicalLocations": [{ "fullyQualifiedName": logical, "kind": "member" }]
                }],
                "properties": { "severity": f.severity, "owasp": f.owasp, "evidence": f.evidence }
            }));
        }
    }
    let detector = Detector::builtin().ok();
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|id| {
            let spec = detector.as_ref().and_then(|d| d.rules().find(|r| r.id == *id).cloned());
            match spec {
                Some(r) => json!({
                    "id": r.id, "name": r.name,
                    "shortDescription": { "text": r.description },
                    "properties": { "severity": r.severity, "owasp": r.owasp }
                }),
                None => json!({ "id": id }),
            }
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "moat", "informationUri": "https://example.invalid/moat", "version": env!("CARGO_PKG_VERSION"), "rules": rules } },
            "results": results
        }]
    })
}

fn table_report(reports: &[ServerReport]) -> String {
    let mut rows: Vec<[String; 6]> = Vec::new();
    for s in reports {
        for f in &s.findings {
            rows.push([
                s.name.clone(),
                "-".into(),
                f.severity.to_string(),
                f.rule.clone(),
                f.location.clone(),
                cell(&f.message, &f.evidence),
            ]);
        }
        for t in &s.tools {
            if t.findings.is_empty() {
                rows.push([s.name.clone(), t.name.clone(), "pass".into(), "-".into(), "-".into(), String::new()]);
            }
            for f in &t.findings {
                rows.push([
                    s.name.clone(),
                    t.name.clone(),
                    f.severity.to_string(),
                    f.rule.clone(),
                    f.location.clone(),
                    cell(&f.message, &f.evidence),
                ]);
            }
        }
    }
    let header = ["SERVER", "TOOL", "SEVERITY", "RULE", "LOCATION", "FINDING"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()).take(5) {
            *w = (*w).max(c.chars().count().min(40));
        }
    }
    let mut out = String::new();
    let line = |cells: [&str; 6], out: &mut String| {
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let c: String = if i < 5 { c.chars().take(40).collect() } else { (*c).to_owned() };
            if i < 5 {
                out.push_str(&format!("{c:<w$}  "));
            } else {
                out.push_str(&c);
            }
        }
        out.push('\n');
    };
    line(header, &mut out);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]], &mut out);
    }
    let tools: usize = reports.iter().map(|s| s.tools.len()).sum();
    let verdict_count =
        |v: moat_detect::Verdict| reports.iter().flat_map(|s| &s.tools).filter(|t| t.verdict == v).count();
    out.push_str(&format!(
        "\n{tools} tools in {} servers: {} fail, {} warn, {} pass\n",
        reports.len(),
        verdict_count(moat_detect::Verdict::Fail),
        verdict_count(moat_detect::Verdict::Warn),
        verdict_count(moat_detect::Verdict::Pass)
    ));
    out
}

fn cell(message: &str, evidence: &str) -> String {
    format!("{message} — {evidence}")
}
