//! Discovery and static checks over a fixture home holding a configuration of every
//! supported client.

use std::collections::BTreeSet;

use moat_scan::fixture::{FixtureHome, FIXTURE_GITHUB_TOKEN};
use moat_scan::{discover, Client, ScanOptions, Scope, Transport};

fn scan_static(fx: &FixtureHome) -> moat_scan::Report {
    let opts = fx.static_scan_options();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(moat_scan::run(&opts)).unwrap()
}

#[test]
fn every_supported_client_is_discovered() {
    let fx = FixtureHome::create("every-client").unwrap();
    let inv = discover(&fx.discover_options());
    let clients: BTreeSet<Client> = inv.servers.iter().map(|s| s.client).collect();
    for client in Client::ALL {
        if matches!(client, Client::Moat | Client::Other) {
            continue; // only read with --config
        }
        assert!(clients.contains(&client), "no server found for {client}: {:#?}", inv.files);
    }
    assert!(inv.files.iter().all(|f| f.error.is_none()), "{:#?}", inv.files);
    // 15 user files, 1 managed, 4 project files.
    assert_eq!(inv.files.len(), 20, "{:#?}", inv.files.iter().map(|f| (&f.path, f.servers)).collect::<Vec<_>>());
    assert_eq!(inv.servers.len(), 21);
}

#[test]
fn scopes_transports_and_lines_are_right() {
    let fx = FixtureHome::create("scopes").unwrap();
    let inv = discover(&fx.discover_options());
    let find = |name: &str| inv.servers.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name}"));
    // The project comes from `projects` in ~/.claude.json.
    let sentry = find("sentry");
    assert_eq!((sentry.client, sentry.scope), (Client::ClaudeCode, Scope::Local));
    assert_eq!(sentry.project.as_deref(), Some(fx.project.as_path()));
    assert_eq!(find("db").scope, Scope::Project);
    assert_eq!(find("company-docs").scope, Scope::Managed);
    assert_eq!(find("linear").transport, Transport::Sse);
    assert_eq!(find("search").transport, Transport::Http);
    assert_eq!(find("wiki").url.as_deref(), Some("http://wiki.corp.example:8080/mcp"));
    assert_eq!(find("scratch").command.as_deref(), Some("bunx"));
    assert!(find("scratch").disabled);
    assert_eq!(find("browser").line, Some(4));
    assert_eq!(find("github-docker").line, Some(3));
    assert_eq!(find("git").client, Client::Continue);
}

#[test]
fn moat_toml_is_read_with_config() {
    let fx = FixtureHome::create("moat-toml").unwrap();
    let mut opts = fx.discover_options();
    opts.explicit = vec![fx.moat_toml.clone()];
    let inv = discover(&opts);
    assert_eq!(inv.files.len(), 1, "only the named file is read");
    let names: Vec<_> = inv.servers.iter().map(|s| (s.client, s.scope, s.name.as_str())).collect();
    assert_eq!(names, [(Client::Moat, Scope::Explicit, "demo"), (Client::Moat, Scope::Explicit, "remote")]);
}

#[test]
fn static_checks_find_each_problem_in_the_fixture() {
    let fx = FixtureHome::create("static").unwrap();
    let report = scan_static(&fx);
    let hits: BTreeSet<(String, String)> =
        report.findings.iter().map(|f| (f.finding.rule.clone(), f.server.clone())).collect();
    for (rule, server) in [
        ("MOAT-SCAN-010", "filesystem"), // npx without version
        ("MOAT-SCAN-010", "browser"),    // @latest
        ("MOAT-SCAN-010", "db"),         // uvx without ==
        ("MOAT-SCAN-010", "git"),
        ("MOAT-SCAN-010", "cdk"),           // uvx @latest
        ("MOAT-SCAN-011", "fetch"),         // :latest
        ("MOAT-SCAN-011", "github-docker"), // tag, no digest
        ("MOAT-SCAN-012", "wiki"),          // plain http
        ("MOAT-SCAN-013", "installer"),     // curl | sh
        ("MOAT-SCAN-014", "github"),        // token in env
        ("MOAT-SCAN-014", "search"),        // API key header
        ("MOAT-SCAN-014", "postgres"),      // password in a connection URL
    ] {
        assert!(hits.contains(&(rule.to_owned(), server.to_owned())), "missing {rule} on {server}: {hits:#?}");
    }
    // Pinned servers are clean.
    for clean in ["memory", "time", "aws-docs", "sentry", "context7"] {
        assert!(!hits.iter().any(|(_, s)| s == clean), "{clean} should be clean: {hits:#?}");
    }
    // No secret reaches the report in clear.
    let json = report.to_json();
    assert!(!json.contains(FIXTURE_GITHUB_TOKEN));
    assert!(
        !json.contains("hunter2pass"),
        "{}",
        json.lines().filter(|l| l.contains("hunter2pass")).collect::<Vec<_>>().join("\n")
    );
    assert!(!json.contains("sk-9f8e7d6c5b4a39281706f5e4d3c2b1a0"));
    let token = report.findings.iter().find(|f| f.finding.rule == "MOAT-SCAN-014" && f.server == "github").unwrap();
    assert_eq!(token.finding.owasp.as_str(), "MCP01");
    assert_eq!(token.line, Some(7 - 3)); // the `"github"` key line
}

#[test]
fn windows_and_macos_layouts_are_found_under_a_fixture_home() {
    let fx = FixtureHome::create("layouts").unwrap();
    // Move two Linux files to their macOS and Windows places.
    let mac = fx.root.join("mac");
    let win = fx.root.join("win");
    let mac_desktop = mac.join("Library/Application Support/Claude/claude_desktop_config.json");
    let win_cline =
        win.join("AppData/Roaming/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json");
    for (path, text) in [
        (&mac_desktop, r#"{"mcpServers": {"m": {"command": "node", "args": ["m.js"]}}}"#),
        (&win_cline, r#"{"mcpServers": {"w": {"command": "node", "args": ["w.js"]}}}"#),
    ] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    for (home, os, client) in
        [(mac, moat_scan::Os::MacOs, Client::ClaudeDesktop), (win, moat_scan::Os::Windows, Client::Cline)]
    {
        let mut opts = fx.discover_options();
        opts.roots.home = home;
        opts.roots.os = os;
        let inv = discover(&opts);
        assert_eq!(inv.servers.len(), 1, "{os:?}");
        assert_eq!(inv.servers[0].client, client);
    }
}

#[test]
fn a_broken_config_is_a_finding_not_an_error() {
    let fx = FixtureHome::create("broken").unwrap();
    std::fs::write(fx.home.join(".cursor/mcp.json"), "{ \"mcpServers\": { \"x\": ").unwrap();
    let report = scan_static(&fx);
    let f = report.findings.iter().find(|f| f.finding.rule == "MOAT-SCAN-001").unwrap();
    assert!(f.file.ends_with(".cursor/mcp.json"));
    assert!(report.files.iter().any(|f| f.error.is_some()));
}

#[test]
fn a_secret_passed_as_an_argument_is_masked_in_the_report() {
    let fx = FixtureHome::create("arg-secret").unwrap();
    let config = fx.root.join("mcp.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"mcpServers": {{"gh": {{"command": "github-mcp", "args": ["stdio", "{FIXTURE_GITHUB_TOKEN}"]}}}}}}"#
        ),
    )
    .unwrap();
    let mut discover = fx.discover_options();
    discover.explicit = vec![config];
    let opts = ScanOptions {
        discover,
        registry: None,
        ignore_rules: Vec::new(),
        ignore_files: Vec::new(),
        live: None,
        pins: None,
        write_pins: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let report = rt.block_on(moat_scan::run(&opts)).unwrap();
    let f = report.findings.iter().find(|f| f.finding.rule == "MOAT-SCAN-014").unwrap();
    assert_eq!(f.finding.location, "/mcpServers/gh/args/1");
    assert_eq!(report.servers[0].entry.args, ["stdio", "***"]);
    assert!(!report.to_json().contains(FIXTURE_GITHUB_TOKEN));
}
