//! The Rust side of the C-boundary overhead comparison (`overhead_instructions` in
//! ffi/tests/c_api.rs): the loop of ffi/tests/c/bench.c through the Rust API, with the same
//! modes (`string`, `value` and `path` all read `country`/`iso_code` with `Value::get` +
//! `as_str`; `lookup_n` is `lookup`, as the query's length comes with a `&str`).
//!
//! Like bench.c it times the second half of the lookups and prints "<ns> ns/lookup" to stderr.
//!
//! Usage: rust_lookup_loop DB QUERY_FILE LOOKUPS MODE

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: {} DB QUERY_FILE LOOKUPS MODE", args[0]);
        std::process::exit(2);
    }
    let db = engine::Database::from(&args[1])
        .open()
        .expect("open the database");
    let text = std::fs::read_to_string(&args[2]).expect("read the queries");
    let queries: Vec<&str> = text.lines().collect();
    let lookups: usize = args[3].parse().expect("LOOKUPS");
    let mode = args[4].as_str();
    let by_ip = mode.starts_with("ip");
    // IPv4 addresses as 4 bytes, as the C program has them.
    let addrs: Vec<[u8; 4]> = if by_ip {
        queries
            .iter()
            .map(|q| q.parse::<Ipv4Addr>().expect("an IPv4 address").octets())
            .collect()
    } else {
        Vec::new()
    };
    let read_value = matches!(mode, "string" | "value" | "path" | "ip+string" | "ip+path");
    let mut hits = 0u64;
    let read = |m: &engine::Match| {
        if !read_value {
            return 1;
        }
        match m.value().get(&["country", "iso_code"]).unwrap() {
            Some(v) => u64::from(!black_box(v.as_str().unwrap()).is_empty()),
            None => 0,
        }
    };
    let half = lookups / 2;
    let mut start = Instant::now();
    let mut q = queries.len() - 1;
    for i in 0..lookups {
        if i == half {
            start = Instant::now();
        }
        // The next query without a division, as in bench.c.
        q = if q + 1 == queries.len() { 0 } else { q + 1 };
        if by_ip {
            if let Some(m) = db.lookup_ip(IpAddr::from(black_box(addrs[q]))).unwrap() {
                hits += read(&m);
            }
        } else if let Some(m) = db.lookup(black_box(queries[q])).unwrap().first() {
            hits += read(m);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (lookups - half) as f64;
    eprintln!("{ns:.2} ns/lookup");
    println!("{hits}");
}
