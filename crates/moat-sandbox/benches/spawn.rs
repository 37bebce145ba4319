//! What the sandbox costs when an upstream starts: building the policy's rules (kernel probe,
//! Landlock ruleset, seccomp compilation) and starting a trivial child, with a plain
//! `tokio::process::Command` of the same program as the baseline in the same run.
//!
//! `cargo bench -p moat-sandbox --bench spawn`

use std::process::Stdio;

use criterion::{criterion_group, criterion_main, Criterion};
use moat_sandbox::{prepare, SandboxPolicy};

fn spawn(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let home = std::env::temp_dir().join(format!("moat-sandbox-bench-{}", std::process::id()));
    let policy = SandboxPolicy::new(home.join("home"));
    let truth = moat_sandbox::resolve_executable("true".as_ref(), policy.path.as_os_str()).unwrap();

    let mut g = c.benchmark_group("sandbox");
    g.bench_function("prepare", |b| b.iter(|| prepare(&truth, Vec::<&str>::new(), &policy).unwrap()));
    g.bench_function("spawn_true_plain", |b| {
        b.iter(|| {
            rt.block_on(async {
                let status = tokio::process::Command::new(&truth).stdin(Stdio::null()).status().await.unwrap();
                assert!(status.success());
            })
        })
    });
    g.bench_function("spawn_true_sandboxed", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (mut cmd, _) = prepare(&truth, Vec::<&str>::new(), &policy).unwrap();
                let status = cmd.stdin(Stdio::null()).status().await.unwrap();
                assert!(status.success());
            })
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(home);
}

criterion_group!(benches, spawn);
criterion_main!(benches);
