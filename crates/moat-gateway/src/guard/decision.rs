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
    pub principal: String,
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
}

impl DecisionRecord {
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
