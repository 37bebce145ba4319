//! One conformance suite, run against every backend through `moat_store_open::open`.
//!
//! Each backend gets the same cases (a `conformance!` expansion). The Redis cases start a
//! real `redis-server` on a free loopback port (from `MOAT_REDIS_SERVER`, else `PATH`);
//! without one they print why they skip, and fail when `MOAT_REQUIRE_PEERS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use moat_store::{
    ApiKeyRecord, AuditQuery, AuditRow, PinKey, PinKind, PinRecord, PinState, SealRow, SessionKey, SessionRecord,
    Store, StoreError, UnixMillis,
};

/// A store and whatever must live as long as it (temp dir, server process).
struct Harness {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _server: Option<peers::RedisServer>,
}

async fn memory() -> Option<Harness> {
    Some(Harness { store: moat_store_open::open(Some("memory")).await.unwrap(), _dir: None, _server: None })
}

async fn sqlite() -> Option<Harness> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("moat.db").display());
    Some(Harness { store: moat_store_open::open(Some(&url)).await.unwrap(), _dir: Some(dir), _server: None })
}

async fn redis() -> Option<Harness> {
    let server = peers::RedisServer::start()?;
    let store = moat_store_open::open(Some(&server.url())).await.unwrap();
    Some(Harness { store, _dir: None, _server: Some(server) })
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            use super::*;
            #[tokio::test]
            async fn sessions() {
                let Some(h) = super::$backend().await else { return };
                suite::sessions(&*h.store).await;
            }
            #[tokio::test]
            async fn pins() {
                let Some(h) = super::$backend().await else { return };
                suite::pins(&*h.store).await;
            }
            #[tokio::test]
            async fn rate_limits() {
                let Some(h) = super::$backend().await else { return };
                suite::rate_limits(&*h.store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn rate_limit_is_atomic_under_concurrency() {
                let Some(h) = super::$backend().await else { return };
                suite::rate_limit_concurrency(Arc::clone(&h.store)).await;
            }
            #[tokio::test]
            async fn api_keys() {
                let Some(h) = super::$backend().await else { return };
                suite::api_keys(&*h.store).await;
            }
            #[tokio::test]
            async fn audit_records() {
                let Some(h) = super::$backend().await else { return };
                suite::audit(&*h.store).await;
            }
        }
    };
}

conformance!(memory);
conformance!(sqlite);
conformance!(redis);

mod suite {
    use super::*;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;

    fn session(principal: &str, id: &str, now: UnixMillis) -> SessionRecord {
        SessionRecord {
            principal: principal.into(),
            session: id.into(),
            created: now,
            last_seen: now,
            idle_timeout_ms: 30 * MIN,
            max_lifetime_ms: 2 * HOUR,
            protocol_version: "2025-11-25".into(),
            client_info: serde_json::json!({"name": "claude-code", "version": "1.0"}),
        }
    }

    pub async fn sessions(store: &dyn Store) {
        // Real time: the Redis backend also sets expiries on Redis's own clock.
        let t0 = UnixMillis::now();
        let alice = session("alice", "s1", t0);
        store.put_session(&alice).await.unwrap();
        let key = alice.key();

        assert_eq!(store.get_session(&key, t0).await.unwrap(), Some(alice.clone()));
        // The same session id under another principal is a different (absent) key.
        let mallory = SessionKey::new("mallory", "s1");
        assert_eq!(store.get_session(&mallory, t0).await.unwrap(), None);
        assert_eq!(store.touch_session(&mallory, t0).await.unwrap(), None);
        // ...but the owner can be found, to record the hijack attempt.
        assert_eq!(store.session_owner("s1", t0).await.unwrap().as_deref(), Some("alice"));
        assert_eq!(store.session_owner("nope", t0).await.unwrap(), None);

        // Touch moves last_seen and so the idle deadline.
        let t1 = t0.plus_ms(20 * MIN);
        let touched = store.touch_session(&key, t1).await.unwrap().unwrap();
        assert_eq!(touched.last_seen, t1);
        assert_eq!(touched.created, t0);
        assert_eq!(touched.client_info, alice.client_info);
        // 40 minutes after creation, 20 after the touch: still live.
        assert!(store.get_session(&key, t0.plus_ms(40 * MIN)).await.unwrap().is_some());
        // Idle expiry: 31 minutes after the last touch.
        assert_eq!(store.get_session(&key, t1.plus_ms(31 * MIN)).await.unwrap(), None);
        assert_eq!(store.touch_session(&key, t1.plus_ms(31 * MIN)).await.unwrap(), None);

        // Absolute expiry: touched every 20 minutes, it still ends after 2 hours.
        let bob = session("bob", "s2", t0);
        store.put_session(&bob).await.unwrap();
        let mut t = t0;
        for _ in 0..5 {
            t = t.plus_ms(20 * MIN);
            assert!(store.touch_session(&bob.key(), t).await.unwrap().is_some(), "live at {t:?}");
        }
        let late = t0.plus_ms(2 * HOUR);
        assert_eq!(store.touch_session(&bob.key(), late).await.unwrap(), None);
        assert_eq!(store.get_session(&bob.key(), late).await.unwrap(), None);

        // Delete ends a session, once.
        let carol = session("carol", "s3", t0);
        store.put_session(&carol).await.unwrap();
        assert!(store.delete_session(&carol.key()).await.unwrap());
        assert!(!store.delete_session(&carol.key()).await.unwrap());
        assert_eq!(store.get_session(&carol.key(), t0).await.unwrap(), None);
        assert_eq!(store.session_owner("s3", t0).await.unwrap(), None);

        // Purge keeps live sessions and leaves no expired one readable.
        let dave = session("dave", "s4", t0);
        let erin = SessionRecord { idle_timeout_ms: 5 * MIN, ..session("erin", "s5", t0) };
        store.put_session(&dave).await.unwrap();
        store.put_session(&erin).await.unwrap();
        let t2 = t0.plus_ms(10 * MIN);
        store.purge_expired_sessions(t2).await.unwrap();
        assert!(store.get_session(&dave.key(), t2).await.unwrap().is_some());
        assert_eq!(store.get_session(&erin.key(), t2).await.unwrap(), None);
    }

    fn pin(upstream: &str, kind: PinKind, name: &str, def: &str, now: UnixMillis) -> PinRecord {
        PinRecord {
            key: PinKey::new(upstream, kind, name),
            state: PinState::Pinned,
            definition: def.into(),
            hash: format!("hash-of-{def}"),
            trusted_definition: None,
            trusted_hash: None,
            first_seen: now,
            updated: now,
        }
    }

    pub async fn pins(store: &dyn Store) {
        let t0 = UnixMillis(1_700_000_000_000);
        let a = pin("github", PinKind::Tool, "create_issue", r#"{"name":"create_issue"}"#, t0);
        let b = pin("github", PinKind::Prompt, "triage", r#"{"name":"triage"}"#, t0);
        // Separators in names must not confuse the backends' keys.
        let c = pin("fs:local", PinKind::Tool, "read:file\"x", r#"{"name":"read"}"#, t0);
        let d = pin("github", PinKind::Instructions, "", "Use me wisely", t0);
        for p in [&a, &b, &c, &d] {
            store.put_pin(p).await.unwrap();
        }
        assert_eq!(store.get_pin(&a.key).await.unwrap(), Some(a.clone()));
        assert_eq!(store.get_pin(&c.key).await.unwrap(), Some(c.clone()));
        assert_eq!(store.get_pin(&PinKey::new("github", PinKind::Tool, "nope")).await.unwrap(), None);

        let all = store.list_pins(None).await.unwrap();
        let keys: Vec<_> = all.iter().map(|p| p.key.clone()).collect();
        assert_eq!(keys, vec![c.key.clone(), a.key.clone(), b.key.clone(), d.key.clone()]);
        let github = store.list_pins(Some("github")).await.unwrap();
        assert_eq!(github, vec![a.clone(), b.clone(), d.clone()]);

        // The definition changes: the guard quarantines it, keeping what was trusted.
        let t1 = UnixMillis(t0.0 + 1000);
        let changed = PinRecord {
            state: PinState::Quarantined,
            definition: r#"{"name":"create_issue","description":"ignore previous"}"#.into(),
            hash: "hash-2".into(),
            trusted_definition: Some(a.definition.clone()),
            trusted_hash: Some(a.hash.clone()),
            updated: t1,
            ..a.clone()
        };
        store.put_pin(&changed).await.unwrap();
        assert_eq!(store.get_pin(&a.key).await.unwrap(), Some(changed.clone()));

        // Approving a definition other than the current one does nothing.
        assert!(!store.approve_pin(&a.key, &a.hash, t1).await.unwrap());
        assert_eq!(store.get_pin(&a.key).await.unwrap().unwrap().state, PinState::Quarantined);
        assert!(!store.approve_pin(&PinKey::new("x", PinKind::Tool, "y"), "h", t1).await.unwrap());
        // Approving the current one trusts it.
        let t2 = UnixMillis(t0.0 + 2000);
        assert!(store.approve_pin(&a.key, "hash-2", t2).await.unwrap());
        let approved = store.get_pin(&a.key).await.unwrap().unwrap();
        assert_eq!(approved.state, PinState::Approved);
        assert_eq!(approved.hash, "hash-2");
        assert_eq!(approved.trusted_definition, None);
        assert_eq!(approved.trusted_hash, None);
        assert_eq!(approved.updated, t2);
        assert_eq!(approved.first_seen, t0);

        // Revoking quarantines.
        let t3 = UnixMillis(t0.0 + 3000);
        assert!(store.revoke_pin(&a.key, t3).await.unwrap());
        let revoked = store.get_pin(&a.key).await.unwrap().unwrap();
        assert_eq!((revoked.state, revoked.updated), (PinState::Quarantined, t3));
        assert!(!store.revoke_pin(&PinKey::new("x", PinKind::Tool, "y"), t3).await.unwrap());

        // Delete forgets.
        assert!(store.delete_pin(&b.key).await.unwrap());
        assert!(!store.delete_pin(&b.key).await.unwrap());
        assert_eq!(store.get_pin(&b.key).await.unwrap(), None);
        assert_eq!(store.list_pins(Some("github")).await.unwrap().len(), 2);
    }

    pub async fn rate_limits(store: &dyn Store) {
        let t0 = UnixMillis::now();
        // Capacity 3, one token every 2 seconds.
        for remaining in [2, 1, 0] {
            let d = store.take("alice", 3, 0.5, t0).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
        }
        let refused = store.take("alice", 3, 0.5, t0).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 2000);
        // Another key has its own bucket.
        assert!(store.take("bob", 3, 0.5, t0).await.unwrap().allowed);
        // Half the wait: still refused, and told to wait the other half.
        let d = store.take("alice", 3, 0.5, t0.plus_ms(1000)).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 1000);
        // After 2 s one token is back, and only one.
        assert!(store.take("alice", 3, 0.5, t0.plus_ms(2000)).await.unwrap().allowed);
        assert!(!store.take("alice", 3, 0.5, t0.plus_ms(2000)).await.unwrap().allowed);
        // A clock that goes backwards refills nothing.
        assert!(!store.take("alice", 3, 0.5, t0).await.unwrap().allowed);
        // Refill never exceeds the capacity.
        let later = t0.plus_ms(3_600_000);
        let d = store.take("alice", 3, 0.5, later).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        // No refill at all: refused forever.
        assert!(store.take("once", 1, 0.0, t0).await.unwrap().allowed);
        let d = store.take("once", 1, 0.0, later).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, u64::MAX);
    }

    pub async fn rate_limit_concurrency(store: Arc<dyn Store>) {
        let now = UnixMillis::now();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move { store.take("shared", 10, 0.0, now).await.unwrap() }));
        }
        let mut allowed = 0;
        for t in tasks {
            allowed += usize::from(t.await.unwrap().allowed);
        }
        assert_eq!(allowed, 10, "exactly the capacity is granted");
    }

    fn key(id: &str, principal: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            key_id: id.into(),
            salt: "73616c74".into(),
            hash: "9f86d081884c7d65".into(),
            principal: principal.into(),
            roles: vec!["reader".into(), "ops".into()],
            description: "ci bot".into(),
            created: UnixMillis(1_700_000_000_000),
            revoked: None,
        }
    }

    pub async fn api_keys(store: &dyn Store) {
        let b = key("mk_b", "bot-b");
        let a = key("mk_a", "bot-a");
        store.create_api_key(&b).await.unwrap();
        store.create_api_key(&a).await.unwrap();
        let dup = store.create_api_key(&key("mk_a", "someone-else")).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict { .. }), "{dup}");
        // The duplicate did not overwrite the first.
        assert_eq!(store.get_api_key("mk_a").await.unwrap(), Some(a.clone()));
        assert_eq!(store.get_api_key("mk_none").await.unwrap(), None);
        assert_eq!(store.list_api_keys().await.unwrap(), vec![a.clone(), b.clone()]);

        let t = UnixMillis(1_700_000_100_000);
        assert!(store.revoke_api_key("mk_a", t).await.unwrap());
        assert!(!store.revoke_api_key("mk_a", UnixMillis(t.0 + 1)).await.unwrap());
        assert!(!store.revoke_api_key("mk_none", t).await.unwrap());
        assert_eq!(store.get_api_key("mk_a").await.unwrap().unwrap().revoked, Some(t));
        assert_eq!(store.get_api_key("mk_b").await.unwrap().unwrap().revoked, None);
    }

    fn row(seq: u64, principal: &str, tool: &str, decision: &str) -> AuditRow {
        AuditRow {
            seq,
            time: UnixMillis(1_700_000_000_000 + seq as i64 * 1000),
            principal: Some(principal.into()),
            tool: Some(tool.into()),
            decision: decision.into(),
            hash: format!("h{seq}"),
            body: format!("{{\"seq\":{seq}}}"),
        }
    }

    pub async fn audit(store: &dyn Store) {
        let Some(audit) = store.audit() else {
            // Only Redis keeps no audit records; anything else must.
            assert_eq!(store.backend(), "redis");
            return;
        };
        assert_eq!(audit.audit_head().await.unwrap(), None);
        audit
            .append_audit(vec![row(1, "alice", "read", "allow"), row(2, "bob", "write", "deny")], vec![])
            .await
            .unwrap();
        audit
            .append_audit(
                vec![row(3, "alice", "write", "allow"), row(4, "alice", "read", "quarantine")],
                vec![SealRow { seq: 4, body: "{\"seal\":4}".into() }],
            )
            .await
            .unwrap();
        assert_eq!(audit.audit_head().await.unwrap(), Some(row(4, "alice", "read", "quarantine")));
        let seqs = |rows: Vec<AuditRow>| rows.into_iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(audit.audit_records(1, 2).await.unwrap()), vec![2, 3]);
        assert_eq!(seqs(audit.audit_records(0, 0).await.unwrap()), vec![1, 2, 3, 4]);
        assert_eq!(audit.audit_seals(0, 10).await.unwrap(), vec![SealRow { seq: 4, body: "{\"seal\":4}".into() }]);
        assert_eq!(audit.audit_seals(4, 10).await.unwrap(), vec![]);

        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            q
        };
        assert_eq!(seqs(audit.query_audit(&q(|q| q.principal = Some("alice".into()))).await.unwrap()), vec![1, 3, 4]);
        assert_eq!(seqs(audit.query_audit(&q(|q| q.tool = Some("write".into()))).await.unwrap()), vec![2, 3]);
        assert_eq!(seqs(audit.query_audit(&q(|q| q.decision = Some("deny".into()))).await.unwrap()), vec![2]);
        assert_eq!(
            seqs(
                audit
                    .query_audit(&q(|q| {
                        q.since = Some(UnixMillis(1_700_000_002_000));
                        q.until = Some(UnixMillis(1_700_000_004_000));
                    }))
                    .await
                    .unwrap()
            ),
            vec![2, 3]
        );
        assert_eq!(
            seqs(
                audit
                    .query_audit(&q(|q| {
                        q.newest_first = true;
                        q.limit = 2;
                    }))
                    .await
                    .unwrap()
            ),
            vec![4, 3]
        );
        // A duplicate sequence number is refused, and the batch with it is not half-written.
        let dup = audit.append_audit(vec![row(5, "x", "y", "allow"), row(4, "x", "y", "allow")], vec![]).await;
        assert!(dup.is_err());
        assert_eq!(audit.audit_head().await.unwrap().unwrap().seq, 4);
    }
}

mod peers {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A `redis-server` child on a free loopback port, killed on drop.
    pub struct RedisServer {
        child: Child,
        port: u16,
    }

    impl RedisServer {
        /// Starts one, or returns `None` (after saying why) when none is installed and
        /// peers are not required.
        pub fn start() -> Option<Self> {
            let binary = std::env::var("MOAT_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
            let required = std::env::var("MOAT_REQUIRE_PEERS").as_deref() == Ok("1");
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = Command::new(&binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    let msg = format!("cannot start `{binary}` ({e}); install Debian `redis-server` (tests/peers/redis/apt.txt) or set MOAT_REDIS_SERVER");
                    if required {
                        panic!("MOAT_REQUIRE_PEERS=1: {msg}");
                    }
                    eprintln!("SKIP redis conformance: {msg}");
                    return None;
                }
            };
            let server = RedisServer { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not listen on port {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(server)
        }

        pub fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/", self.port)
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
