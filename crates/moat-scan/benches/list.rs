//! `moat scan --list` work: discovery and the inventory table over a fixture home with a
//! configuration of every supported client (20 files, 21 servers).
//!
//! Run: `cargo bench -p moat-scan --bench list`

use criterion::{criterion_group, criterion_main, Criterion};
use moat_scan::fixture::FixtureHome;
use moat_scan::report::list_table;

fn list(c: &mut Criterion) {
    let fx = match FixtureHome::create("bench") {
        Ok(fx) => fx,
        Err(e) => {
            eprintln!("cannot create the fixture: {e}");
            return;
        }
    };
    let opts = fx.discover_options();
    let inv = moat_scan::discover(&opts);
    assert_eq!(inv.files.len(), 20, "the fixture has 20 configuration files");
    c.bench_function("discover_20_configs", |b| b.iter(|| moat_scan::discover(&opts)));
    c.bench_function("discover_and_list_table_20_configs", |b| {
        b.iter(|| {
            let inv = moat_scan::discover(&opts);
            list_table(&inv.servers, Some(&fx.home))
        })
    });
}

criterion_group!(benches, list);
criterion_main!(benches);
