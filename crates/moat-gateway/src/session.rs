//! Client sessions: ids from the OS CSPRNG, bound to the principal that created them,
//! expired on idle and absolute lifetimes. A session id is never a credential: the front
//! authenticates every request, then looks the session up under that principal.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use moat_mcp::{Id, ProtocolVersion};
use serde_json::Value;
use tokio::sync::mpsc;

/// Bytes of randomness in a session id (256 bits; the spec asks for at least 128).
const SESSION_ID_BYTES: usize = 32;
/// Server-initiated messages kept for a session that has no open GET stream.
const MAX_BUFFERED: usize = 256;

/// One client session.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    /// The principal's stable key (`Principal::key`): what the session is bound to.
    pub principal: String,
    /// Who created the session, for policy decisions.
    pub identity: Arc<moat_auth::Principal>,
    /// Random per-session boundary for spotlighted content (unguessable by the content).
    pub spotlight_boundary: String,
    created: Instant,
    last_seen: Mutex<Instant>,
    version: RwLock<ProtocolVersion>,
    pub client_capabilities: RwLock<Value>,
    initialized: AtomicBool,
    outbound: Mutex<OutboundQueue>,
    /// Requests an upstream made of this client: client-facing id → (upstream, upstream's id).
    pub server_requests: Mutex<HashMap<Id, (usize, Id)>>,
    /// Resource URIs this client subscribed to.
    pub subscriptions: Mutex<HashSet<String>>,
    /// The session's POST event streams, kept for resumption with `Last-Event-ID`.
    pub streams: crate::front::resume::ResumableStreams,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct OutboundQueue {
    stream: Option<mpsc::Sender<Bytes>>,
    buffer: VecDeque<Bytes>,
}

impl Session {
    pub fn version(&self) -> ProtocolVersion {
        self.version.read().map(|v| *v).unwrap_or(ProtocolVersion::LATEST)
    }
    pub fn set_version(&self, v: ProtocolVersion) {
        if let Ok(mut g) = self.version.write() {
            *g = v;
        }
    }
    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::SeqCst);
    }
    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::SeqCst)
    }
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
    /// Whether the client declared a capability (`sampling`, `elicitation`, `roots`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.client_capabilities.read().map(|c| c.get(name).is_some()).unwrap_or(false)
    }

    /// Sends a server-initiated message on the session's GET stream, or keeps it until one
    /// opens (the oldest is dropped past a bound: a client that never listens cannot make
    /// Moat hold unbounded memory).
    pub fn push(&self, bytes: Bytes) {
        let Ok(mut q) = self.outbound.lock() else { return };
        if let Some(tx) = &q.stream {
            match tx.try_send(bytes) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(b)) | Err(mpsc::error::TrySendError::Closed(b)) => {
                    q.stream = None;
                    q.buffer.push_back(b);
                }
            }
        } else {
            q.buffer.push_back(bytes);
        }
        if q.buffer.len() > MAX_BUFFERED {
            q.buffer.pop_front();
            tracing::warn!(session = %short(&self.id), "client is not reading its event stream; dropped the oldest message");
        }
    }

    /// Opens the GET stream, replacing an earlier one, and delivers what was kept.
    pub fn attach_stream(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(MAX_BUFFERED);
        if let Ok(mut q) = self.outbound.lock() {
            while let Some(b) = q.buffer.pop_front() {
                if tx.try_send(b).is_err() {
                    break;
                }
            }
            q.stream = Some(tx);
        }
        rx
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_seen.lock() {
            *t = Instant::now();
        }
    }

    fn expired(&self, now: Instant, idle: Duration, max_life: Duration) -> bool {
        let last = self.last_seen.lock().map(|t| *t).unwrap_or(self.created);
        now.duration_since(last) > idle || now.duration_since(self.created) > max_life
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(mut q) = self.outbound.lock() {
            q.stream = None;
            q.buffer.clear();
        }
    }
}

/// A session id shortened for logs: enough to correlate, too little to replay.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Result of looking a session up.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<Session>),
    /// Unknown or expired.
    NotFound,
    /// It exists but another principal created it: answered exactly like `NotFound`, and
    /// logged as a hijack attempt.
    OtherPrincipal,
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the gateway is at its limit of {0} sessions")]
    Full(usize),
    #[error("the system random number generator failed")]
    Rng,
}

/// Every live session. Keys are `<principal>:<session id>`, so a lookup under the wrong
/// principal cannot find another's session.
#[derive(Debug)]
pub struct SessionTable {
    map: RwLock<HashMap<String, Arc<Session>>>,
    idle: Duration,
    max_life: Duration,
    max_sessions: usize,
}

impl SessionTable {
    pub fn new(idle: Duration, max_life: Duration, max_sessions: usize) -> Arc<Self> {
        Arc::new(SessionTable { map: RwLock::new(HashMap::new()), idle, max_life, max_sessions })
    }

    pub fn create(
        &self,
        identity: moat_auth::Principal,
        version: ProtocolVersion,
    ) -> Result<Arc<Session>, CreateError> {
        let key_owned = identity.key();
        let principal = key_owned.as_str();
        let mut raw = [0u8; SESSION_ID_BYTES];
        getrandom::getrandom(&mut raw).map_err(|_| CreateError::Rng)?;
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).map_err(|_| CreateError::Rng)?;
        let spotlight_boundary = format!("MOAT-UNTRUSTED-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>());
        let now = Instant::now();
        let session = Arc::new(Session {
            id: id.clone(),
            principal: principal.to_string(),
            identity: Arc::new(identity.clone()),
            spotlight_boundary,
            created: now,
            last_seen: Mutex::new(now),
            version: RwLock::new(version),
            client_capabilities: RwLock::new(Value::Null),
            initialized: AtomicBool::new(false),
            outbound: Mutex::new(OutboundQueue::default()),
            server_requests: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashSet::new()),
            streams: crate::front::resume::ResumableStreams::default(),
            closed: AtomicBool::new(false),
        });
        let mut map = self.map.write().map_err(|_| CreateError::Rng)?;
        if map.len() >= self.max_sessions {
            return Err(CreateError::Full(self.max_sessions));
        }
        map.insert(key(principal, &id), session.clone());
        Ok(session)
    }

    pub fn get(&self, principal: &str, id: &str) -> Lookup {
        let Ok(map) = self.map.read() else { return Lookup::NotFound };
        if let Some(s) = map.get(&key(principal, id)) {
            if s.expired(Instant::now(), self.idle, self.max_life) {
                return Lookup::NotFound;
            }
            s.touch();
            return Lookup::Found(s.clone());
        }
        // Rare path: is it someone else's? Only then scan.
        if map.values().any(|s| s.id == id) {
            Lookup::OtherPrincipal
        } else {
            Lookup::NotFound
        }
    }

    pub fn remove(&self, principal: &str, id: &str) -> bool {
        let removed = self.map.write().ok().and_then(|mut m| m.remove(&key(principal, id)));
        match removed {
            Some(s) => {
                s.close();
                true
            }
            None => false,
        }
    }

    /// Every live session (for broadcasts).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.map.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes expired sessions; returns how many.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let Ok(mut map) = self.map.write() else { return 0 };
        let before = map.len();
        map.retain(|_, s| {
            let keep = !s.expired(now, self.idle, self.max_life);
            if !keep {
                s.close();
            }
            keep
        });
        before - map.len()
    }

    /// Sweeps every `period` until the table is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, period: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(table) = weak.upgrade() else { return };
                let n = table.sweep();
                if n > 0 {
                    tracing::debug!(expired = n, "sessions expired");
                }
            }
        });
    }
}

fn key(principal: &str, id: &str) -> String {
    let mut k = String::with_capacity(principal.len() + id.len() + 1);
    k.push_str(principal);
    k.push(':');
    k.push_str(id);
    k
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_are_bound_to_their_principal_and_expire() {
        let t = SessionTable::new(Duration::from_millis(50), Duration::from_secs(60), 10);
        let s = t
            .create(moat_auth::Principal::new("alice", moat_auth::AuthMethod::ApiKey), ProtocolVersion::LATEST)
            .unwrap();
        let alice = s.principal.clone();
        assert!(s.id.len() >= 43, "256-bit ids");
        assert!(matches!(t.get(&alice, &s.id), Lookup::Found(_)));
        assert!(matches!(t.get("api_key:mallory", &s.id), Lookup::OtherPrincipal));
        assert!(matches!(t.get(&alice, "nope"), Lookup::NotFound));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(matches!(t.get(&alice, &s.id), Lookup::NotFound));
        assert_eq!(t.sweep(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn the_table_has_a_limit() {
        let t = SessionTable::new(Duration::from_secs(60), Duration::from_secs(60), 1);
        t.create(moat_auth::Principal::anonymous(), ProtocolVersion::LATEST).unwrap();
        assert!(matches!(
            t.create(moat_auth::Principal::anonymous(), ProtocolVersion::LATEST),
            Err(CreateError::Full(1))
        ));
    }

    #[test]
    fn messages_wait_for_a_stream_and_are_bounded() {
        let t = SessionTable::new(Duration::from_secs(60), Duration::from_secs(60), 1);
        let s = t.create(moat_auth::Principal::anonymous(), ProtocolVersion::LATEST).unwrap();
        for i in 0..(MAX_BUFFERED + 10) {
            s.push(Bytes::from(i.to_string()));
        }
        let mut rx = s.attach_stream();
        assert_eq!(rx.try_recv().unwrap(), Bytes::from("10"));
    }
}
