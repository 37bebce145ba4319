//! Decisions and their records: one record per decision, carrying the findings' rule ids.

use std::time::Duration;

use serde::Serialize;

/// What a guard decided about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Modify,
    Quarantine,
}

/// The facts of one decision, for the audit log and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    /// The principal's key; empty for decisions nobody asked for (a quarantine as a list came
    /// in) and for unauthenticated requests.
    pub principal: String,
    /// The OAuth client the principal's token was issued to.
    pub client_id: Option<String>,
    pub session: String,
    pub upstream: String,
    pub method: String,
    /// Tool, prompt or resource the message is about.
    pub target: String,
    pub decision: Decision,
    pub rules: Vec<String>,
    pub reason: String,
    #[serde(skip)]
    pub latency: Option<Duration>,
    pub result_bytes: Option<usize>,
    /// The call's arguments (digested in the audit record; kept only redacted, and only
    /// with `[audit] include_arguments`).
    #[serde(skip)]
    pub arguments: Option<serde_json::Value>,
}

impl DecisionRecord {
    /// A record of `decision` on a `method` message with every other fact empty, for the
    /// caller to fill in (`DecisionRecord { rules, ..DecisionRecord::new(m, d) }`).
    pub fn new(method: &str, decision: Decision) -> DecisionRecord {
        DecisionRecord {
            principal: String::new(),
            client_id: None,
            session: String::new(),
            upstream: String::new(),
            method: method.to_string(),
            target: String::new(),
            decision,
            rules: Vec::new(),
            reason: String::new(),
            latency: None,
            result_bytes: None,
            arguments: None,
        }
    }

    /// The audit log's view of this record. Arguments become a digest, and are kept only
    /// with `include_arguments`, after secret and PII redaction.
    pub fn into_audit_event(self, detector: &moat_detect::Detector, include_arguments: bool) -> moat_audit::AuditEvent {
        let decision = match self.decision {
            Decision::Allow => moat_audit::Decision::Allow,
            Decision::Deny => moat_audit::Decision::Deny,
            Decision::Modify => moat_audit::Decision::Modify,
            Decision::Quarantine => moat_audit::Decision::Quarantine,
        };
        let mut event = moat_audit::AuditEvent::new(self.method, decision);
        event.principal = (!self.principal.is_empty())
            .then_some(moat_audit::AuditPrincipal { subject: self.principal, client_id: self.client_id });
        event.session = (!self.session.is_empty()).then_some(self.session);
        event.upstream = (!self.upstream.is_empty()).then_some(self.upstream);
        event.target = (!self.target.is_empty()).then_some(self.target);
        event.rules = self.rules;
        event.reason = (!self.reason.is_empty()).then_some(self.reason);
        event.latency_us = self.latency.map_or(0, |d| d.as_micros() as u64);
        event.result_bytes = self.result_bytes.map(|b| b as u64);
        if let Some(args) = self.arguments {
            match event.clone().with_arguments(&args, include_arguments, || redact_value(detector, &args)) {
                Ok(e) => event = e,
                Err(e) => tracing::warn!(error = %e, "arguments could not be digested for the audit record"),
            }
        }
        event
    }

    /// Emits the record as a structured event (`moat::decision`), the sink the audit log
    /// reads from.
    pub fn emit(&self) {
        let latency_us = self.latency.map(|d| d.as_micros() as u64);
        match self.decision {
            Decision::Allow => tracing::debug!(
                target: "moat::decision",
                decision = "allow", principal = %self.principal, session = %self.session,
                upstream = %self.upstream, method = %self.method, target_name = %self.target,
                rules = ?self.rules, latency_us, result_bytes = self.result_bytes,
            ),
            d => tracing::info!(
                target: "moat::decision",
                decision = ?d, principal = %self.principal, session = %self.session,
                upstream = %self.upstream, method = %self.method, target_name = %self.target,
                rules = ?self.rules, reason = %self.reason, latency_us, result_bytes = self.result_bytes,
            ),
        }
    }
}

/// `v` with secrets and PII in every string replaced by typed placeholders.
fn redact_value(detector: &moat_detect::Detector, v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let findings: Vec<_> = detector
                .scan_text(s)
                .into_iter()
                .filter(|f| f.rule.starts_with("MOAT-SEC-") || f.rule.starts_with("MOAT-PII-"))
                .collect();
            if findings.is_empty() {
                v.clone()
            } else {
                Value::String(detector.redact(s, &findings))
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| redact_value(detector, x)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), redact_value(detector, x))).collect()),
        other => other.clone(),
    }
}
