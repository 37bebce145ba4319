//! The JSON report matches its published schema (`schema/report-v1.schema.json`), for a static
//! scan of the fixture home, an inventory, and a live scan.

use moat_scan::fixture::FixtureHome;
use moat_scan::ScanOptions;
use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("../../schema/report-v1.schema.json")).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn check(report: &moat_scan::Report) {
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let v = validator();
    let errors: Vec<String> = v.iter_errors(&json).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn static_and_inventory_reports_match_the_schema() {
    let fx = FixtureHome::create("schema").unwrap();
    let opts = fx.static_scan_options();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let report = rt.block_on(moat_scan::run(&opts)).unwrap();
    assert!(!report.findings.is_empty());
    check(&report);
    let inv = moat_scan::discover(&fx.discover_options());
    check(&moat_scan::Report::build(inv.files, &inv.servers, None, Vec::new(), 0, None));
}

#[cfg(unix)]
#[test]
fn a_live_report_matches_the_schema() {
    let fx = FixtureHome::create("schema-live").unwrap();
    let config = fx.root.join("mcp.json");
    std::fs::write(
        &config,
        r#"{"mcpServers": {
            "ok": {"command": "/bin/sh", "args": ["-c", "read l; printf '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"serverInfo\":{\"name\":\"x\",\"version\":\"1\"}}}\\n'; read l; read l; printf '{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"t\",\"inputSchema\":{\"type\":\"object\"}}]}}\\n'; read l"]},
            "broken": {"command": "/bin/sh", "args": ["-c", "echo oops >&2; exit 1"]},
            "off": {"command": "/bin/sh", "disabled": true}
        }}"#,
    )
    .unwrap();
    let mut discover = fx.discover_options();
    discover.explicit = vec![config];
    let opts = ScanOptions {
        discover,
        registry: None,
        ignore_rules: Vec::new(),
        ignore_files: Vec::new(),
        live: Some(moat_scan::live::LiveOptions::default()),
        pins: None,
        write_pins: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let report = rt.block_on(moat_scan::run(&opts)).unwrap();
    let mut status: Vec<(&str, &str)> =
        report.servers.iter().map(|s| (s.entry.name.as_str(), s.live.as_ref().unwrap().status.as_str())).collect();
    status.sort_unstable();
    assert_eq!(status, [("broken", "error"), ("off", "skipped"), ("ok", "ok")], "{:#?}", report.servers);
    check(&report);
}
