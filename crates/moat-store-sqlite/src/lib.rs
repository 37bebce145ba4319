//! The SQLite backend of Moat's state store (`[store] url = "sqlite://PATH"`).
//!
//! One file, opened in WAL mode so that readers (`moat audit query`, `moat keys list`)
//! never block the gateway's writes, with a `schema_version` table and versioned
//! migrations (see `migrations.rs`).
//!
//! # Durability
//!
//! `synchronous=NORMAL` (the default) makes each commit durable against a crash or a
//! SIGKILL of the process: the WAL is in the operating system's page cache before the
//! commit returns. It is not durable against power loss until the next checkpoint.
//! `sqlite://PATH?synchronous=full` fsyncs the WAL on every commit and survives power loss,
//! at the cost of one fsync per commit (the audit writer batches records so that one fsync
//! covers many).
//!
//! # Concurrency
//!
//! One connection behind a mutex; every operation runs on tokio's blocking pool, so a slow
//! disk never stalls the async executor. SQLite serialises writers anyway, and an
//! operation here takes microseconds.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod migrations;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use moat_store::{
    token_bucket_step, ApiKeyRecord, ApiKeyStore, AuditQuery, AuditRow, AuditStore, PinKey, PinKind, PinRecord,
    PinState, PinStore, RateDecision, RateLimitStore, SealRow, SessionKey, SessionRecord, SessionStore, Store,
    StoreError, UnixMillis,
};

pub use migrations::SCHEMA_VERSION;

const BACKEND: &str = "sqlite";

/// A SQLite store. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating it, with its parent directories, if missing) and migrates the
    /// database at `path`. A new file is created readable by its owner only: it holds API
    /// key hashes and session records.
    ///
    /// # Errors
    /// A backend error when the file cannot be opened or migrated, and
    /// [`StoreError::SchemaTooNew`] when a newer Moat wrote it.
    pub fn open(path: &Path, synchronous_full: bool) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::backend(BACKEND, format!("cannot create `{}`: {e}", parent.display())))?;
        }
        create_private_file(path)?;
        let mut conn = Connection::open(path)
            .map_err(|e| StoreError::backend(BACKEND, format!("cannot open `{}`: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
        // journal_mode returns a row, so it cannot go through execute_batch.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(sql_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::backend(BACKEND, format!("cannot enable WAL mode (got `{mode}`)")));
        }
        let sync = if synchronous_full { "FULL" } else { "NORMAL" };
        conn.execute_batch(&format!("PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON;")).map_err(sql_err)?;
        migrations::migrate(&mut conn)?;
        Ok(SqliteStore { inner: Arc::new(Inner { conn: Mutex::new(conn), path: path.to_owned() }) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .conn
                .lock()
                .map_err(|_| StoreError::backend(BACKEND, "a thread panicked while holding the connection"))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::backend(BACKEND, format!("store task failed: {e}")))?
    }
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::backend(BACKEND, format!("cannot create `{}`: {e}", path.display()))),
    }
}

#[cfg(not(unix))]
fn create_private_file(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::backend(BACKEND, e)
}

fn to_i64(v: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::backend(BACKEND, format!("{what} is too large")))
}

fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what, reason: reason.to_string() }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn audit(&self) -> Option<Arc<dyn AuditStore>> {
        Some(Arc::new(self.clone()))
    }
}

// ---------------------------------------------------------------------------------------
// Sessions

const SESSION_COLUMNS: &str = "principal, session, created, last_seen, idle_timeout_ms, \
                               max_lifetime_ms, protocol_version, client_info";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Result<SessionRecord, StoreError>> {
    let client_info: String = row.get(7)?;
    let (idle, max): (i64, i64) = (row.get(4)?, row.get(5)?);
    let (Ok(idle_timeout_ms), Ok(max_lifetime_ms)) = (u64::try_from(idle), u64::try_from(max)) else {
        return Ok(Err(corrupt("session", "negative lifetime")));
    };
    let client_info = match serde_json::from_str(&client_info) {
        Ok(v) => v,
        Err(e) => return Ok(Err(corrupt("session", e))),
    };
    Ok(Ok(SessionRecord {
        principal: row.get(0)?,
        session: row.get(1)?,
        created: UnixMillis(row.get(2)?),
        last_seen: UnixMillis(row.get(3)?),
        idle_timeout_ms,
        max_lifetime_ms,
        protocol_version: row.get(6)?,
        client_info,
    }))
}

fn read_session(conn: &Connection, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE principal = ?1 AND session = ?2"),
        params![key.principal, key.session],
        session_from_row,
    )
    .optional()
    .map_err(sql_err)?
    .transpose()
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn put_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.run(move |conn| {
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO sessions ({SESSION_COLUMNS}, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    r.principal,
                    r.session,
                    r.created.0,
                    r.last_seen.0,
                    to_i64(r.idle_timeout_ms, "idle timeout")?,
                    to_i64(r.max_lifetime_ms, "max lifetime")?,
                    r.protocol_version,
                    r.client_info.to_string(),
                    r.expires_at().0,
                ],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, key: &SessionKey, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            let Some(r) = read_session(conn, &key)? else { return Ok(None) };
            if r.is_live(now) {
                return Ok(Some(r));
            }
            conn.execute(
                "DELETE FROM sessions WHERE principal = ?1 AND session = ?2",
                params![key.principal, key.session],
            )
            .map_err(sql_err)?;
            Ok(None)
        })
        .await
    }

    async fn touch_session(&self, key: &SessionKey, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let Some(mut r) = read_session(&tx, &key)? else { return Ok(None) };
            if !r.is_live(now) {
                tx.execute(
                    "DELETE FROM sessions WHERE principal = ?1 AND session = ?2",
                    params![key.principal, key.session],
                )
                .map_err(sql_err)?;
                tx.commit().map_err(sql_err)?;
                return Ok(None);
            }
            r.last_seen = r.last_seen.max(now);
            tx.execute(
                "UPDATE sessions SET last_seen = ?3, expires_at = ?4 \
                 WHERE principal = ?1 AND session = ?2",
                params![key.principal, key.session, r.last_seen.0, r.expires_at().0],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(Some(r))
        })
        .await
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM sessions WHERE principal = ?1 AND session = ?2",
                    params![key.principal, key.session],
                )
                .map_err(sql_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn session_owner(&self, session: &str, now: UnixMillis) -> Result<Option<String>, StoreError> {
        let session = session.to_owned();
        self.run(move |conn| {
            conn.query_row(
                "SELECT principal FROM sessions WHERE session = ?1 AND expires_at > ?2 LIMIT 1",
                params![session, now.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)
        })
        .await
    }

    async fn purge_expired_sessions(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.run(move |conn| {
            let n = conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now.0]).map_err(sql_err)?;
            Ok(n as u64)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Pins

const PIN_COLUMNS: &str = "upstream, kind, name, state, definition, hash, trusted_definition, \
                           trusted_hash, first_seen, updated";

fn pin_from_row(row: &Row<'_>) -> rusqlite::Result<Result<PinRecord, StoreError>> {
    let kind: String = row.get(1)?;
    let state: String = row.get(3)?;
    let (Some(kind), Some(state)) = (PinKind::parse(&kind), PinState::parse(&state)) else {
        return Ok(Err(corrupt("pin", format!("unknown kind `{kind}` or state `{state}`"))));
    };
    Ok(Ok(PinRecord {
        key: PinKey { upstream: row.get(0)?, kind, name: row.get(2)? },
        state,
        definition: row.get(4)?,
        hash: row.get(5)?,
        trusted_definition: row.get(6)?,
        trusted_hash: row.get(7)?,
        first_seen: UnixMillis(row.get(8)?),
        updated: UnixMillis(row.get(9)?),
    }))
}

#[async_trait]
impl PinStore for SqliteStore {
    async fn get_pin(&self, key: &PinKey) -> Result<Option<PinRecord>, StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {PIN_COLUMNS} FROM pins WHERE upstream = ?1 AND kind = ?2 AND name = ?3"),
                params![key.upstream, key.kind.as_str(), key.name],
                pin_from_row,
            )
            .optional()
            .map_err(sql_err)?
            .transpose()
        })
        .await
    }

    async fn put_pin(&self, record: &PinRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.run(move |conn| {
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO pins ({PIN_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    r.key.upstream,
                    r.key.kind.as_str(),
                    r.key.name,
                    r.state.as_str(),
                    r.definition,
                    r.hash,
                    r.trusted_definition,
                    r.trusted_hash,
                    r.first_seen.0,
                    r.updated.0,
                ],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn list_pins(&self, upstream: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        let upstream = upstream.map(str::to_owned);
        self.run(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {PIN_COLUMNS} FROM pins WHERE ?1 IS NULL OR upstream = ?1 \
                     ORDER BY upstream, kind, name"
                ))
                .map_err(sql_err)?;
            let rows = stmt.query_map([upstream], pin_from_row).map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.map_err(sql_err)??);
            }
            // Order by the kind's enum order, as the other backends do.
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn approve_pin(&self, key: &PinKey, hash: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let key = key.clone();
        let hash = hash.to_owned();
        self.run(move |conn| {
            let n = conn
                .execute(
                    "UPDATE pins SET state = 'approved', trusted_definition = NULL, \
                     trusted_hash = NULL, updated = ?5 \
                     WHERE upstream = ?1 AND kind = ?2 AND name = ?3 AND hash = ?4",
                    params![key.upstream, key.kind.as_str(), key.name, hash, now.0],
                )
                .map_err(sql_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn revoke_pin(&self, key: &PinKey, now: UnixMillis) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            let n = conn
                .execute(
                    "UPDATE pins SET state = 'quarantined', updated = ?4 \
                     WHERE upstream = ?1 AND kind = ?2 AND name = ?3",
                    params![key.upstream, key.kind.as_str(), key.name, now.0],
                )
                .map_err(sql_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_pin(&self, key: &PinKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM pins WHERE upstream = ?1 AND kind = ?2 AND name = ?3",
                    params![key.upstream, key.kind.as_str(), key.name],
                )
                .map_err(sql_err)?;
            Ok(n > 0)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Rate limits

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn take(
        &self,
        key: &str,
        capacity: u32,
        refill_per_sec: f64,
        now: UnixMillis,
    ) -> Result<RateDecision, StoreError> {
        let key = key.to_owned();
        self.run(move |conn| {
            // IMMEDIATE takes the write lock before reading, so two processes sharing the
            // file cannot both take the last token.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let state: Option<(f64, i64)> = tx
                .query_row("SELECT tokens, updated FROM rate_buckets WHERE key = ?1", [&key], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(sql_err)?;
            let state = state.map(|(t, u)| (t, UnixMillis(u)));
            let (tokens, decision) = token_bucket_step(state, capacity, refill_per_sec, now);
            let last = state.map_or(now, |(_, last)| last.max(now));
            tx.execute(
                "INSERT OR REPLACE INTO rate_buckets (key, tokens, updated) VALUES (?1, ?2, ?3)",
                params![key, tokens, last.0],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(decision)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// API keys

const KEY_COLUMNS: &str = "key_id, salt, hash, principal, roles, description, created, revoked";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<Result<ApiKeyRecord, StoreError>> {
    let roles: String = row.get(4)?;
    let roles = match serde_json::from_str(&roles) {
        Ok(r) => r,
        Err(e) => return Ok(Err(corrupt("api key", e))),
    };
    Ok(Ok(ApiKeyRecord {
        key_id: row.get(0)?,
        salt: row.get(1)?,
        hash: row.get(2)?,
        principal: row.get(3)?,
        roles,
        description: row.get(5)?,
        created: UnixMillis(row.get(6)?),
        revoked: row.get::<_, Option<i64>>(7)?.map(UnixMillis),
    }))
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.run(move |conn| {
            let roles = serde_json::to_string(&r.roles).map_err(|e| StoreError::backend(BACKEND, e))?;
            let result = conn.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    r.key_id,
                    r.salt,
                    r.hash,
                    r.principal,
                    roles,
                    r.description,
                    r.created.0,
                    r.revoked.map(|t| t.0)
                ],
            );
            match result {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::Conflict { what: "api key", key: r.key_id })
                }
                Err(e) => Err(sql_err(e)),
            }
        })
        .await
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key_id = key_id.to_owned();
        self.run(move |conn| {
            conn.query_row(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?1"), [key_id], key_from_row)
                .optional()
                .map_err(sql_err)?
                .transpose()
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.run(move |conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY key_id")).map_err(sql_err)?;
            let rows = stmt.query_map([], key_from_row).map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.map_err(sql_err)??);
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_api_key(&self, key_id: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let key_id = key_id.to_owned();
        self.run(move |conn| {
            let n = conn
                .execute(
                    "UPDATE api_keys SET revoked = ?2 WHERE key_id = ?1 AND revoked IS NULL",
                    params![key_id, now.0],
                )
                .map_err(sql_err)?;
            Ok(n > 0)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Audit

const AUDIT_COLUMNS: &str = "seq, time, principal, tool, decision, hash, body";

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<Result<AuditRow, StoreError>> {
    let seq: i64 = row.get(0)?;
    let Ok(seq) = u64::try_from(seq) else {
        return Ok(Err(corrupt("audit record", format!("negative sequence number {seq}"))));
    };
    Ok(Ok(AuditRow {
        seq,
        time: UnixMillis(row.get(1)?),
        principal: row.get(2)?,
        tool: row.get(3)?,
        decision: row.get(4)?,
        hash: row.get(5)?,
        body: row.get(6)?,
    }))
}

fn collect_audit(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<AuditRow>, StoreError> {
    let rows = stmt.query_map(params, audit_from_row).map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql_err)??);
    }
    Ok(out)
}

fn limit_i64(limit: usize) -> i64 {
    if limit == 0 {
        -1 // SQLite: no limit
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX)
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, rows: Vec<AuditRow>, seals: Vec<SealRow>) -> Result<(), StoreError> {
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            {
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO audit_records ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ))
                    .map_err(sql_err)?;
                for r in &rows {
                    insert
                        .execute(params![
                            to_i64(r.seq, "sequence number")?,
                            r.time.0,
                            r.principal,
                            r.tool,
                            r.decision,
                            r.hash,
                            r.body
                        ])
                        .map_err(sql_err)?;
                }
                let mut seal =
                    tx.prepare_cached("INSERT INTO audit_seals (seq, body) VALUES (?1, ?2)").map_err(sql_err)?;
                for s in &seals {
                    seal.execute(params![to_i64(s.seq, "sequence number")?, s.body]).map_err(sql_err)?;
                }
            }
            tx.commit().map_err(sql_err)
        })
        .await
    }

    async fn audit_head(&self) -> Result<Option<AuditRow>, StoreError> {
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {AUDIT_COLUMNS} FROM audit_records ORDER BY seq DESC LIMIT 1"),
                [],
                audit_from_row,
            )
            .optional()
            .map_err(sql_err)?
            .transpose()
        })
        .await
    }

    async fn audit_records(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_records WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))
                .map_err(sql_err)?;
            collect_audit(&mut stmt, params![to_i64(after_seq, "sequence number")?, limit_i64(limit)])
        })
        .await
    }

    async fn audit_seals(&self, after_seq: u64, limit: usize) -> Result<Vec<SealRow>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT seq, body FROM audit_seals WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(params![to_i64(after_seq, "sequence number")?, limit_i64(limit)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, body) = row.map_err(sql_err)?;
                let seq = u64::try_from(seq).map_err(|e| corrupt("audit seal", e))?;
                out.push(SealRow { seq, body });
            }
            Ok(out)
        })
        .await
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let q = query.clone();
        self.run(move |conn| {
            let order = if q.newest_first { "DESC" } else { "ASC" };
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_records \
                     WHERE (?1 IS NULL OR seq > ?1) AND (?2 IS NULL OR time >= ?2) \
                     AND (?3 IS NULL OR time < ?3) AND (?4 IS NULL OR principal = ?4) \
                     AND (?5 IS NULL OR tool = ?5) AND (?6 IS NULL OR decision = ?6) \
                     ORDER BY seq {order} LIMIT ?7"
                ))
                .map_err(sql_err)?;
            let after = q.after_seq.map(|s| to_i64(s, "sequence number")).transpose()?;
            collect_audit(
                &mut stmt,
                params![
                    after,
                    q.since.map(|t| t.0),
                    q.until.map(|t| t.0),
                    q.principal,
                    q.tool,
                    q.decision,
                    limit_i64(q.limit)
                ],
            )
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/moat.db");
        drop(SqliteStore::open(&path, false).unwrap());
        // Opening again applies nothing new.
        let store = SqliteStore::open(&path, false).unwrap();
        let conn = store.inner.conn.lock().unwrap();
        let versions: i64 = conn.query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0)).unwrap();
        assert_eq!(versions, SCHEMA_VERSION);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        conn.execute("INSERT INTO schema_version (version) VALUES (99)", []).unwrap();
        drop(conn);
        drop(store);
        let err = SqliteStore::open(&path, false).err().unwrap();
        assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn new_database_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moat.db");
        drop(SqliteStore::open(&path, false).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
