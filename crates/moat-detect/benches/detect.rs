//! Detection engine benchmarks: text scanning with every rule at 1 KB, 64 KB and 4 MB of typical
//! text (real README paragraphs from the corpus), and a 100-tool server's tools/list scanned.
//!
//! ```text
//! cargo bench -p moat-detect --bench detect
//! ```
//!
//! Every figure is the *thread CPU time* of the scanning thread (`iter_custom` with
//! `cpu_time::ThreadTime`), not wall time: on a shared build machine wall time also counts the
//! turns of other processes, which says nothing about the engine.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use cpu_time::ThreadTime;
use criterion::{criterion_group, criterion_main, Bencher, Criterion, Throughput};
use moat_detect::{Detector, ServerInput};
use serde_json::Value;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

/// Typical tool output: the benign documentation paragraphs of the corpus, repeated to `size`.
fn typical_text(size: usize) -> String {
    let src = std::fs::read_to_string(corpus().join("text/benign.jsonl")).unwrap();
    let paras: Vec<String> =
        src.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["text"].as_str().unwrap().to_owned()).collect();
    let mut out = String::with_capacity(size + 4096);
    let mut i = 0;
    while out.len() < size {
        out.push_str(&paras[i % paras.len()]);
        out.push_str("\n\n");
        i += 1;
    }
    let mut end = size;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

/// The first 100 real tools of the corpus, as one server.
fn hundred_tools() -> Vec<Value> {
    let mut paths: Vec<_> =
        std::fs::read_dir(corpus().join("tools/benign")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut tools = Vec::new();
    for p in paths {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        tools.extend(doc["tools"].as_array().unwrap().iter().cloned());
    }
    tools.truncate(100);
    assert_eq!(tools.len(), 100);
    tools
}

/// Run `f` `iters` times and return the CPU time this thread spent.
fn cpu<R>(b: &mut Bencher<'_>, mut f: impl FnMut() -> R) {
    b.iter_custom(|iters| {
        let start = ThreadTime::now();
        for _ in 0..iters {
            black_box(f());
        }
        start.elapsed()
    })
}

fn text(c: &mut Criterion) {
    let d = Detector::builtin().unwrap();
    let mut g = c.benchmark_group("scan_text");
    g.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    for (name, size) in [("1KB", 1 << 10), ("64KB", 64 << 10), ("4MB", 4 << 20)] {
        let t = typical_text(size);
        g.throughput(Throughput::Bytes(t.len() as u64));
        g.bench_function(name, |b| cpu(b, || d.scan_text(black_box(&t))));
    }
    let clean = "The quick brown fox jumps over the lazy dog. ".repeat(23);
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("1KB_plain_prose", |b| cpu(b, || d.scan_text(black_box(&clean))));
    g.finish();
}

fn tools(c: &mut Criterion) {
    let d = Detector::builtin().unwrap();
    let tools = hundred_tools();
    let mut g = c.benchmark_group("scan_tools");
    g.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    g.bench_function("100_tools_one_server", |b| {
        cpu(b, || {
            let servers = [ServerInput { name: "bench", tools: &tools, ..ServerInput::default() }];
            d.scan_tools(black_box(&servers))
        })
    });
    g.finish();
    let mut g = c.benchmark_group("build");
    g.measurement_time(Duration::from_secs(4)).sample_size(10);
    g.bench_function("detector_builtin", |b| cpu(b, || Detector::builtin().unwrap()));
    g.finish();
}

criterion_group!(benches, text, tools);
criterion_main!(benches);
