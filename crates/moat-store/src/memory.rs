//! The in-memory backend (`[store] url = "memory"`): nothing survives a restart. Used by
//! tests, demos and `moat wrap`, where one process serves one client.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{
    token_bucket_step, ApiKeyRecord, ApiKeyStore, AuditQuery, AuditRow, AuditStore, PinKey, PinRecord, PinState,
    PinStore, RateDecision, RateLimitStore, SealRow, SessionKey, SessionRecord, SessionStore, Store, StoreError,
    UnixMillis,
};

/// Every kind of state in process memory, behind one mutex per kind.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: Mutex<HashMap<SessionKey, SessionRecord>>,
    pins: Mutex<BTreeMap<PinKey, PinRecord>>,
    buckets: Mutex<HashMap<String, (f64, UnixMillis)>>,
    api_keys: Mutex<BTreeMap<String, ApiKeyRecord>>,
    audit: Mutex<(Vec<AuditRow>, Vec<SealRow>)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock().map_err(|_| StoreError::backend("memory", "a thread panicked while holding the lock"))
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn audit(&self) -> Option<Arc<dyn AuditStore>> {
        Some(Arc::new(self.clone()))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        lock(&self.inner.sessions)?.insert(record.key(), record.clone());
        Ok(())
    }

    async fn get_session(&self, key: &SessionKey, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError> {
        let mut sessions = lock(&self.inner.sessions)?;
        match sessions.get(key) {
            Some(r) if r.is_live(now) => Ok(Some(r.clone())),
            Some(_) => {
                sessions.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn touch_session(&self, key: &SessionKey, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError> {
        let mut sessions = lock(&self.inner.sessions)?;
        let Some(r) = sessions.get_mut(key) else { return Ok(None) };
        if !r.is_live(now) {
            sessions.remove(key);
            return Ok(None);
        }
        r.last_seen = r.last_seen.max(now);
        Ok(Some(r.clone()))
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(lock(&self.inner.sessions)?.remove(key).is_some())
    }

    async fn session_owner(&self, session: &str, now: UnixMillis) -> Result<Option<String>, StoreError> {
        let sessions = lock(&self.inner.sessions)?;
        Ok(sessions.values().find(|r| r.session == session && r.is_live(now)).map(|r| r.principal.clone()))
    }

    async fn purge_expired_sessions(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let mut sessions = lock(&self.inner.sessions)?;
        let before = sessions.len();
        sessions.retain(|_, r| r.is_live(now));
        Ok((before - sessions.len()) as u64)
    }
}

#[async_trait]
impl PinStore for MemoryStore {
    async fn get_pin(&self, key: &PinKey) -> Result<Option<PinRecord>, StoreError> {
        Ok(lock(&self.inner.pins)?.get(key).cloned())
    }

    async fn put_pin(&self, record: &PinRecord) -> Result<(), StoreError> {
        lock(&self.inner.pins)?.insert(record.key.clone(), record.clone());
        Ok(())
    }

    async fn list_pins(&self, upstream: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        Ok(lock(&self.inner.pins)?.values().filter(|r| upstream.is_none_or(|u| r.key.upstream == u)).cloned().collect())
    }

    async fn approve_pin(&self, key: &PinKey, hash: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let mut pins = lock(&self.inner.pins)?;
        match pins.get_mut(key) {
            Some(r) if r.hash == hash => {
                r.state = PinState::Approved;
                r.trusted_definition = None;
                r.trusted_hash = None;
                r.updated = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_pin(&self, key: &PinKey, now: UnixMillis) -> Result<bool, StoreError> {
        let mut pins = lock(&self.inner.pins)?;
        match pins.get_mut(key) {
            Some(r) => {
                r.state = PinState::Quarantined;
                r.updated = now;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_pin(&self, key: &PinKey) -> Result<bool, StoreError> {
        Ok(lock(&self.inner.pins)?.remove(key).is_some())
    }
}

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn take(
        &self,
        key: &str,
        capacity: u32,
        refill_per_sec: f64,
        now: UnixMillis,
    ) -> Result<RateDecision, StoreError> {
        let mut buckets = lock(&self.inner.buckets)?;
        let state = buckets.get(key).copied();
        let (tokens, decision) = token_bucket_step(state, capacity, refill_per_sec, now);
        let last = state.map_or(now, |(_, last)| last.max(now));
        buckets.insert(key.to_owned(), (tokens, last));
        Ok(decision)
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut keys = lock(&self.inner.api_keys)?;
        if keys.contains_key(&record.key_id) {
            return Err(StoreError::Conflict { what: "api key", key: record.key_id.clone() });
        }
        keys.insert(record.key_id.clone(), record.clone());
        Ok(())
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(lock(&self.inner.api_keys)?.get(key_id).cloned())
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(lock(&self.inner.api_keys)?.values().cloned().collect())
    }

    async fn revoke_api_key(&self, key_id: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let mut keys = lock(&self.inner.api_keys)?;
        match keys.get_mut(key_id) {
            Some(r) if r.revoked.is_none() => {
                r.revoked = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, rows: Vec<AuditRow>, seals: Vec<SealRow>) -> Result<(), StoreError> {
        let mut audit = lock(&self.inner.audit)?;
        // Refuse the whole batch unless sequence numbers increase, as SQLite's primary key does.
        let mut last = audit.0.last().map_or(0, |r| r.seq);
        for r in &rows {
            if r.seq <= last {
                return Err(StoreError::Conflict { what: "audit record", key: r.seq.to_string() });
            }
            last = r.seq;
        }
        audit.0.extend(rows);
        audit.1.extend(seals);
        Ok(())
    }

    async fn audit_head(&self) -> Result<Option<AuditRow>, StoreError> {
        Ok(lock(&self.inner.audit)?.0.last().cloned())
    }

    async fn audit_records(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let audit = lock(&self.inner.audit)?;
        Ok(audit.0.iter().filter(|r| r.seq > after_seq).take(no_limit_if_zero(limit)).cloned().collect())
    }

    async fn audit_seals(&self, after_seq: u64, limit: usize) -> Result<Vec<SealRow>, StoreError> {
        let audit = lock(&self.inner.audit)?;
        Ok(audit.1.iter().filter(|r| r.seq > after_seq).take(no_limit_if_zero(limit)).cloned().collect())
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let audit = lock(&self.inner.audit)?;
        let limit = no_limit_if_zero(query.limit);
        let matching = audit.0.iter().filter(|r| query.matches(r)).cloned();
        Ok(if query.newest_first {
            let mut v: Vec<AuditRow> = matching.collect();
            v.reverse();
            v.truncate(limit);
            v
        } else {
            matching.take(limit).collect()
        })
    }
}

fn no_limit_if_zero(limit: usize) -> usize {
    if limit == 0 {
        usize::MAX
    } else {
        limit
    }
}
