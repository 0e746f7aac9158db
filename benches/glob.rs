//! Glob index throughput on 100K synthetic globs (deterministic PRNG, no downloads):
//! `*.domain.tld` only, and a mix of shapes sharing common fragments like `.com`; queries are
//! half built to match a random glob, half random domains. Also prints build and check time,
//! section size, index shape and the best of 30 rounds (steadier than the median on a shared
//! machine).
//!
//! Knobs for profiling: `GLOB_BENCH_QUICK=domain|mixed|all` (setup and best-of-rounds only, no
//! criterion), `GLOB_BENCH_ROUNDS=n`, `GLOB_BENCH_N=n` (globs per set).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use matchy::glob::index::{GlobIndex, GlobIndexBuilder, KeepDuplicate};
use std::hint::black_box;
use std::time::Instant;

const GLOBS: usize = 100_000;
const QUERIES: usize = 10_000;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Label building blocks: syllables and common words, so labels share endings and fragments
/// the way real host names do ("...cloud", "...shop").
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "net", "ser", "ver", "da", "ta", "bit", "cor", "pro", "fin", "sec", "web",
    "app", "lan", "ex", "in", "go", "tel", "box", "hub", "ly", "zo", "ri", "mo", "pa", "qu", "vi",
    "nu", "el", "ar", "on", "ix", "dev", "cam", "sol", "tek", "mar", "pix", "ra", "xo", "fy", "io",
    "log", "shop", "mail", "cloud", "data", "soft", "be", "ca", "de", "fe", "gi", "ho", "ju", "ke",
    "li", "ma", "ne", "no", "pe", "ro", "sa", "se", "si", "su", "te", "ti", "to", "tu", "va", "ve",
    "wa", "we", "ya", "ze", "an", "en", "or", "ur", "al", "il", "um", "os", "us", "max", "sky",
    "star", "line", "link", "bank", "pay", "secure", "login", "update", "info", "plus",
];
const TLDS: &[&str] = &[
    "com", "com", "com", "com", "net", "org", "io", "de", "co.uk", "info", "ru", "xyz",
];
const EXTS: &[&str] = &["exe", "dll", "scr", "bat", "js", "zip", "doc", "pdf"];
const SUBDOMAINS: &[&str] = &["www", "mail", "api", "cdn", "login", "a.b", "static-01"];

/// A host label like "secmocloud" or "finpaly7": 3-4 building blocks, sometimes a number.
fn label(rng: &mut Rng) -> String {
    let n = 3 + rng.below(2);
    let mut s: String = (0..n).map(|_| rng.pick(SYLLABLES)).collect();
    if rng.below(3) == 0 {
        s += &rng.below(100).to_string();
    }
    s
}

/// A glob as pieces: Ok(literal) or Err(wildcard text + a sample of what it matches).
type Piece = Result<String, (&'static str, &'static [&'static str])>;

const STAR: Piece = Err(("*", &["", "x", "www.", "abc-def"]));
const ANY: Piece = Err(("?", &["a", "7", "-"]));
const DIGIT: Piece = Err(("[0-9]", &["0", "4", "9"]));

fn lit(s: impl Into<String>) -> Piece {
    Ok(s.into())
}

fn domain_glob(rng: &mut Rng) -> Vec<Piece> {
    vec![STAR, lit(format!(".{}.{}", label(rng), rng.pick(TLDS)))]
}

fn mixed_glob(rng: &mut Rng) -> Vec<Piece> {
    let tld = |rng: &mut Rng| format!(".{}", rng.pick(TLDS));
    match rng.below(20) {
        0..=5 => domain_glob(rng),
        6..=7 => vec![lit(format!("{}-", label(rng))), STAR],
        8..=9 => vec![STAR, lit(label(rng)), STAR, lit(label(rng)), STAR],
        10..=11 => vec![lit(label(rng)), ANY, lit(label(rng) + &tld(rng))],
        12..=13 => vec![
            lit("host"),
            DIGIT,
            DIGIT,
            lit(format!(".{}{}", label(rng), tld(rng))),
        ],
        14 => vec![STAR, lit(format!("{}.{}", label(rng), rng.pick(EXTS)))],
        15 => vec![STAR, lit(format!(".{}", rng.pick(EXTS)))],
        16..=17 => vec![lit(label(rng)), STAR, lit(tld(rng))],
        18 => vec![STAR, lit(label(rng)), DIGIT, STAR],
        _ => vec![STAR, DIGIT, lit(format!(".{}{}", label(rng), tld(rng)))],
    }
}

fn render(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Ok(l) => l.as_str(),
            Err((w, _)) => w,
        })
        .collect()
}

fn instantiate(pieces: &[Piece], rng: &mut Rng) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Ok(l) => l.clone(),
            Err((_, samples)) => rng.pick(samples).to_string(),
        })
        .collect()
}

fn random_domain(rng: &mut Rng) -> String {
    format!("{}.{}.{}", rng.pick(SUBDOMAINS), label(rng), rng.pick(TLDS))
}

struct Workload {
    section: Vec<u8>,
    queries: Vec<String>,
}

fn workload(name: &str, make: fn(&mut Rng) -> Vec<Piece>) -> Workload {
    let mut rng = Rng(0x5EED ^ name.len() as u64);
    let n: usize = std::env::var("GLOB_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(GLOBS);
    let globs: Vec<Vec<Piece>> = (0..n).map(|_| make(&mut rng)).collect();
    let queries: Vec<String> = (0..QUERIES)
        .map(|_| {
            // Drawn at random: an alternating pattern would let the CPU predict every hit.
            if rng.below(2) == 0 {
                let g = &globs[rng.below(globs.len())];
                let q = instantiate(g, &mut rng);
                // *.domain.tld needs something before the dot to be a realistic host name.
                if q.starts_with('.') {
                    format!("{}{q}", rng.pick(SUBDOMAINS))
                } else {
                    q
                }
            } else {
                random_domain(&mut rng)
            }
        })
        .collect();
    let start = Instant::now();
    let mut builder = GlobIndexBuilder::new(true);
    for (i, g) in globs.iter().enumerate() {
        builder.add(&render(g), i as u32, i as u32).unwrap();
    }
    let (section, dropped) = builder.finish(KeepDuplicate::First).unwrap();
    let built = start.elapsed();
    let index = GlobIndex::new(&section, true).unwrap();
    let start = Instant::now();
    index.check(GLOBS).unwrap();
    let checked = start.elapsed();
    let mut hits = 0;
    let mut matched = 0;
    for q in &queries {
        let q: &String = q;
        let mut n = 0usize;
        index.for_each_match(q.as_bytes(), |_| n += 1).unwrap();
        hits += (n > 0) as usize;
        matched += n;
    }
    eprintln!(
        "{name}: {} globs ({} duplicates dropped), build {:.0} ms, check {:.0} ms, section {:.2} MiB \
         ({:.1} B/glob); queries: {:.1}% hit, {:.2} matches/query",
        index.len(),
        dropped.len(),
        built.as_secs_f64() * 1e3,
        checked.as_secs_f64() * 1e3,
        section.len() as f64 / (1 << 20) as f64,
        section.len() as f64 / index.len() as f64,
        100.0 * hits as f64 / queries.len() as f64,
        matched as f64 / queries.len() as f64,
    );
    eprintln!("{name}: {}", index.debug_summary());
    // On a shared machine the best of several short rounds is the steadiest estimate of what
    // the code can do; criterion's median includes the interference.
    let rounds: usize = std::env::var("GLOB_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut sink = 0usize;
        for q in &queries {
            index
                .for_each_match(black_box(q.as_bytes()), |h| sink += h.id as usize)
                .unwrap();
        }
        black_box(sink);
        best = best.min(start.elapsed().as_secs_f64());
    }
    eprintln!(
        "{name}: best round {:.2} M lookups/s",
        queries.len() as f64 / best / 1e6
    );
    Workload { section, queries }
}

fn bench_lookups(c: &mut Criterion) {
    if let Ok(only) = std::env::var("GLOB_BENCH_QUICK") {
        // Setup, statistics and the best-round estimate only (for profilers):
        // GLOB_BENCH_QUICK=domain|mixed|all.
        if only != "mixed" {
            workload("100k_domain_tld", domain_glob);
        }
        if only != "domain" {
            workload("100k_mixed", mixed_glob);
        }
        return;
    }
    let mut group = c.benchmark_group("glob_lookup");
    group.throughput(Throughput::Elements(QUERIES as u64));
    for (name, make) in [
        ("100k_domain_tld", domain_glob as fn(&mut Rng) -> Vec<Piece>),
        ("100k_mixed", mixed_glob),
    ] {
        let w = workload(name, make);
        let index = GlobIndex::new(&w.section, true).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut found = 0u64;
                for q in &w.queries {
                    index
                        .for_each_match(black_box(q.as_bytes()), |hit| {
                            found += hit.data_offset as u64
                        })
                        .unwrap();
                }
                found
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_lookups);
criterion_main!(benches);
