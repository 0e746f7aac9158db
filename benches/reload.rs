//! What auto-reload costs, measured in one run:
//! * `reload_overhead/ip/*` and `reload_overhead/literal/*`: the same lookups on the same file
//!   opened without and with `auto_reload()` (criterion), plus an interleaved A/B measurement
//!   printed as a ratio of medians (target <= 1.05), which is robust to a shared machine's drift.
//! * reload latency: from the `rename` of a ~100 MB file over the served path to the `Reloaded`
//!   callback (target: debounce + < 10 ms), median over several renames, printed; with the
//!   process's anonymous and file-backed resident memory around a reload.
//!
//! Run: `cargo bench --bench reload`. The files are built once into `target/bench-data/`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod support;
use matchy::{DataValue, Database, DatabaseBuilder, ReloadKind};
use support::{bench_dir, Ab, Rng};

fn record(i: u64, r: &mut Rng) -> DataValue {
    DataValue::Map(vec![
        ("id".into(), DataValue::Uint32(i as u32)),
        (
            "category".into(),
            DataValue::String(["malware", "phishing", "c2", "spam"][(i % 4) as usize].into()),
        ),
        (
            "note".into(),
            DataValue::String(format!("feed entry {i} {:016x}{:016x}", r.next(), r.next())),
        ),
    ])
}

/// `networks` IPv4 networks and `literals` host names, every entry with its own record.
fn build(path: &Path, networks: u64, literals: u64) {
    if path.exists() {
        return;
    }
    let mut b = DatabaseBuilder::new();
    b.on_duplicate(matchy::DuplicatePolicy::Last).build_epoch(0);
    let mut r = Rng(42);
    for i in 0..networks {
        let a = r.next() as u32;
        let len = 16 + (r.next() % 9) as u8;
        let rec = record(i, &mut r);
        b.add(&format!("{}/{len}", std::net::Ipv4Addr::from(a)), rec)
            .unwrap();
    }
    for i in 0..literals {
        let rec = record(i, &mut r);
        b.add(&format!("host{i}.example{}.com", i % 97), rec)
            .unwrap();
    }
    b.write_to(path).unwrap();
}

fn ip_queries(n: usize) -> Vec<IpAddr> {
    let mut r = Rng(7);
    (0..n)
        .map(|_| IpAddr::V4((r.next() as u32).into()))
        .collect()
}

/// Half hits, half misses.
fn literal_queries(n: usize, literals: u64) -> Vec<String> {
    let mut r = Rng(11);
    (0..n)
        .map(|k| {
            let i = r.next() % literals;
            if k % 2 == 0 {
                format!("host{i}.example{}.com", i % 97)
            } else {
                format!("host{i}.example{}.org", i % 97)
            }
        })
        .collect()
}

fn ip_pass(db: &Database, qs: &[IpAddr]) -> usize {
    let mut n = 0;
    for &q in qs {
        n += db.lookup_ip(q).unwrap().is_some() as usize;
    }
    n
}

fn literal_pass(db: &Database, qs: &[String]) -> usize {
    let mut n = 0;
    for q in qs {
        n += db.lookup(q).unwrap().len();
    }
    n
}

/// Interleave timed passes of `plain` and `reloading` and print the ratio of their medians.
fn ab_ratio<Q>(
    name: &str,
    plain: &Database,
    reloading: &Database,
    qs: &[Q],
    pass: fn(&Database, &[Q]) -> usize,
) {
    Ab::run(
        41,
        qs.len(),
        || {
            black_box(pass(plain, qs));
        },
        || {
            black_box(pass(reloading, qs));
        },
    )
    .report(&format!("reload_overhead/{name}"), "plain", "auto_reload");
}

fn bench_overhead(c: &mut Criterion) {
    const LITERALS: u64 = 200_000;
    let path = bench_dir().join("reload-overhead.mxy");
    build(&path, 200_000, LITERALS);
    let plain = Database::from(&path).open().unwrap();
    let reloading = Database::from(&path).auto_reload().open().unwrap();

    let ips = ip_queries(1 << 14);
    let mut g = c.benchmark_group("reload_overhead/ip");
    g.throughput(Throughput::Elements(ips.len() as u64));
    g.bench_function("plain", |b| b.iter(|| black_box(ip_pass(&plain, &ips))));
    g.bench_function("auto_reload", |b| {
        b.iter(|| black_box(ip_pass(&reloading, &ips)))
    });
    g.finish();

    let lits = literal_queries(1 << 14, LITERALS);
    let mut g = c.benchmark_group("reload_overhead/literal");
    g.throughput(Throughput::Elements(lits.len() as u64));
    g.bench_function("plain", |b| {
        b.iter(|| black_box(literal_pass(&plain, &lits)))
    });
    g.bench_function("auto_reload", |b| {
        b.iter(|| black_box(literal_pass(&reloading, &lits)))
    });
    g.finish();

    ab_ratio("ip", &plain, &reloading, &ips, ip_pass);
    ab_ratio("literal", &plain, &reloading, &lits, literal_pass);

    // A file small enough to stay in cache: the pin check is the largest share of a lookup.
    let tiny = bench_dir().join("reload-overhead-tiny.mxy");
    build(&tiny, 1_000, 1_000);
    let plain = Database::from(&tiny).open().unwrap();
    let reloading = Database::from(&tiny).auto_reload().open().unwrap();
    ab_ratio("ip-tiny", &plain, &reloading, &ips, ip_pass);
    ab_ratio(
        "literal-tiny",
        &plain,
        &reloading,
        &literal_queries(1 << 14, 1_000),
        literal_pass,
    );
}

fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// Rename a ~100 MB file over the served path, time until `Reloaded` is delivered. Two source
/// files are hard-linked in turn (a rename of a link is as atomic as that of a fresh copy, and
/// costs no copying), so every rename names a different file than the one served.
fn reload_latency(_c: &mut Criterion) {
    const RENAMES: usize = 15;
    let debounce = Duration::from_millis(50);
    let dir = bench_dir();
    let sources = [
        dir.join("reload-100mb-a.mxy"),
        dir.join("reload-100mb-b.mxy"),
    ];
    build(&sources[0], 500_000, 500_000);
    if !sources[1].exists() {
        std::fs::copy(&sources[0], &sources[1]).unwrap();
    }
    let size = std::fs::metadata(&sources[0]).unwrap().len();
    let live = tempfile::Builder::new()
        .prefix("reload-latency")
        .tempdir_in(&dir)
        .unwrap();
    let path = live.path().join("db.mxy");
    std::fs::hard_link(&sources[0], &path).unwrap();

    let (tx, rx) = mpsc::channel();
    let db = Database::from(&path)
        .auto_reload()
        .debounce(debounce)
        .on_reload(move |ev| {
            let _ = tx.send((Instant::now(), ev.kind, ev.duration, memory_kib()));
        })
        .open()
        .unwrap();
    let qs = ip_queries(1 << 12);
    black_box(ip_pass(&db, &qs));
    let (mut latency, mut open) = (Vec::new(), Vec::new());
    let mut mem = Vec::new();
    for i in 0..RENAMES {
        let tmp = live.path().join("tmp.mxy");
        std::fs::hard_link(&sources[(i + 1) % 2], &tmp).unwrap();
        let before = memory_kib();
        let t0 = Instant::now();
        std::fs::rename(&tmp, &path).unwrap();
        let (t1, kind, duration, during) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(kind, ReloadKind::Reloaded);
        latency.push(t1 - t0);
        open.push(duration);
        // Readers move on, as they would in a server.
        black_box(ip_pass(&db, &qs));
        mem.push((before, during, memory_kib()));
        std::thread::sleep(Duration::from_millis(100));
    }
    latency.sort();
    open.sort();
    let median = latency[RENAMES / 2];
    println!(
        "reload_latency/100mb: file {:.1} MB, debounce {debounce:?}: rename -> Reloaded median {median:.2?} \
         (debounce + {:.2?}), min {:.2?}, max {:.2?}; open+validate median {:.2?}",
        size as f64 / 1e6,
        median.saturating_sub(debounce),
        latency[0],
        latency[RENAMES - 1],
        open[RENAMES / 2],
    );
    let (b, d, a) = mem[RENAMES / 2];
    println!(
        "reload_memory/100mb: RssAnon/RssFile KiB before rename {}/{}, in the callback {}/{}, after readers moved on {}/{}",
        b.0, b.1, d.0, d.1, a.0, a.1
    );
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_overhead, reload_latency
}
criterion_main!(benches);
