//! Rate limits: token buckets per principal, per tool and per upstream, kept in the store
//! so that replicas sharing a Redis store share the buckets.

use std::sync::Arc;

use moat_config::guards::{glob_match, RateLimit, RateScope};
use moat_mcp::jsonrpc::code;
use moat_store::{Store, UnixMillis};
use serde_json::json;

use super::Denial;

pub struct RateGuard {
    limits: Vec<RateLimit>,
    store: Arc<dyn Store>,
}

impl RateGuard {
    pub fn new(limits: Vec<RateLimit>, store: Arc<dyn Store>) -> Self {
        RateGuard { limits, store }
    }

    /// Takes a token from every bucket that applies; the first empty one refuses the call.
    pub async fn check(&self, principal: &str, tool: &str, upstream: &str) -> Result<(), Denial> {
        for (i, l) in self.limits.iter().enumerate() {
            let (applies, subject) = match l.scope {
                RateScope::Principal => (glob_match(&l.pattern, tool), principal),
                RateScope::Tool => (glob_match(&l.pattern, tool), tool),
                RateScope::Upstream => (glob_match(&l.pattern, upstream), upstream),
            };
            if !applies {
                continue;
            }
            let key = format!("rl:{i}:{subject}");
            let per = l.per.0.as_secs_f64().max(0.001);
            let decision = self
                .store
                .take(&key, l.requests, f64::from(l.requests) / per, UnixMillis::now())
                .await
                .map_err(|e| Denial::new(code::INTERNAL_ERROR, format!("rate limit store unavailable: {e}")))?;
            if !decision.allowed {
                let scope = match l.scope {
                    RateScope::Principal => "caller",
                    RateScope::Tool => "tool",
                    RateScope::Upstream => "upstream",
                };
                let secs = decision.retry_after_ms.div_ceil(1000);
                let mut d = Denial::new(
                    code::RATE_LIMITED,
                    format!(
                        "rate limit exceeded for this {scope} ({} requests per {}); retry after {secs} s",
                        l.requests, l.per
                    ),
                )
                .with_rules(vec!["MOAT-RATE-001".into()]);
                d.data = Some(json!({ "retryAfterMs": decision.retry_after_ms }));
                return Err(d);
            }
        }
        Ok(())
    }
}
