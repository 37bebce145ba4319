//! The seams. Each trait is one kind of state; [`Store`] is all of them, which is what a
//! backend provides and what the gateway holds (`Arc<dyn Store>`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    ApiKeyRecord, AuditQuery, AuditRow, PinKey, PinRecord, RateDecision, SealRow, SessionKey, SessionRecord,
    StoreError, UnixMillis,
};

/// Everything a backend stores.
pub trait Store: SessionStore + PinStore + RateLimitStore + ApiKeyStore + Send + Sync {
    /// `memory`, `sqlite` or `redis`: for messages.
    fn backend(&self) -> &'static str;

    /// The audit-record store, where this backend keeps audit records (SQLite, memory);
    /// `None` where it does not (Redis: use the JSON-lines sink).
    fn audit(&self) -> Option<Arc<dyn AuditStore>>;
}

/// Sessions, keyed `<principal>:<session>`, with idle and absolute expiry.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates or replaces a session.
    async fn put_session(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// The session, if it exists and is live at `now`. An expired session is deleted and
    /// reads as absent.
    async fn get_session(&self, key: &SessionKey, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError>;

    /// Marks the session used at `now` and returns it as updated; `None` (and nothing
    /// written) when it does not exist or has expired.
    async fn touch_session(&self, key: &SessionKey, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError>;

    /// Ends a session; whether there was one.
    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError>;

    /// Which principal owns a live session id, whoever asks. Used only to recognise a
    /// session id presented by another principal (a hijack attempt), never to grant access.
    async fn session_owner(&self, session: &str, now: UnixMillis) -> Result<Option<String>, StoreError>;

    /// Deletes every session expired at `now`; how many.
    async fn purge_expired_sessions(&self, now: UnixMillis) -> Result<u64, StoreError>;
}

/// Pinned tool, prompt, template and instruction definitions, per upstream identity.
#[async_trait]
pub trait PinStore: Send + Sync {
    /// The pin for `key`.
    async fn get_pin(&self, key: &PinKey) -> Result<Option<PinRecord>, StoreError>;

    /// Creates or replaces a pin.
    async fn put_pin(&self, record: &PinRecord) -> Result<(), StoreError>;

    /// Every pin of one upstream, or of all, ordered by upstream, kind and name.
    async fn list_pins(&self, upstream: Option<&str>) -> Result<Vec<PinRecord>, StoreError>;

    /// Approves the pin's current definition, if its hash is still `hash` (so an operator
    /// never approves a definition that changed after they looked at it). Returns whether
    /// it was approved.
    async fn approve_pin(&self, key: &PinKey, hash: &str, now: UnixMillis) -> Result<bool, StoreError>;

    /// Withdraws trust: the pin becomes quarantined. Returns whether it existed.
    async fn revoke_pin(&self, key: &PinKey, now: UnixMillis) -> Result<bool, StoreError>;

    /// Forgets a pin (the next sighting pins afresh). Returns whether it existed.
    async fn delete_pin(&self, key: &PinKey) -> Result<bool, StoreError>;
}

/// Token buckets, taken from atomically.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Takes one token from bucket `key` (capacity `capacity`, refilled at
    /// `refill_per_sec` tokens per second), atomically across every replica sharing the
    /// store. A bucket never seen starts full.
    async fn take(
        &self,
        key: &str,
        capacity: u32,
        refill_per_sec: f64,
        now: UnixMillis,
    ) -> Result<RateDecision, StoreError>;
}

/// API keys, as salted hashes.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key; [`StoreError::Conflict`] if the id exists.
    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError>;

    /// The key with this id, revoked or not.
    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Every key, ordered by id.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes a key; whether it existed and was not already revoked.
    async fn revoke_api_key(&self, key_id: &str, now: UnixMillis) -> Result<bool, StoreError>;
}

/// Audit records and seals, appended in order by one writer.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends records and seals in one transaction: all are durable when this returns,
    /// or none are written. Sequence numbers must increase; a batch that repeats one is
    /// refused whole.
    async fn append_audit(&self, rows: Vec<AuditRow>, seals: Vec<SealRow>) -> Result<(), StoreError>;

    /// The last record, if any.
    async fn audit_head(&self) -> Result<Option<AuditRow>, StoreError>;

    /// Records with `seq > after_seq`, oldest first, at most `limit` (0: all).
    async fn audit_records(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditRow>, StoreError>;

    /// Seals with `seq > after_seq`, oldest first, at most `limit` (0: all).
    async fn audit_seals(&self, after_seq: u64, limit: usize) -> Result<Vec<SealRow>, StoreError>;

    /// Records that match a filter.
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError>;
}
