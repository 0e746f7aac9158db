//! The Rust side of the C-boundary overhead benchmark (`overhead_c_vs_rust` in
//! ffi/tests/c_api.rs): the same loop as ffi/tests/c/bench.c, through the Rust API.
//!
//! Usage: rust_lookup_loop DB QUERY_FILE LOOKUPS ROUNDS lookup|value

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!(
            "usage: {} DB QUERY_FILE LOOKUPS ROUNDS lookup|value",
            args[0]
        );
        std::process::exit(2);
    }
    let db = engine::Database::from(&args[1])
        .open()
        .expect("open the database");
    let text = std::fs::read_to_string(&args[2]).expect("read the queries");
    let queries: Vec<&str> = text.lines().collect();
    let lookups: usize = args[3].parse().expect("LOOKUPS");
    let rounds: usize = args[4].parse().expect("ROUNDS");
    let read_value = args[5] == "value";
    let mut best = f64::MAX;
    let mut hits = 0u64;
    for _ in 0..rounds {
        hits = 0;
        let start = Instant::now();
        for i in 0..lookups {
            let matches = db.lookup(black_box(queries[i % queries.len()])).unwrap();
            let Some(m) = matches.first() else { continue };
            if !read_value {
                hits += 1;
                continue;
            }
            if let Some(v) = m.value().get(&["category"]).unwrap() {
                hits += u64::from(!black_box(v.as_str().unwrap()).is_empty());
            }
        }
        best = best.min(start.elapsed().as_nanos() as f64 / lookups.max(1) as f64);
    }
    println!("{best:.1} {hits}");
}
