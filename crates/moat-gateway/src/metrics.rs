//! Prometheus metrics for the gateway (docs/telemetry.md), served by the admin listener
//! ([`crate::admin`]).
//!
//! Label values are bounded so that no client can grow the series count: methods outside the
//! MCP specification become `other`, and rule ids and upstream names beyond a fixed number of
//! distinct values become `other` too (both come from configuration and rule files, so the
//! caps are a backstop, not the normal path).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::guard::{Decision, DecisionRecord};

/// `Content-Type` of [`Metrics::encode`]: the Prometheus text format, version 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `Content-Type` of [`Metrics::encode_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds, in seconds, of the upstream latency histogram's buckets: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: [f64; 15] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The label value that stands for every method, rule or upstream that is not counted by name.
pub const OTHER: &str = "other";

/// Most distinct rule ids counted by name; later ones are counted as `other`.
pub const MAX_RULE_LABELS: usize = 1024;

/// Most distinct upstream names counted by name; later ones are counted as `other`.
pub const MAX_UPSTREAM_LABELS: usize = 256;

/// Every JSON-RPC method the MCP specification defines (requests and notifications, both
/// directions). Any other method is counted as `other`.
pub const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/resources/updated",
    "notifications/resources/list_changed",
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/roots/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

/// The gateway's metrics. Cheap to update from any task; share it as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    requests: Family<MethodLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    upstream_errors: Family<UpstreamLabels, Counter>,
    upstream_latency: Family<UpstreamMethodLabels, Histogram, fn() -> Histogram>,
    active_sessions: Gauge,
    quarantined: Gauge,
    upstream_up: Family<UpstreamLabels, Gauge>,
    rule_labels: LabelCap,
    upstream_labels: LabelCap,
    /// Last reported state of each upstream, for `/readyz` to name the ones that are down.
    upstream_state: Mutex<BTreeMap<String, bool>>,
}

impl Metrics {
    /// A fresh set of metrics, every counter at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<MethodLabels, Counter>::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        let upstream_latency =
            Family::<UpstreamMethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let active_sessions = Gauge::default();
        let quarantined = Gauge::default();
        let upstream_up = Family::<UpstreamLabels, Gauge>::default();
        // Counter names are registered without `_total`: the encoder appends it. Help texts
        // end without a period: the encoder appends one.
        registry.register("moat_requests", "JSON-RPC messages received from clients, by method", requests.clone());
        registry.register(
            "moat_decisions",
            "Guard decisions, by decision and by rule id (one count per rule; rule is empty when no rule matched)",
            decisions.clone(),
        );
        registry.register(
            "moat_upstream_errors",
            "Upstream calls that failed (transport error or timeout), by upstream",
            upstream_errors.clone(),
        );
        registry.register(
            "moat_upstream_latency_seconds",
            "Time from forwarding a request to an upstream until its response, by upstream and method",
            upstream_latency.clone(),
        );
        registry.register("moat_active_sessions", "Client sessions currently open", active_sessions.clone());
        registry.register(
            "moat_quarantined_definitions",
            "Tool, prompt and resource-template definitions currently quarantined by the pinning guard",
            quarantined.clone(),
        );
        registry.register(
            "moat_upstream_up",
            "Whether an upstream is connected and initialized (1) or not (0)",
            upstream_up.clone(),
        );
        Metrics {
            registry,
            requests,
            decisions,
            upstream_errors,
            upstream_latency,
            active_sessions,
            quarantined,
            upstream_up,
            rule_labels: LabelCap::new(MAX_RULE_LABELS),
            upstream_labels: LabelCap::new(MAX_UPSTREAM_LABELS),
            upstream_state: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one message received from a client.
    pub fn observe_request(&self, method: &str) {
        self.requests.get_or_create(&MethodLabels { method: method_label(method) }).inc();
    }

    /// Counts one decision: once per rule id it names, or once with `rule=""` when it names none.
    pub fn observe_decision(&self, record: &DecisionRecord) {
        let decision = decision_label(record.decision);
        if record.rules.is_empty() {
            self.decisions.get_or_create(&DecisionLabels { decision, rule: String::new() }).inc();
        }
        for rule in &record.rules {
            let rule = self.rule_labels.label(rule);
            self.decisions.get_or_create(&DecisionLabels { decision, rule }).inc();
        }
    }

    /// Records one upstream call: its latency, and an error when `ok` is false.
    pub fn observe_upstream(&self, upstream: &str, method: &str, latency: Duration, ok: bool) {
        let upstream = self.upstream_labels.label(upstream);
        self.upstream_latency
            .get_or_create(&UpstreamMethodLabels { upstream: upstream.clone(), method: method_label(method) })
            .observe(latency.as_secs_f64());
        let errors = self.upstream_errors.get_or_create(&UpstreamLabels { upstream });
        if !ok {
            errors.inc();
        }
    }

    /// Sets the number of open client sessions.
    pub fn set_sessions(&self, n: usize) {
        self.active_sessions.set(saturating_i64(n));
    }

    /// Sets the number of quarantined definitions.
    pub fn set_quarantined(&self, n: usize) {
        self.quarantined.set(saturating_i64(n));
    }

    /// Sets whether an upstream is up. This also creates its error counter at zero, so that
    /// `rate()` works from the first scrape.
    pub fn set_upstream_up(&self, name: &str, up: bool) {
        let label = self.upstream_labels.label(name);
        self.upstream_up.get_or_create(&UpstreamLabels { upstream: label.clone() }).set(i64::from(up));
        drop(self.upstream_errors.get_or_create(&UpstreamLabels { upstream: label }));
        lock(&self.upstream_state).insert(name.to_owned(), up);
    }

    /// Upstreams last reported down by [`Metrics::set_upstream_up`], in name order.
    pub fn upstreams_down(&self) -> Vec<String> {
        lock(&self.upstream_state).iter().filter(|(_, up)| !**up).map(|(name, _)| name.clone()).collect()
    }

    /// The metrics in the Prometheus text format, version 0.0.4 ([`PROMETHEUS_CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        out
    }

    /// The metrics in the OpenMetrics text format, ending in `# EOF` ([`OPENMETRICS_CONTENT_TYPE`]).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamMethodLabels {
    upstream: String,
    method: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// `method` itself when the MCP specification defines it, else `other`.
fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.iter().find(|m| **m == method).copied().unwrap_or(OTHER)
}

fn decision_label(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
        Decision::Modify => "modify",
        Decision::Quarantine => "quarantine",
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A lock that survives a panic elsewhere: the data is a plain map, valid at every point.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Admits at most `max` distinct label values; the rest become `other`.
struct LabelCap {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl LabelCap {
    fn new(max: usize) -> Self {
        LabelCap { max, seen: Mutex::new(HashSet::new()) }
    }

    fn label(&self, value: &str) -> String {
        let mut seen = lock(&self.seen);
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() < self.max {
            seen.insert(value.to_owned());
            return value.to_owned();
        }
        OTHER.to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn record(decision: Decision, rules: &[&str]) -> DecisionRecord {
        DecisionRecord {
            principal: "alice".into(),
            session: "s1".into(),
            upstream: "fs".into(),
            target: "read_file".into(),
            rules: rules.iter().map(|r| (*r).to_owned()).collect(),
            ..DecisionRecord::new("tools/call", decision)
        }
    }

    /// The value of the one sample line that starts with `series` (name and labels, exactly).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| {
            l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse().unwrap())
        })
    }

    #[test]
    fn requests_are_counted_by_method_and_unknown_methods_are_other() {
        let m = Metrics::new();
        m.observe_request("tools/call");
        m.observe_request("tools/call");
        m.observe_request("initialize");
        m.observe_request("x/evil-1");
        m.observe_request("x/evil-2");
        let t = m.encode();
        assert_eq!(sample(&t, r#"moat_requests_total{method="tools/call"}"#), Some(2.0), "{t}");
        assert_eq!(sample(&t, r#"moat_requests_total{method="initialize"}"#), Some(1.0), "{t}");
        assert_eq!(sample(&t, r#"moat_requests_total{method="other"}"#), Some(2.0), "{t}");
        assert!(!t.contains("evil"), "{t}");
    }

    #[test]
    fn decisions_count_once_per_rule_and_empty_rule_when_none() {
        let m = Metrics::new();
        m.observe_decision(&record(Decision::Allow, &[]));
        m.observe_decision(&record(Decision::Deny, &["MOAT-SEC-001", "MOAT-CMD-002"]));
        m.observe_decision(&record(Decision::Deny, &["MOAT-SEC-001"]));
        m.observe_decision(&record(Decision::Quarantine, &["MOAT-PIN-CHANGED"]));
        let t = m.encode();
        assert_eq!(sample(&t, r#"moat_decisions_total{decision="allow",rule=""}"#), Some(1.0), "{t}");
        assert_eq!(sample(&t, r#"moat_decisions_total{decision="deny",rule="MOAT-SEC-001"}"#), Some(2.0), "{t}");
        assert_eq!(sample(&t, r#"moat_decisions_total{decision="deny",rule="MOAT-CMD-002"}"#), Some(1.0), "{t}");
        assert_eq!(
            sample(&t, r#"moat_decisions_total{decision="quarantine",rule="MOAT-PIN-CHANGED"}"#),
            Some(1.0),
            "{t}"
        );
        assert_eq!(sample(&t, r#"moat_decisions_total{decision="deny",rule=""}"#), None, "{t}");
    }

    #[test]
    fn upstream_latency_lands_in_the_right_buckets_and_errors_are_counted() {
        let m = Metrics::new();
        m.observe_upstream("fs", "tools/call", Duration::from_micros(300), true);
        m.observe_upstream("fs", "tools/call", Duration::from_millis(20), false);
        m.observe_upstream("fs", "tools/call", Duration::from_secs(60), true);
        let t = m.encode();
        let b = |le: &str| {
            sample(
                &t,
                &format!(r#"moat_upstream_latency_seconds_bucket{{upstream="fs",method="tools/call",le="{le}"}}"#),
            )
        };
        assert_eq!(b("0.0005"), Some(1.0), "{t}");
        assert_eq!(b("0.01"), Some(1.0), "{t}");
        assert_eq!(b("0.025"), Some(2.0), "{t}");
        assert_eq!(b("30"), Some(2.0), "{t}");
        assert_eq!(b("+Inf"), Some(3.0), "{t}");
        assert_eq!(
            sample(&t, r#"moat_upstream_latency_seconds_count{upstream="fs",method="tools/call"}"#),
            Some(3.0),
            "{t}"
        );
        assert_eq!(sample(&t, r#"moat_upstream_errors_total{upstream="fs"}"#), Some(1.0), "{t}");
    }

    #[test]
    fn gauges_are_set_and_upstream_state_is_remembered() {
        let m = Metrics::new();
        m.set_sessions(3);
        m.set_quarantined(2);
        m.set_upstream_up("fs", true);
        m.set_upstream_up("git", false);
        let t = m.encode();
        assert_eq!(sample(&t, "moat_active_sessions"), Some(3.0), "{t}");
        assert_eq!(sample(&t, "moat_quarantined_definitions"), Some(2.0), "{t}");
        assert_eq!(sample(&t, r#"moat_upstream_up{upstream="fs"}"#), Some(1.0), "{t}");
        assert_eq!(sample(&t, r#"moat_upstream_up{upstream="git"}"#), Some(0.0), "{t}");
        // A known upstream's error counter exists at zero before its first failure.
        assert_eq!(sample(&t, r#"moat_upstream_errors_total{upstream="git"}"#), Some(0.0), "{t}");
        assert_eq!(m.upstreams_down(), vec!["git".to_owned()]);
        m.set_upstream_up("git", true);
        assert!(m.upstreams_down().is_empty());
        m.set_sessions(0);
        assert_eq!(sample(&m.encode(), "moat_active_sessions"), Some(0.0));
    }

    #[test]
    fn rule_labels_are_capped() {
        let m = Metrics::new();
        for i in 0..MAX_RULE_LABELS + 5 {
            m.observe_decision(&record(Decision::Deny, &[&format!("R{i}")]));
        }
        let t = m.encode();
        assert_eq!(sample(&t, r#"moat_decisions_total{decision="deny",rule="R0"}"#), Some(1.0));
        assert_eq!(
            sample(&t, &format!(r#"moat_decisions_total{{decision="deny",rule="R{}"}}"#, MAX_RULE_LABELS)),
            None
        );
        assert_eq!(sample(&t, r#"moat_decisions_total{decision="deny",rule="other"}"#), Some(5.0));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.set_upstream_up("a\"b\\c\nd", true);
        let t = m.encode();
        assert!(t.contains(r#"moat_upstream_up{upstream="a\"b\\c\nd"} 1"#), "{t}");
    }

    #[test]
    fn formats_have_their_shapes() {
        let m = Metrics::new();
        m.observe_request("ping");
        m.observe_upstream("fs", "ping", Duration::from_millis(1), true);
        let prom = m.encode();
        assert!(prom.contains("# TYPE moat_requests_total counter\n"), "{prom}");
        assert!(prom.contains("# TYPE moat_upstream_latency_seconds histogram\n"), "{prom}");
        assert!(!prom.contains("# EOF"), "{prom}");
        let om = m.encode_openmetrics();
        assert!(om.contains("# TYPE moat_requests counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
    }
}
