//! Audit write throughput: records per second through `AuditLog::append`, as the gateway
//! calls it (many concurrent requests, each waiting for its record when `required`).
//!
//! Run: `cargo bench -p moat-audit --bench audit_write`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use moat_audit::{
    generate_key_pair, AuditEvent, AuditLog, AuditLogConfig, AuditPrincipal, AuditSigner, AuditSink, Decision,
    JsonlSink, StoreSink,
};
use moat_store::{AuditStore, UnixMillis};

/// Records per measured run.
const RECORDS: u64 = 10_000;

fn event(i: u64) -> AuditEvent {
    let mut e = AuditEvent::new("tools/call", if i.is_multiple_of(10) { Decision::Deny } else { Decision::Allow });
    e.time = UnixMillis::now();
    e.principal = Some(AuditPrincipal { subject: format!("user-{}", i % 50), client_id: Some("claude-code".into()) });
    e.session = Some("7f9c2ba4e88f827d616045507605853e".into());
    e.source = Some("127.0.0.1:51234".into());
    e.upstream = Some("github".into());
    e.target = Some("create_issue".into());
    e.arguments_sha256 = Some("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".into());
    e.rules = if i.is_multiple_of(10) { vec!["MOAT-TP-001".into()] } else { vec![] };
    e.latency_us = 850;
    e.result_bytes = Some(2048);
    e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    e
}

#[derive(Clone, Copy)]
enum Sink {
    Sqlite { synchronous_full: bool },
    Jsonl,
}

/// Writes RECORDS records with `producers` concurrent callers (gateway requests in flight);
/// returns the time taken.
fn run(rt: &tokio::runtime::Runtime, sink: Sink, required: bool, producers: u64, signer_pem: &str) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let sink: Box<dyn AuditSink> = match sink {
            Sink::Sqlite { synchronous_full } => {
                let store =
                    moat_store_sqlite::SqliteStore::open(&dir.path().join("moat.db"), synchronous_full).unwrap();
                let audit: Arc<dyn AuditStore> = Arc::new(store);
                Box::new(StoreSink::new(audit, "sqlite"))
            }
            Sink::Jsonl => Box::new(JsonlSink::open(&dir.path().join("audit.jsonl")).unwrap()),
        };
        let config = AuditLogConfig { required, seal_every: 1000, ..AuditLogConfig::default() };
        let signer = AuditSigner::from_key_bytes(signer_pem.as_bytes()).unwrap();
        let log = AuditLog::start(config, vec![sink], Some(signer)).await.unwrap();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for p in 0..producers {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = p;
                while i < RECORDS {
                    log.append(event(i)).await.unwrap();
                    i += producers;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Not-required appends return when queued: count the time to drain them too.
        log.flush().await.unwrap();
        let elapsed = start.elapsed();
        log.shutdown().await.unwrap();
        elapsed
    })
}

fn audit_write(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let pem = generate_key_pair().unwrap().private_pem.to_string();
    let mut group = c.benchmark_group("audit_write");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    let normal = Sink::Sqlite { synchronous_full: false };
    let full = Sink::Sqlite { synchronous_full: true };
    let cases = [
        ("sqlite_wal_normal_required/64", normal, true, 64),
        ("sqlite_wal_full_required/64", full, true, 64),
        ("sqlite_wal_full_required/256", full, true, 256),
        ("sqlite_wal_normal_not_required/64", normal, false, 64),
        ("jsonl_fsync_required/64", Sink::Jsonl, true, 64),
        ("jsonl_fsync_required/256", Sink::Jsonl, true, 256),
        ("jsonl_not_required/64", Sink::Jsonl, false, 64),
    ];
    for (name, sink, required, producers) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(&rt, sink, required, producers, &pem)).sum());
        });
    }
    group.finish();
}

criterion_group!(benches, audit_write);
criterion_main!(benches);
