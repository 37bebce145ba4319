//! `moat scan` in discovery mode, through the real binary: the inventory, exit codes,
//! suppressions, and live scans of `moat demo-server` and of the reference server
//! `@modelcontextprotocol/server-everything`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use moat_scan::fixture::{FixtureHome, FIXTURE_GITHUB_TOKEN};
use serde_json::Value;

fn moat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_moat"))
}

fn scan(fx: &FixtureHome, extra: &[&str]) -> Output {
    let mut cmd = moat();
    cmd.arg("scan")
        .arg("--home")
        .arg(&fx.home)
        .arg("--system-root")
        .arg(&fx.system_root)
        .arg("--project")
        .arg(&fx.project)
        .arg("--pins")
        .arg(fx.root.join("moat.lock"))
        .args(extra)
        .env("NO_COLOR", "1");
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn list_prints_the_inventory_without_checking_anything() {
    let fx = FixtureHome::create("cli-list").unwrap();
    let out = scan(&fx, &["--list"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let header = text.lines().next().unwrap();
    for col in ["CLIENT", "SCOPE", "FILE", "SERVER", "TRANSPORT", "COMMAND OR URL"] {
        assert!(header.contains(col), "{header}");
    }
    for client in [
        "Claude Desktop",
        "Claude Code",
        "Cursor",
        "VS Code",
        "Windsurf",
        "Gemini CLI",
        "Codex",
        "Zed",
        "Cline",
        "Continue",
        "Kiro",
        "Amazon Q",
        "Copilot CLI",
        "OpenCode",
    ] {
        assert!(text.lines().any(|l| l.starts_with(client)), "{client} missing:\n{text}");
    }
    assert!(text.contains("~/.cursor/mcp.json:4"), "{text}");
    assert!(text.contains("scratch (disabled)"), "{text}");
    assert!(text.contains("postgres://app:***@db.local/app"), "passwords are masked:\n{text}");
    assert!(!text.contains("hunter2pass"));
    assert!(!text.contains("MOAT-SCAN"), "--list reports no findings");
}

#[test]
fn list_json_has_the_versioned_schema() {
    let fx = FixtureHome::create("cli-list-json").unwrap();
    let out = scan(&fx, &["--list", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["servers"].as_array().unwrap().len(), 21);
    assert!(v["servers"][0]["launch_sha256"].as_str().unwrap().starts_with("sha256:"));
    assert!(!stdout(&out).contains(FIXTURE_GITHUB_TOKEN));
}

#[test]
fn exit_status_follows_fail_on() {
    let fx = FixtureHome::create("cli-exit").unwrap();
    // The fixture has high findings (inline token, plain http, curl | sh), no critical one.
    let high = scan(&fx, &["--format", "json"]);
    assert_eq!(high.status.code(), Some(1), "{}", String::from_utf8_lossy(&high.stderr));
    let report: Value = serde_json::from_slice(&high.stdout).unwrap();
    assert_eq!(report["summary"]["by_severity"]["critical"], 0);
    assert!(report["summary"]["by_severity"]["high"].as_u64().unwrap() > 0);
    let crit = scan(&fx, &["--fail-on", "critical"]);
    assert_eq!(crit.status.code(), Some(0), "{}", stdout(&crit));
    let table = stdout(&crit);
    assert!(table.contains("MOAT-SCAN-013"), "{table}");
    assert!(table.contains("findings ("), "{table}");
}

#[test]
fn ignores_suppress_and_need_a_reason() {
    let fx = FixtureHome::create("cli-ignore").unwrap();
    let ignore = fx.root.join("ignore.toml");
    std::fs::write(&ignore, "[[ignore]]\nrule = \"MOAT-SCAN-013\"\nserver = \"installer\"\nreason = \"sandboxed installer, reviewed 2026-11\"\n").unwrap();
    let out = scan(&fx, &["--format", "json", "--ignore", "MOAT-SCAN-010", "--ignore-file", ignore.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert!(!rules.contains(&"MOAT-SCAN-010") && !rules.contains(&"MOAT-SCAN-013"), "{rules:?}");
    assert!(rules.contains(&"MOAT-SCAN-012"));
    assert!(report["suppressed"].as_u64().unwrap() >= 6);

    std::fs::write(&ignore, "[[ignore]]\nrule = \"MOAT-SCAN-013\"\n").unwrap();
    let out = scan(&fx, &["--ignore-file", ignore.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reason"));
}

#[test]
fn unregistered_servers_are_reported_against_a_registry() {
    let fx = FixtureHome::create("cli-registry").unwrap();
    let registry = fx.root.join("registry.toml");
    std::fs::write(&registry, "[[server]]\nurl = \"https://mcp.sentry.dev/mcp\"\n\n[[server]]\ncommand = \"npx -y @modelcontextprotocol/server-memory@*\"\n").unwrap();
    let out = scan(&fx, &["--format", "json", "--registry", registry.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unregistered: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "MOAT-SCAN-015")
        .map(|f| f["server"].as_str().unwrap())
        .collect();
    assert_eq!(unregistered.len(), 21 - 2, "{unregistered:?}");
    assert!(!unregistered.contains(&"sentry") && !unregistered.contains(&"memory"));
}

fn require_peer(var: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from).filter(|p| p.exists()) {
        Some(p) => Some(p),
        None => {
            let reason = format!("{what} not found: set {var}");
            if std::env::var("MOAT_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("MOAT_REQUIRE_PEERS=1 but {reason}");
            }
            eprintln!("skipped: {reason}");
            None
        }
    }
}

fn live_scan(config: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let out = moat()
        .args(["scan", "--connect", "--format", "json", "--timeout", "60", "--config"])
        .arg(config)
        .arg("--pins")
        .arg(config.with_file_name("moat.lock"))
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (out.status.code(), v, stderr)
}

#[test]
fn live_scan_of_the_demo_server_finds_its_poisoned_tools_and_pins_them() {
    let fx = FixtureHome::create("cli-demo").unwrap();
    let config = fx.root.join("mcp.json");
    let bin = env!("CARGO_BIN_EXE_moat");
    std::fs::write(
        &config,
        serde_json::json!({"mcpServers": {"demo": {"command": bin, "args": ["demo-server"]}}}).to_string(),
    )
    .unwrap();

    let (code, report, stderr) = live_scan(&config, &["--write-pins"]);
    let live = &report["servers"][0]["live"];
    assert_eq!(live["status"], "ok", "{live:#}\n{stderr}");
    // stderr is a pipe here: no progress bar is drawn.
    assert!(!stderr.contains("scanning"), "{stderr}");
    assert!(!live["tools"].as_array().unwrap().is_empty());
    let rules: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert!(rules.iter().any(|r| r.starts_with("MOAT-TP-")), "the demo server's poisoned tool is found: {rules:?}");
    assert_eq!(code, Some(1));
    assert!(config.with_file_name("moat.lock").exists());

    // A second scan against the pins just written: nothing new, changed or removed.
    let (_, again, _) = live_scan(&config, &[]);
    let rules: Vec<&str> = again["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert!(
        !rules.iter().any(|r| ["MOAT-SCAN-030", "MOAT-SCAN-031", "MOAT-SCAN-032"].contains(r)),
        "the pins match what the server offers: {rules:?}"
    );
}

#[test]
fn live_scan_of_server_everything() {
    let Some(modules) = require_peer("MOAT_NODE_MODULES", "@modelcontextprotocol/server-everything") else { return };
    let node = std::env::var_os("MOAT_NODE22").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("node"));
    let script = modules.join("@modelcontextprotocol/server-everything/dist/index.js");
    assert!(script.exists(), "{}", script.display());
    let fx = FixtureHome::create("cli-everything").unwrap();
    let config = fx.root.join("mcp.json");
    std::fs::write(
        &config,
        serde_json::json!({"mcpServers": {"everything": {"command": node, "args": [script, "stdio"]}}}).to_string(),
    )
    .unwrap();
    let (_, report, stderr) = live_scan(&config, &[]);
    let live = &report["servers"][0]["live"];
    assert_eq!(live["status"], "ok", "{live:#}\n{stderr}");
    let tools: Vec<&str> = live["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(tools.contains(&"echo"), "{tools:?}");
    assert!(!live["prompts"].as_array().unwrap().is_empty());
    assert!(!live["resources"].as_array().unwrap().is_empty(), "{:#}", live["resources"]);
    assert!(live["instructions"].as_str().unwrap().contains("Everything"));
}

/// Kills the child on drop, so a failed assertion does not leave a server running.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn live_scan_over_streamable_http() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let _server = Running(
        moat()
            .args(["demo-server", "--http", &addr])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "demo server did not listen on {addr}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fx = FixtureHome::create("cli-http").unwrap();
    let config = fx.root.join("mcp.json");
    let url = format!("http://{addr}/mcp");
    std::fs::write(
        &config,
        serde_json::json!({"mcpServers": {"demo-http": {"type": "http", "url": url, "headers": {"X-Moat-Test": "1"}}}})
            .to_string(),
    )
    .unwrap();
    let (_, report, stderr) = live_scan(&config, &[]);
    let live = &report["servers"][0]["live"];
    assert_eq!(report["servers"][0]["transport"], "http");
    assert_eq!(live["status"], "ok", "{live:#}\n{stderr}");
    assert!(!live["tools"].as_array().unwrap().is_empty());
    // Loopback over plain http is not flagged.
    let rules: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert!(!rules.contains(&"MOAT-SCAN-012"), "{rules:?}");
}
