//! `moat audit`: keygen, verify (exit codes 0 / 1 / 2), tail, query and export, run against
//! the built binary on a log written through `moat_audit`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use moat_audit::{
    AuditEvent, AuditLog, AuditLogConfig, AuditPrincipal, AuditSigner, AuditSink, Decision, JsonlSink, StoreSink,
};

fn moat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moat")).args(args).env("MOAT_LOG", "error").output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh folder under the system temp dir (no tempfile dependency in this crate).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moat-cli-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Ten records (every third denied, principals alternating) in a file and a SQLite store.
fn write_log(dir: &Path, key: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = moat_store_open::open(Some(&format!("sqlite://{}", dir.join("moat.db").display()))).await.unwrap();
        let sinks: Vec<Box<dyn AuditSink>> = vec![
            Box::new(JsonlSink::open(&dir.join("audit.jsonl")).unwrap()),
            Box::new(StoreSink::new(store.audit().unwrap(), "sqlite")),
        ];
        let signer = AuditSigner::from_key_bytes(&std::fs::read(key).unwrap()).unwrap();
        let config = AuditLogConfig { seal_every: 4, ..AuditLogConfig::default() };
        let log = AuditLog::start(config, sinks, Some(signer)).await.unwrap();
        for i in 1..=10u64 {
            let decision = if i.is_multiple_of(3) { Decision::Deny } else { Decision::Allow };
            let mut e = AuditEvent::new("tools/call", decision);
            e.principal = Some(AuditPrincipal { subject: format!("user-{}", i % 2), client_id: None });
            e.target = Some(format!("tool_{i}"));
            log.append(e).await.unwrap();
        }
        log.shutdown().await.unwrap();
    });
}

#[test]
fn keygen_verify_and_read() {
    let dir = scratch("main");
    let key = dir.join("audit.key");
    let public = dir.join("audit.pub");
    let out = moat(&["audit", "keygen", "--out", key.to_str().unwrap(), "--public-out", public.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(std::fs::read_to_string(&public).unwrap(), stdout(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // No silent overwrite of a key.
    assert_eq!(moat(&["audit", "keygen", "--out", key.to_str().unwrap()]).status.code(), Some(2));

    write_log(&dir, &key);
    let file = dir.join("audit.jsonl");
    let store = format!("sqlite://{}", dir.join("moat.db").display());
    let pubref = format!("file:{}", public.display());

    let out = moat(&["audit", "verify", "--file", file.to_str().unwrap(), "--public-key", &pubref, "--require-sealed"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("verified: 10 records (1 to 10), 3 seals"), "{}", stdout(&out));
    let out = moat(&["audit", "verify", "--store", &store, "--public-key", &pubref, "--require-sealed"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // tail: the newest three, oldest of them first.
    let out = moat(&["audit", "tail", "-n", "3", "--file", file.to_str().unwrap()]);
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![8, 9, 10]);
    // query: filters, from the store and from the file alike.
    for source in [["--store", store.as_str()], ["--file", file.to_str().unwrap()]] {
        let mut args = vec!["audit", "query", "--principal", "user-1", "--decision", "deny"];
        args.extend(source);
        let out = moat(&args);
        let targets: Vec<String> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["target"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(targets, vec!["tool_3", "tool_9"], "{source:?}");
    }
    // export of the whole store verifies as a file.
    let out = moat(&["audit", "export", "--store", &store]);
    let exported = dir.join("exported.jsonl");
    std::fs::write(&exported, &out.stdout).unwrap();
    let out = moat(&["audit", "verify", "--file", exported.to_str().unwrap(), "--public-key", &pubref]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // A changed record: exit 1, named.
    let text = std::fs::read_to_string(&file).unwrap().replace("\"tool_6\"", "\"tool_0\"");
    std::fs::write(&file, text).unwrap();
    let out = moat(&["audit", "verify", "--file", file.to_str().unwrap(), "--public-key", &pubref]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).contains("BROKEN at record 6"), "{}", stdout(&out));

    // Could not check: exit 2.
    assert_eq!(
        moat(&["audit", "verify", "--file", file.to_str().unwrap(), "--public-key", "audit.pub"]).status.code(),
        Some(2)
    );
    assert_eq!(moat(&["audit", "verify", "--store", "sqlite:///nonexistent/moat.db"]).status.code(), Some(2));
    assert_eq!(moat(&["audit", "verify", "--file", "/nonexistent/audit.jsonl"]).status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
