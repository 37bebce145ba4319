//! The admin listener over a real socket: `/healthz`, `/readyz`, `/metrics`, and the
//! exposition checked by Prometheus's own `promtool check metrics`.
//!
//! `promtool` comes from Debian's `prometheus` package (tests/peers/prometheus/apt.txt); it is
//! found as `MOAT_PROMTOOL` or on `PATH`. Without it the promtool checks print a skip reason,
//! unless `MOAT_REQUIRE_PEERS=1`, which turns a missing peer into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moat_gateway::admin::serve_admin;
use moat_gateway::guard::{Decision, DecisionRecord};
use moat_gateway::metrics::Metrics;

struct Admin {
    base: String,
    ready: Arc<AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(metrics: Arc<Metrics>) -> Admin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_admin(listener, metrics, move || flag.load(Ordering::SeqCst), async move {
        let _ = stopped.await;
    }));
    Admin { base, ready, stop: Some(stop), task }
}

fn decision(decision: Decision, rules: &[&str]) -> DecisionRecord {
    DecisionRecord {
        principal: "alice".into(),
        session: "s1".into(),
        upstream: "fs".into(),
        target: "read_file".into(),
        rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        latency: Some(Duration::from_millis(3)),
        result_bytes: Some(10),
        ..DecisionRecord::new("tools/call", decision)
    }
}

fn observed() -> Arc<Metrics> {
    let m = Arc::new(Metrics::new());
    m.observe_request("initialize");
    m.observe_request("tools/call");
    m.observe_request("tools/call");
    m.observe_request("no/such-method");
    m.observe_decision(&decision(Decision::Allow, &[]));
    m.observe_decision(&decision(Decision::Deny, &["MOAT-SEC-001", "MOAT-PATH-001"]));
    m.observe_decision(&decision(Decision::Modify, &["MOAT-PII-EMAIL"]));
    m.observe_decision(&decision(Decision::Quarantine, &["MOAT-PIN-CHANGED"]));
    m.observe_upstream("fs", "tools/call", Duration::from_millis(2), true);
    m.observe_upstream("fs", "tools/call", Duration::from_millis(400), false);
    m.observe_upstream("git", "tools/list", Duration::from_micros(100), true);
    m.set_sessions(2);
    m.set_quarantined(1);
    m.set_upstream_up("fs", true);
    m.set_upstream_up("git", false);
    m
}

#[tokio::test]
async fn healthz_readyz_and_metrics_answer() {
    let mut admin = start(observed()).await;
    let http = reqwest::Client::new();

    let r = http.get(format!("{}/healthz", admin.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().trim(), "ok");

    // Not ready: 503, and the body names the upstream that is down.
    let r = http.get(format!("{}/readyz", admin.base)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["upstreams_down"], serde_json::json!(["git"]));
    assert!(body["reason"].as_str().unwrap().contains("git"), "{body}");

    admin.ready.store(true, Ordering::SeqCst);
    let r = http.get(format!("{}/readyz", admin.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ready");

    // Plain scrape: Prometheus text 0.0.4.
    let r = http.get(format!("{}/metrics", admin.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    for line in [
        r#"moat_requests_total{method="tools/call"} 2"#,
        r#"moat_requests_total{method="other"} 1"#,
        r#"moat_decisions_total{decision="allow",rule=""} 1"#,
        r#"moat_decisions_total{decision="deny",rule="MOAT-SEC-001"} 1"#,
        r#"moat_decisions_total{decision="deny",rule="MOAT-PATH-001"} 1"#,
        r#"moat_decisions_total{decision="quarantine",rule="MOAT-PIN-CHANGED"} 1"#,
        r#"moat_upstream_errors_total{upstream="fs"} 1"#,
        r#"moat_upstream_errors_total{upstream="git"} 0"#,
        r#"moat_upstream_latency_seconds_count{upstream="fs",method="tools/call"} 2"#,
        "moat_active_sessions 2",
        "moat_quarantined_definitions 1",
        r#"moat_upstream_up{upstream="fs"} 1"#,
        r#"moat_upstream_up{upstream="git"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    promtool_accepts(&text);

    // A Prometheus server asks for OpenMetrics and gets it.
    let r = http
        .get(format!("{}/metrics", admin.base))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
        .send()
        .await
        .unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let om = r.text().await.unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.lines().any(|l| l == r#"moat_requests_total{method="tools/call"} 2"#), "{om}");

    let r = http.get(format!("{}/nope", admin.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Shutdown ends the server.
    admin.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), admin.task).await.unwrap().unwrap().unwrap();
}

/// `promtool` really rejects a bad exposition, so its acceptance above means something.
#[test]
fn promtool_rejects_a_broken_exposition() {
    let Some(promtool) = promtool() else { return };
    let (ok, out) = promtool_check(&promtool, "# TYPE moat_x counter\nmoat_x{method=\"a} 1\n");
    assert!(!ok, "promtool accepted a broken exposition: {out}");
}

fn promtool_accepts(text: &str) {
    let Some(promtool) = promtool() else { return };
    let (ok, out) = promtool_check(&promtool, text);
    assert!(ok, "promtool check metrics rejected the exposition: {out}\n---\n{text}");
}

/// Runs `promtool check metrics` on `text`: whether it passed (no errors, no lint problems),
/// and what it printed.
fn promtool_check(promtool: &PathBuf, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && printed.trim().is_empty(), printed)
}

/// `MOAT_PROMTOOL`, else `promtool` on `PATH`; `None` (after a visible skip) when absent.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("MOAT_PROMTOOL").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|d| d.join("promtool")).find(|p| p.is_file()))
    });
    if found.is_none() {
        let reason = "promtool not found (set MOAT_PROMTOOL or install Debian's `prometheus` package)";
        if std::env::var("MOAT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("MOAT_REQUIRE_PEERS=1 but the promtool peer is unavailable: {reason}");
        }
        eprintln!("SKIP promtool check: {reason}");
    }
    found
}
