//! Losing nothing: a writer killed with SIGKILL under load loses no acknowledged record,
//! and after a restart both chains verify.
//!
//! The test re-runs its own binary as the child (the `#[ignore]`d `child_writer` test, run
//! with `--ignored --exact`): the child appends from 32 concurrent tasks with
//! `required = true` and prints each acknowledged sequence number; the parent kills it
//! mid-stream.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use moat_audit::{
    generate_key_pair, verify_jsonl, verify_store, AuditEvent, AuditLog, AuditLogConfig, AuditSigner, AuditSink,
    AuditVerifyingKey, Decision, JsonlSink, StoreSink, VerifyOptions,
};
use moat_store::AuditStore;

const CHILD_DIR: &str = "MOAT_AUDIT_CRASH_DIR";

async fn open_log(dir: &Path) -> (AuditLog, Arc<dyn AuditStore>) {
    let key = std::fs::read(dir.join("audit.key")).unwrap();
    let store = moat_store_sqlite::SqliteStore::open(&dir.join("moat.db"), false).unwrap();
    let audit: Arc<dyn AuditStore> = Arc::new(store);
    let sinks: Vec<Box<dyn AuditSink>> = vec![
        Box::new(JsonlSink::open(&dir.join("audit.jsonl")).unwrap()),
        Box::new(StoreSink::new(Arc::clone(&audit), "sqlite")),
    ];
    let config = AuditLogConfig { required: true, seal_every: 100, ..AuditLogConfig::default() };
    let log = AuditLog::start(config, sinks, Some(AuditSigner::from_key_bytes(&key).unwrap())).await.unwrap();
    (log, audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child half of `sigkill_under_load_loses_no_acknowledged_record`"]
async fn child_writer() {
    let dir = PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let (log, _) = open_log(&dir).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    for task in 0..32u64 {
        let (log, tx) = (log.clone(), tx.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let mut e = AuditEvent::new("tools/call", Decision::Allow);
                e.target = Some(format!("tool_{task}_{i}"));
                let seq = log.append(e).await.unwrap().seq.unwrap();
                if tx.send(seq).is_err() {
                    return;
                }
            }
        });
    }
    let mut out = std::io::stdout().lock();
    while let Some(seq) = rx.recv().await {
        writeln!(out, "ack {seq}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn sigkill_under_load_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let pair = generate_key_pair().unwrap();
    std::fs::write(dir.path().join("audit.key"), pair.private_pem.as_bytes()).unwrap();
    let public = AuditVerifyingKey::from_key_bytes(pair.public_pem.as_bytes()).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut max_acked = 0u64;
    let mut acked = 0u64;
    // Kill it mid-stream, after a few seals' worth of acknowledged records.
    while acked < 2000 {
        let line = lines.next().expect("the child stopped early").unwrap();
        if let Some(seq) = line.strip_prefix("ack ") {
            max_acked = max_acked.max(seq.parse().unwrap());
            acked += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
                           // Acknowledgements already printed still count.
    for line in lines.map_while(Result::ok) {
        if let Some(seq) = line.strip_prefix("ack ") {
            max_acked = max_acked.max(seq.parse().unwrap());
        }
    }
    child.wait().unwrap();

    // Restart: the writer seals the tail the crash left, and the chain goes on.
    let (log, audit) = open_log(dir.path()).await;
    let next = log.append(AuditEvent::new("tools/call", Decision::Deny)).await.unwrap().seq.unwrap();
    tokio::time::timeout(Duration::from_secs(10), log.shutdown()).await.unwrap().unwrap();

    let options = VerifyOptions { public_key: Some(public), since: None, require_sealed: true };
    let file = verify_jsonl(&dir.path().join("audit.jsonl"), &options).unwrap();
    let db = verify_store(&*audit, &options).await.unwrap();
    assert!(file.is_ok(), "{file:?}");
    assert!(db.is_ok(), "{db:?}");
    // Sequence numbers have no gaps, so every acknowledged record is there.
    assert!(next > max_acked, "the chain continued after {max_acked}, at {next}");
    assert_eq!(file.last_seq, Some(next));
    assert!(db.last_seq.unwrap() >= max_acked, "{db:?} lost records up to {max_acked}");
}
