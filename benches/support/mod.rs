//! What the benches share: a small deterministic generator, the directory their generated
//! files live in, and interleaved A/B timing for benches that quote a ratio (passes of two
//! workloads alternate, and alternate which goes first, so a shared machine's drift hits both
//! alike; criterion's separate runs of each side are printed too, this is the ratio to quote).
#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};
use std::time::Instant;

/// xorshift64: the same queries and files on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 1M domain-like literal keys (`host{i}-{hex}.example{n}.com`) and `count` queries: keys
/// chosen at random, half of them turned into near misses (`.miss` appended), also at random
/// (an alternating pattern would let the CPU predict every hit).
pub fn literal_keys_and_queries(r: &mut Rng, count: usize) -> (Vec<String>, Vec<String>) {
    let keys: Vec<String> = (0..1_000_000)
        .map(|i| format!("host{i}-{:x}.example{}.com", r.next() % 0xffffff, i % 97))
        .collect();
    let queries = (0..count)
        .map(|_| {
            let k = &keys[(r.next() % keys.len() as u64) as usize];
            if r.next() % 2 == 0 {
                k.clone()
            } else {
                format!("{k}.miss")
            }
        })
        .collect();
    (keys, queries)
}

/// 1M MD5-like keys (32 lowercase hex digits, the commonest hash IoC) and `count` queries:
/// keys chosen at random, half of them replaced by a hash that is not a key, also at random.
pub fn hash_keys_and_queries(r: &mut Rng, count: usize) -> (Vec<String>, Vec<String>) {
    fn md5_like(r: &mut Rng) -> String {
        format!("{:016x}{:016x}", r.next(), r.next())
    }
    let keys: Vec<String> = (0..1_000_000).map(|_| md5_like(r)).collect();
    let queries = (0..count)
        .map(|_| {
            let pick = r.next();
            if pick % 2 == 0 {
                keys[(pick / 2 % keys.len() as u64) as usize].clone()
            } else {
                // 128 random bits: not a key, short of a collision.
                md5_like(r)
            }
        })
        .collect();
    (keys, queries)
}

/// `target/bench-data/`, where benches build their files once (never committed).
pub fn bench_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Medians and fastest passes of two workloads, in ns per item.
pub struct Ab {
    pub median: (f64, f64),
    pub fastest: (f64, f64),
    pub rounds: usize,
}

impl Ab {
    /// Times `rounds` passes of each of `a` and `b` (each pass handles `items` items).
    pub fn run(rounds: usize, items: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> Ab {
        let (mut ta, mut tb) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        for round in 0..rounds {
            for first in [round % 2 == 0, round % 2 != 0] {
                let t = Instant::now();
                if first {
                    a()
                } else {
                    b()
                }
                let ns = t.elapsed().as_nanos() as f64 / items as f64;
                if first {
                    ta.push(ns)
                } else {
                    tb.push(ns)
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Ab {
            median: (median(&mut ta), median(&mut tb)),
            fastest: (ta[0], tb[0]),
            rounds,
        }
    }

    /// `name: A x ns/item, B y ns/item, ratio y/x (median of N interleaved passes); fastest ..`
    pub fn report(&self, name: &str, a: &str, b: &str) {
        let ((ma, mb), (fa, fb)) = (self.median, self.fastest);
        println!(
            "{name}: {a} {ma:.1} ns/lookup, {b} {mb:.1} ns/lookup, time ratio {b}/{a} {:.3} (median of \
             {} interleaved passes); fastest passes {fa:.1} vs {fb:.1}, ratio {:.3}",
            mb / ma,
            self.rounds,
            fb / fa
        );
    }
}
