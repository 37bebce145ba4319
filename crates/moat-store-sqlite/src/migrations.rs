//! Versioned schema migrations. Each entry moves the schema from version `i` to `i + 1`;
//! entries are never edited once released, only appended.

use rusqlite::{Connection, OptionalExtension};

use moat_store::StoreError;

use crate::sql_err;

/// The migrations, in order. `MIGRATIONS[0]` creates version 1.
const MIGRATIONS: &[&str] = &[
    // 1: sessions, pins, rate-limit buckets, API keys, audit records and seals.
    r#"
    CREATE TABLE sessions (
        principal        TEXT    NOT NULL,
        session          TEXT    NOT NULL,
        created          INTEGER NOT NULL,
        last_seen        INTEGER NOT NULL,
        idle_timeout_ms  INTEGER NOT NULL,
        max_lifetime_ms  INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        protocol_version TEXT    NOT NULL,
        client_info      TEXT    NOT NULL,
        PRIMARY KEY (principal, session)
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_session ON sessions (session);
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);

    CREATE TABLE pins (
        upstream           TEXT    NOT NULL,
        kind               TEXT    NOT NULL,
        name               TEXT    NOT NULL,
        state              TEXT    NOT NULL,
        definition         TEXT    NOT NULL,
        hash               TEXT    NOT NULL,
        trusted_definition TEXT,
        trusted_hash       TEXT,
        first_seen         INTEGER NOT NULL,
        updated            INTEGER NOT NULL,
        PRIMARY KEY (upstream, kind, name)
    ) WITHOUT ROWID;

    CREATE TABLE rate_buckets (
        key     TEXT    PRIMARY KEY,
        tokens  REAL    NOT NULL,
        updated INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE api_keys (
        key_id      TEXT    PRIMARY KEY,
        salt        TEXT    NOT NULL,
        hash        TEXT    NOT NULL,
        principal   TEXT    NOT NULL,
        roles       TEXT    NOT NULL,
        description TEXT    NOT NULL,
        created     INTEGER NOT NULL,
        revoked     INTEGER
    ) WITHOUT ROWID;

    CREATE TABLE audit_records (
        seq       INTEGER PRIMARY KEY,
        time      INTEGER NOT NULL,
        principal TEXT,
        tool      TEXT,
        decision  TEXT    NOT NULL,
        hash      TEXT    NOT NULL,
        body      TEXT    NOT NULL
    );
    CREATE INDEX audit_by_time ON audit_records (time);
    CREATE INDEX audit_by_principal ON audit_records (principal, time);
    CREATE INDEX audit_by_tool ON audit_records (tool, time);

    CREATE TABLE audit_seals (
        seq  INTEGER PRIMARY KEY,
        body TEXT    NOT NULL
    );
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`], one transaction per step.
///
/// # Errors
/// [`StoreError::SchemaTooNew`] when a newer Moat wrote the file; a backend error when a
/// step fails (the step is rolled back).
pub fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)").map_err(sql_err)?;
    let current: i64 = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get::<_, Option<i64>>(0))
        .optional()
        .map_err(sql_err)?
        .flatten()
        .unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: current, supported: SCHEMA_VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        let version = index as i64 + 1;
        let tx = conn.transaction().map_err(sql_err)?;
        tx.execute_batch(sql).map_err(sql_err)?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version]).map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
    }
    Ok(SCHEMA_VERSION)
}
