//! Moat's state store: sessions, tool pins, rate-limit buckets, API keys and audit records,
//! behind traits that the gateway and the audit log own, with one crate per backend beside
//! this one (`moat-store-sqlite`, `moat-store-redis`) and an in-memory backend here.
//!
//! # Why the traits are async
//!
//! The gateway calls the store on its hot path (a session touch and a rate-limit take on
//! every request). The Redis backend is naturally asynchronous (one multiplexed connection,
//! many requests in flight), and making the traits async lets it be used without a thread
//! per request. The SQLite backend is synchronous underneath: it runs each operation on
//! tokio's blocking pool (`spawn_blocking`) so that a slow disk never stalls the executor
//! threads that serve other requests; one SQLite operation costs a few microseconds plus
//! the hand-off. The in-memory backend completes without awaiting anything.
//!
//! # Why time is an argument
//!
//! Every operation that depends on the clock (expiry, token refill) takes `now` from the
//! caller. The stores never read the clock themselves, so that tests are deterministic and
//! all replicas of a Redis deployment agree on what "now" meant for one request.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod error;
pub mod memory;
mod traits;
mod types;
mod url;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use traits::{ApiKeyStore, AuditStore, PinStore, RateLimitStore, SessionStore, Store};
pub use types::{
    ApiKeyRecord, AuditQuery, AuditRow, PinKey, PinKind, PinRecord, PinState, RateDecision, SealRow, SessionKey,
    SessionRecord, UnixMillis,
};
pub use url::StoreUrl;

/// Token-bucket arithmetic shared by the backends that keep buckets in process (memory,
/// SQLite); the Redis backend runs the same steps in a Lua script.
///
/// Returns the new token count and the decision. A bucket that has never been seen starts
/// full. A clock that went backwards refills nothing.
pub fn token_bucket_step(
    state: Option<(f64, UnixMillis)>,
    capacity: u32,
    refill_per_sec: f64,
    now: UnixMillis,
) -> (f64, RateDecision) {
    let cap = f64::from(capacity);
    let tokens = match state {
        None => cap,
        Some((tokens, last)) => {
            let elapsed_ms = now.0.saturating_sub(last.0).max(0) as f64;
            (tokens + elapsed_ms / 1000.0 * refill_per_sec.max(0.0)).min(cap)
        }
    };
    if tokens >= 1.0 {
        let left = tokens - 1.0;
        (left, RateDecision { allowed: true, remaining: left.floor() as u32, retry_after_ms: 0 })
    } else {
        let retry_after_ms =
            if refill_per_sec > 0.0 { ((1.0 - tokens) / refill_per_sec * 1000.0).ceil() as u64 } else { u64::MAX };
        (tokens, RateDecision { allowed: false, remaining: 0, retry_after_ms })
    }
}
