//! The audit log end to end: write through the writer task, then verify, then tamper and
//! check that verification names the right record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use moat_audit::{
    generate_key_pair, verify_jsonl, verify_store, AuditEvent, AuditLog, AuditLogConfig, AuditPrincipal, AuditSigner,
    AuditSink, AuditVerifyingKey, Decision, JsonlSink, ProblemKind, StoreSink, VerifyOptions, VerifyReport,
};
use moat_store::{AuditQuery, AuditStore, UnixMillis};

struct Keys {
    private_pem: String,
    public: AuditVerifyingKey,
}

fn keys() -> Keys {
    let pair = generate_key_pair().unwrap();
    Keys {
        private_pem: pair.private_pem.to_string(),
        public: AuditVerifyingKey::from_key_bytes(pair.public_pem.as_bytes()).unwrap(),
    }
}

fn signer(k: &Keys) -> AuditSigner {
    AuditSigner::from_key_bytes(k.private_pem.as_bytes()).unwrap()
}

fn config(seal_every: u64) -> AuditLogConfig {
    AuditLogConfig { required: true, seal_every, seal_interval: Duration::from_secs(3600), ..AuditLogConfig::default() }
}

fn event(i: u64) -> AuditEvent {
    let mut e = AuditEvent::new("tools/call", if i.is_multiple_of(3) { Decision::Deny } else { Decision::Allow });
    e.time = UnixMillis(1_764_171_000_000 + i as i64 * 1000);
    e.principal = Some(AuditPrincipal { subject: format!("user-{}", i % 2), client_id: Some("claude".into()) });
    e.session = Some("sess-1".into());
    e.source = Some("127.0.0.1:50000".into());
    e.upstream = Some("github".into());
    e.target = Some(format!("tool_{i}"));
    e.rules = if i.is_multiple_of(3) { vec!["MOAT-TP-001".into()] } else { vec![] };
    e.latency_us = 1200 + i;
    e.result_bytes = Some(512);
    e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    e
}

/// Writes `n` records to a new JSON-lines file sealed every `seal_every`, and stops cleanly.
async fn write_jsonl(dir: &Path, n: u64, seal_every: u64, k: &Keys) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let sink: Box<dyn AuditSink> = Box::new(JsonlSink::open(&path).unwrap());
    let log = AuditLog::start(config(seal_every), vec![sink], Some(signer(k))).await.unwrap();
    for i in 1..=n {
        let receipt = log.append(event(i)).await.unwrap();
        assert_eq!(receipt.seq, Some(i));
    }
    log.shutdown().await.unwrap();
    path
}

fn opts(k: &Keys) -> VerifyOptions {
    VerifyOptions { public_key: Some(k.public.clone()), since: None, require_sealed: true }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// The index of the line holding record `seq`.
fn line_of(lines: &[String], seq: u64) -> usize {
    lines.iter().position(|l| l.contains(&format!("\"seq\":{seq},")) && l.contains("\"record\"")).unwrap()
}

fn problem(report: &VerifyReport) -> (u64, ProblemKind) {
    let p = report.problem.as_ref().unwrap_or_else(|| panic!("expected a problem: {report:?}"));
    (p.seq, p.kind)
}

#[tokio::test]
async fn a_clean_log_verifies_with_its_seals() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = write_jsonl(dir.path(), 10, 4, &k).await;
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 10);
    // Sealed at 4 and 8 by count, and at 10 on shutdown.
    assert_eq!(report.seals, 3);
    assert_eq!(report.last_sealed_seq, Some(10));
    assert!(report.signatures_checked);
    // 10 records + 3 seals, one a line.
    assert_eq!(lines(&path).len(), 13);
}

#[tokio::test]
async fn a_changed_byte_is_named_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = write_jsonl(dir.path(), 10, 4, &k).await;
    let mut l = lines(&path);
    let i = line_of(&l, 5);
    l[i] = l[i].replace("\"tool_5\"", "\"tool_6\"");
    write_lines(&path, &l);
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert_eq!(problem(&report), (5, ProblemKind::Edited));
    assert_eq!(report.problem.as_ref().unwrap().line, Some(i as u64 + 1));
    assert_eq!(report.records, 4, "records before the edit verified");

    // A changed byte in the raw file, wherever it lands in record 7, is found at 7.
    let path = write_jsonl(&dir.path().join("b"), 10, 4, &k).await;
    let mut bytes = std::fs::read(&path).unwrap();
    let l = lines(&path);
    let offset: usize = l[..line_of(&l, 7)].iter().map(|x| x.len() + 1).sum::<usize>() + 150;
    bytes[offset] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert_eq!(problem(&report), (7, ProblemKind::Edited), "{report:?}");
}

#[tokio::test]
async fn a_deleted_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = write_jsonl(dir.path(), 10, 4, &k).await;
    let mut l = lines(&path);
    l.remove(line_of(&l, 6));
    write_lines(&path, &l);
    assert_eq!(problem(&verify_jsonl(&path, &opts(&k)).unwrap()), (6, ProblemKind::Missing));

    // Deleting a sealed record (4, followed by its seal) is also a gap.
    let path = write_jsonl(&dir.path().join("b"), 10, 4, &k).await;
    let mut l = lines(&path);
    l.remove(line_of(&l, 4));
    write_lines(&path, &l);
    assert_eq!(problem(&verify_jsonl(&path, &opts(&k)).unwrap()), (4, ProblemKind::Missing));

    // Deleting the first record.
    let path = write_jsonl(&dir.path().join("c"), 10, 4, &k).await;
    let mut l = lines(&path);
    l.remove(0);
    write_lines(&path, &l);
    assert_eq!(problem(&verify_jsonl(&path, &opts(&k)).unwrap()), (1, ProblemKind::Missing));
}

#[tokio::test]
async fn truncation_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = write_jsonl(dir.path(), 10, 4, &k).await;
    let l = lines(&path);
    // Cut in the middle of record 9's line.
    let start: usize = l[..line_of(&l, 9)].iter().map(|x| x.len() + 1).sum();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(start as u64 + 40).unwrap();
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert_eq!(problem(&report), (9, ProblemKind::Truncated), "{report:?}");

    // Cut at a line boundary after record 6: records 5 and 6 are unsealed.
    let path = write_jsonl(&dir.path().join("b"), 10, 4, &k).await;
    let l = lines(&path);
    write_lines(&path, &l[..=line_of(&l, 6)]);
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert_eq!(problem(&report), (5, ProblemKind::Unsealed), "{report:?}");
    // Without `require_sealed` it is reported but not a failure (a live log has a tail).
    let lenient = VerifyOptions { require_sealed: false, ..opts(&k) };
    let report = verify_jsonl(&path, &lenient).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.unsealed_records(), 2);
}

#[tokio::test]
async fn a_rewritten_chain_breaks_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = write_jsonl(dir.path(), 10, 4, &k).await;
    // An attacker without the key changes record 6 and recomputes every hash and link
    // after it: the chain is consistent again, but the seal at 8 is not.
    let mut l = lines(&path);
    let mut prev: Option<String> = None;
    for seq in 6..=10 {
        let i = line_of(&l, seq);
        let v: serde_json::Value = serde_json::from_str(&l[i]).unwrap();
        let mut record = v["record"].clone();
        if seq == 6 {
            record["decision"] = "allow".into();
            record["target"] = "innocent".into();
        }
        if let Some(p) = &prev {
            record["prev"] = p.clone().into();
        }
        let body = serde_json_canonicalizer::to_string(&record).unwrap();
        let hash = moat_audit::record_hash(body.as_bytes());
        l[i] = format!("{{\"hash\":\"{hash}\",\"record\":{body}}}");
        prev = Some(hash);
    }
    write_lines(&path, &l);
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert_eq!(problem(&report), (5, ProblemKind::BadSeal), "{report:?}");
    assert_eq!(report.records, 8);

    // A forged signature on an otherwise valid seal.
    let path = write_jsonl(&dir.path().join("b"), 10, 4, &k).await;
    let mut l = lines(&path);
    let i = l.iter().position(|x| x.contains("\"seal\"")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&l[i]).unwrap();
    let sig = v["seal"]["sig"].as_str().unwrap().to_owned();
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    v["seal"]["sig"] = flipped.into();
    l[i] = v.to_string();
    write_lines(&path, &l);
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert_eq!(problem(&report), (1, ProblemKind::BadSeal), "{report:?}");

    // Verified with another key, the first seal is refused.
    let path = write_jsonl(&dir.path().join("c"), 10, 4, &k).await;
    let other = keys();
    let report = verify_jsonl(&path, &opts(&other)).unwrap();
    assert_eq!(problem(&report), (1, ProblemKind::BadSeal));
    assert!(report.problem.unwrap().detail.contains("not with the given key"));
}

#[tokio::test]
async fn since_checks_from_a_point_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = write_jsonl(dir.path(), 10, 4, &k).await;
    let mut l = lines(&path);
    // Damage before the window is not looked at; damage inside it is.
    let i = line_of(&l, 2);
    l[i] = l[i].replace("\"tool_2\"", "\"tool_X\"");
    write_lines(&path, &l);
    let since = VerifyOptions { since: Some(UnixMillis(1_764_171_000_000 + 5000)), ..opts(&k) };
    let report = verify_jsonl(&path, &since).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.first_seq, report.records), (Some(5), 6));
    let i = line_of(&l, 7);
    l[i] = l[i].replace("\"tool_7\"", "\"tool_Y\"");
    write_lines(&path, &l);
    assert_eq!(problem(&verify_jsonl(&path, &since).unwrap()), (7, ProblemKind::Edited));
}

#[tokio::test]
async fn a_restart_continues_the_chain_and_seals_a_crashed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = dir.path().join("audit.jsonl");
    // First run: 3 acknowledged records, never sealed (the writer "crashes": its handle is
    // leaked, so it never seals), then half a line from an unacknowledged write.
    {
        let sink: Box<dyn AuditSink> = Box::new(JsonlSink::open(&path).unwrap());
        let log = AuditLog::start(config(0), vec![sink], Some(signer(&k))).await.unwrap();
        for i in 1..=3 {
            log.append(event(i)).await.unwrap();
        }
        std::mem::forget(log);
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, b"{\"hash\":\"abc\",\"rec").unwrap();
    drop(f);
    assert_eq!(problem(&verify_jsonl(&path, &opts(&k)).unwrap()), (4, ProblemKind::Truncated));

    // Second run: the partial line is cut off, the tail sealed, and the chain continues.
    let sink: Box<dyn AuditSink> = Box::new(JsonlSink::open(&path).unwrap());
    let log = AuditLog::start(config(0), vec![sink], Some(signer(&k))).await.unwrap();
    assert_eq!(log.append(event(4)).await.unwrap().seq, Some(4));
    log.shutdown().await.unwrap();
    assert!(log.append(event(5)).await.is_err(), "appends after shutdown fail");
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.seals), (4, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_distinct_numbers_and_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = dir.path().join("audit.jsonl");
    let sink: Box<dyn AuditSink> = Box::new(JsonlSink::open(&path).unwrap());
    let log = AuditLog::start(config(50), vec![sink], Some(signer(&k))).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..400 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { log.append(event(i)).await.unwrap().seq.unwrap() }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    log.shutdown().await.unwrap();
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 400);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_record_that_cannot_be_written_is_refused() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let sink: Box<dyn AuditSink> = Box::new(JsonlSink::open(Path::new("/dev/full")).unwrap());
    let log = AuditLog::start(config(0), vec![sink], None).await.unwrap();
    let err = log.append(event(1)).await.unwrap_err();
    assert!(matches!(err, moat_audit::AuditError::NotWritten(_)), "{err}");
    // And it stays refused: the writer never acknowledges what it could not write.
    assert!(log.append(event(2)).await.is_err());
}

#[tokio::test]
async fn no_secret_reaches_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let token = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig";
    let api_key = "mk_live_0123456789abcdef";
    let path = dir.path().join("audit.jsonl");
    let sink: Box<dyn AuditSink> = Box::new(JsonlSink::open(&path).unwrap());
    let log = AuditLog::start(config(0), vec![sink], Some(signer(&k))).await.unwrap();
    let args = serde_json::json!({"query": "select 1", "auth": token, "key": api_key});
    // Digest only.
    let e = event(1).with_arguments(&args, false, || unreachable!()).unwrap();
    log.append(e).await.unwrap();
    // Arguments included, as the caller redacted them.
    let e = event(2)
        .with_arguments(
            &args,
            true,
            || serde_json::json!({"query": "select 1", "auth": "[REDACTED]", "key": "[REDACTED]"}),
        )
        .unwrap();
    log.append(e).await.unwrap();
    log.shutdown().await.unwrap();
    let found = moat_audit::testing::find_strings_in_file(&path, &[token, api_key, "c2VjcmV0LXRva2Vu"]).unwrap();
    assert!(found.is_empty(), "secrets in the audit file: {found:?}");
    // The check itself works: the redacted query text is there.
    assert_eq!(moat_audit::testing::find_strings_in_file(&path, &["select 1"]).unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// The SQLite sink

async fn write_sqlite(dir: &Path, n: u64, k: &Keys) -> (moat_store_sqlite::SqliteStore, Arc<dyn AuditStore>) {
    let store = moat_store_sqlite::SqliteStore::open(&dir.join("moat.db"), false).unwrap();
    let audit: Arc<dyn AuditStore> = Arc::new(store.clone());
    let sink: Box<dyn AuditSink> = Box::new(StoreSink::new(Arc::clone(&audit), "sqlite"));
    let log = AuditLog::start(config(4), vec![sink], Some(signer(k))).await.unwrap();
    for i in 1..=n {
        log.append(event(i)).await.unwrap();
    }
    log.shutdown().await.unwrap();
    (store, audit)
}

fn sql(store: &moat_store_sqlite::SqliteStore, statement: &str) {
    let conn = rusqlite_conn(store.path());
    conn.execute_batch(statement).unwrap();
}

fn rusqlite_conn(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test]
async fn the_sqlite_sink_verifies_and_answers_queries() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let (_store, audit) = write_sqlite(dir.path(), 10, &k).await;
    let report = verify_store(&*audit, &opts(&k)).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.seals), (10, 3));
    let denied = audit
        .query_audit(&AuditQuery {
            decision: Some("deny".into()),
            principal: Some("user-1".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(denied.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 9]);

    // Restarting on the same store continues the chain.
    let sink: Box<dyn AuditSink> = Box::new(StoreSink::new(Arc::clone(&audit), "sqlite"));
    let log = AuditLog::start(config(4), vec![sink], Some(signer(&k))).await.unwrap();
    assert_eq!(log.append(event(11)).await.unwrap().seq, Some(11));
    log.shutdown().await.unwrap();
    assert!(verify_store(&*audit, &opts(&k)).await.unwrap().is_ok());
}

#[tokio::test]
async fn tampering_with_the_sqlite_store_is_named() {
    let k = keys();
    let cases: [(&str, u64, ProblemKind); 4] = [
        ("UPDATE audit_records SET body = replace(body, 'tool_5', 'tool_0') WHERE seq = 5", 5, ProblemKind::Edited),
        ("DELETE FROM audit_records WHERE seq = 6", 6, ProblemKind::Missing),
        // The columns queries filter on must agree with the hashed body.
        ("UPDATE audit_records SET decision = 'allow' WHERE seq = 3", 3, ProblemKind::Edited),
        // Truncating the table's tail (records 9, 10) leaves their seal behind.
        ("DELETE FROM audit_records WHERE seq > 8", 9, ProblemKind::Missing),
    ];
    for (statement, seq, kind) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (store, audit) = write_sqlite(dir.path(), 10, &k).await;
        sql(&store, statement);
        let report = verify_store(&*audit, &opts(&k)).await.unwrap();
        assert_eq!(problem(&report), (seq, kind), "after `{statement}`: {report:?}");
    }
    // Deleting the tail and its seal together leaves an unsealed tail (records 5 to 8).
    let dir = tempfile::tempdir().unwrap();
    let (store, audit) = write_sqlite(dir.path(), 10, &k).await;
    sql(&store, "DELETE FROM audit_records WHERE seq > 8; DELETE FROM audit_seals WHERE seq > 4");
    assert_eq!(problem(&verify_store(&*audit, &opts(&k)).await.unwrap()), (5, ProblemKind::Unsealed));
}

#[tokio::test]
async fn both_sinks_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let store = moat_store_sqlite::SqliteStore::open(&dir.path().join("moat.db"), false).unwrap();
    let audit: Arc<dyn AuditStore> = Arc::new(store);
    let path = dir.path().join("audit.jsonl");
    let sinks: Vec<Box<dyn AuditSink>> =
        vec![Box::new(JsonlSink::open(&path).unwrap()), Box::new(StoreSink::new(Arc::clone(&audit), "sqlite"))];
    let log = AuditLog::start(config(3), sinks, Some(signer(&k))).await.unwrap();
    for i in 1..=7 {
        log.append(event(i)).await.unwrap();
    }
    log.flush().await.unwrap();
    // After a flush both are sealed to the head, while the writer still runs.
    let file = verify_jsonl(&path, &opts(&k)).unwrap();
    let db = verify_store(&*audit, &opts(&k)).await.unwrap();
    assert!(file.is_ok() && db.is_ok(), "{file:?} {db:?}");
    assert_eq!((file.records, file.last_sealed_seq), (7, Some(7)));
    assert_eq!((db.records, db.last_sealed_seq), (7, Some(7)));
    log.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_writer_seals_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let path = dir.path().join("audit.jsonl");
    let sink: Box<dyn AuditSink> = Box::new(JsonlSink::open(&path).unwrap());
    let config = AuditLogConfig { seal_every: 0, seal_interval: Duration::from_secs(1), ..config(0) };
    let log = AuditLog::start(config, vec![sink], Some(signer(&k))).await.unwrap();
    for i in 1..=3 {
        log.append(event(i)).await.unwrap();
    }
    // Not sealed yet right after the writes...
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert_eq!(problem(&report), (1, ProblemKind::Unsealed));
    // ...and sealed once the interval has passed, without a flush or a stop.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let report = verify_jsonl(&path, &opts(&k)).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.seals), (3, 1));
    log.shutdown().await.unwrap();
}
