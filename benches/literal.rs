//! Literal (exact-string) lookup throughput: 1M domain-like keys, 50% / 0% / 100% hits, one
//! lookup at a time and batched. Run with `cargo bench --bench literal`.
//!
//! Needs the hidden re-export `matchy::__bench` (= `crate::literal::bench_support`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use matchy::__bench::literal_lookup_setup;
use std::hint::black_box;

fn literal_lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("literal_1m");
    group.sample_size(10);
    for hit_percent in [50, 0, 100] {
        let bench = literal_lookup_setup(1_000_000, hit_percent);
        group.throughput(Throughput::Elements(bench.query_count() as u64));
        group.bench_function(format!("lookup/{hit_percent}%_hits"), |b| {
            b.iter(|| black_box(bench.lookup_each()))
        });
        group.bench_function(format!("lookup_batch/{hit_percent}%_hits"), |b| {
            b.iter(|| black_box(bench.lookup_batched()))
        });
    }
    group.finish();
}

criterion_group!(benches, literal_lookups);
criterion_main!(benches);
