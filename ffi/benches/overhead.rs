//! The price of the C boundary, measured in one run: each case runs the same queries against the
//! same file through the Rust API (`rust`) and through the exported C functions (`c`), so the
//! ratio of the two criterion medians is the overhead.
//!
//! * `literal`, `glob`, `miss`: `Database::lookup` vs `matchy_lookup`.
//! * `literal-n`: `literal` through `matchy_lookup_n`, for callers that know the query's length
//!   (no `strlen`).
//! * `ip-text`: IPv4 addresses as text, `Database::lookup` vs `matchy_lookup`.
//! * `literal-1m`: the same on a file the size of a real feed (1M literals, 50% hits at random):
//!   lookups that wait on memory, as in production, rather than on a cached 21,000-entry file.
//! * `ip`: `Database::lookup_ip` vs `matchy_lookup_ip_bytes`; `ip-geolite2` the same on
//!   GeoLite2-Country when `MATCHY_GEOLITE2_COUNTRY` names the file (random IPv4 addresses).
//! * `literal+iso_code`, `ip+iso_code`: the lookup, then the string at `country`/`iso_code`:
//!   `Value::get` + `as_str` vs `matchy_result_get_string` (no copy); `c-at` is the same with a
//!   prepared path (`matchy_path_new` once, `matchy_result_get_string_at`); `c-get_value` with
//!   `matchy_result_get_value` (a NUL-terminated copy of the string).
//!
//! After criterion's runs, each case is timed again as interleaved passes of the two sides
//! (`benches/support/mod.rs` of the root crate): on a shared machine that ratio is the robust one.
//!
//! The C functions are normal Rust items: this bench compiles the crate's modules into itself
//! (the crate builds no rlib, see Cargo.toml) and calls each one through a function pointer
//! hidden from the optimiser, so that, as from C, nothing is inlined into the loop. Linked
//! statically, the engine's thread-locals cost less here than inside libmatchy.so (~15
//! instructions per lookup, see `overhead_instructions` in tests/c_api.rs for the C program).
//!
//! Run: `cargo bench -p matchy-ffi --bench overhead`.

// The crate's modules compiled in here: what this bench does not call is unused, and cargo
// builds benches with `cfg(test)`, whose test modules find no `#[test]` harness to use them.
#![allow(non_camel_case_types, dead_code, unused_imports)]
#![deny(unsafe_op_in_unsafe_fn)]

#[path = "../../benches/support/mod.rs"]
mod ab;
#[path = "../src/db.rs"]
mod db;
#[path = "../src/error.rs"]
mod error;
#[path = "support/overhead_data.rs"]
mod overhead_data;
#[path = "../src/result.rs"]
mod result;

use std::ffi::{c_char, c_int, CString};
use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ab::{Ab, Rng};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use db::{matchy_close, matchy_open, matchy_t};
use error::MATCHY_OK;
use result::{
    matchy_lookup, matchy_lookup_ip_bytes, matchy_lookup_n, matchy_path_free, matchy_path_new,
    matchy_path_t, matchy_result_free, matchy_result_get_string, matchy_result_get_string_at,
    matchy_result_get_value, matchy_result_new, matchy_result_t, matchy_value_t,
};

fn database() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ffi-overhead.mxy");
    overhead_data::write_database(&path);
    path
}

/// The root crate's lookup bench's 1M literals, with 2^18 of its queries (50% hits).
fn large_literal_database() -> (PathBuf, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ffi-overhead-literals-1m.mxy");
    let (keys, queries) = ab::literal_keys_and_queries(&mut Rng(99), 1 << 18);
    let mut b = engine::DatabaseBuilder::new();
    for (i, k) in keys.iter().enumerate() {
        let id = engine::DataValue::Uint32(i as u32 % 1000);
        b.add(k, engine::DataValue::Map(vec![("id".into(), id)]))
            .unwrap();
    }
    b.write_to(&path).unwrap();
    (path, queries)
}

type Lookup = unsafe extern "C" fn(*const matchy_t, *const c_char, *mut matchy_result_t) -> c_int;
type LookupN =
    unsafe extern "C" fn(*const matchy_t, *const c_char, usize, *mut matchy_result_t) -> c_int;
type LookupIp =
    unsafe extern "C" fn(*const matchy_t, *const u8, usize, *mut matchy_result_t) -> c_int;
type GetString = unsafe extern "C" fn(
    *const matchy_result_t,
    usize,
    *const *const c_char,
    *mut *const c_char,
    *mut usize,
) -> c_int;
type GetStringAt = unsafe extern "C" fn(
    *const matchy_result_t,
    usize,
    *const matchy_path_t,
    *mut *const c_char,
    *mut usize,
) -> c_int;
type GetValue = unsafe extern "C" fn(
    *const matchy_result_t,
    usize,
    *const *const c_char,
    *mut matchy_value_t,
) -> c_int;

/// The C side: a handle, one reused result, the C functions behind opaque pointers.
struct C {
    db: *mut matchy_t,
    result: *mut matchy_result_t,
    lookup: Lookup,
    lookup_n: LookupN,
    lookup_ip: LookupIp,
    get_string: GetString,
    get_string_at: GetStringAt,
    get_value: GetValue,
}

impl C {
    fn open(path: &Path) -> C {
        let path = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; the handle and result are released in `drop`.
        let (db, result) = unsafe { (matchy_open(path.as_ptr()), matchy_result_new()) };
        assert!(!db.is_null() && !result.is_null());
        C {
            db,
            result,
            lookup: black_box(matchy_lookup as Lookup),
            lookup_n: black_box(matchy_lookup_n as LookupN),
            lookup_ip: black_box(matchy_lookup_ip_bytes as LookupIp),
            get_string: black_box(matchy_result_get_string as GetString),
            get_string_at: black_box(matchy_result_get_string_at as GetStringAt),
            get_value: black_box(matchy_result_get_value as GetValue),
        }
    }
}

impl Drop for C {
    fn drop(&mut self) {
        // SAFETY: live handles from `open`, released once.
        unsafe {
            matchy_result_free(self.result);
            matchy_close(self.db);
        }
    }
}

/// One pass over a case's queries; returns a checksum.
type Pass<'a> = Box<dyn FnMut() -> usize + 'a>;

/// One case: the Rust pass and the C pass over the same queries.
struct Case<'a> {
    name: &'static str,
    items: usize,
    rust: Pass<'a>,
    c: Pass<'a>,
    /// Further C variants (criterion only).
    c_more: Vec<(&'static str, Pass<'a>)>,
}

/// An IPv4 case: `Database::lookup_ip` vs `matchy_lookup_ip_bytes` on the same addresses.
fn ip_case<'a>(
    name: &'static str,
    db: &'a engine::Database,
    cdb: &'a C,
    octets: &'a [[u8; 4]],
) -> Case<'a> {
    Case {
        name,
        items: octets.len(),
        rust: Box::new(move || {
            let mut n = 0;
            for a in octets {
                n += db.lookup_ip(IpAddr::from(*a)).unwrap().is_some() as usize;
            }
            n
        }),
        c: Box::new(move || {
            let mut n = 0;
            for a in octets {
                // SAFETY: live handles, 4 readable bytes.
                n += unsafe { (cdb.lookup_ip)(cdb.db, a.as_ptr(), 4, cdb.result) == MATCHY_OK }
                    as usize;
            }
            n
        }),
        c_more: Vec::new(),
    }
}

fn bench_overhead(c: &mut Criterion) {
    let path = database();
    let db = engine::Database::from(&path).open().unwrap();
    let cdb = C::open(&path);
    let path_c: [*const c_char; 3] = [c"country".as_ptr(), c"iso_code".as_ptr(), std::ptr::null()];
    let path_c = path_c.as_ptr();
    // SAFETY: two NUL-terminated elements; released at the end.
    let prepared = unsafe { matchy_path_new(path_c, 2) };
    assert!(!prepared.is_null());
    let (db, cdb) = (&db, &cdb);

    let text = |kind: &str| -> (Vec<String>, Vec<CString>) {
        let queries = overhead_data::queries(kind);
        let c_queries = queries
            .iter()
            .map(|q| CString::new(q.as_str()).unwrap())
            .collect();
        (queries, c_queries)
    };
    let ips: Vec<IpAddr> = overhead_data::queries("ip")
        .iter()
        .map(|q| q.parse().unwrap())
        .collect();
    let octets: Vec<[u8; 4]> = ips
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(_) => unreachable!("the bench queries are IPv4"),
        })
        .collect();
    let (ips, octets) = (&ips, &octets);
    // The same IPv4 case on a real file, if there is one (as in the root crate's lookup bench):
    // random addresses, most answered by the first table of the index.
    let geolite = std::env::var_os("MATCHY_GEOLITE2_COUNTRY").map(|p| {
        let p = PathBuf::from(p);
        let mut r = Rng(7);
        let octets: Vec<[u8; 4]> = (0..1 << 16)
            .map(|_| (r.next() as u32).to_be_bytes())
            .collect();
        (
            engine::Database::from(&p).open().unwrap(),
            C::open(&p),
            octets,
        )
    });

    // For the value cases (declared before `cases`, which borrows them).
    let (literal_queries, literal_c_queries) = text("literal");

    let (large_path, large_queries) = large_literal_database();
    let large_db = engine::Database::from(&large_path).open().unwrap();
    let large_cdb = C::open(&large_path);

    let mut cases: Vec<Case> = Vec::new();
    let texts = [
        ("literal", db, cdb, text("literal")),
        ("glob", db, cdb, text("glob")),
        ("miss", db, cdb, text("miss")),
        ("ip-text", db, cdb, text("ip")),
        ("literal-1m", &large_db, &large_cdb, {
            let c_queries = large_queries
                .iter()
                .map(|q| CString::new(q.as_str()).unwrap())
                .collect();
            (large_queries, c_queries)
        }),
    ];
    for (name, db, cdb, (queries, c_queries)) in texts {
        let items = queries.len();
        cases.push(Case {
            name,
            items,
            rust: Box::new(move || {
                let mut n = 0;
                for q in &queries {
                    n += db.lookup(q).unwrap().len();
                }
                n
            }),
            c: Box::new(move || {
                let mut n = 0;
                for q in &c_queries {
                    // SAFETY: live handles, a NUL-terminated query.
                    n += unsafe { (cdb.lookup)(cdb.db, q.as_ptr(), cdb.result) == MATCHY_OK }
                        as usize;
                }
                n
            }),
            c_more: Vec::new(),
        });
    }
    let (queries, _) = text("literal");
    cases.push(Case {
        name: "literal-n",
        items: queries.len(),
        rust: Box::new({
            let queries = queries.clone();
            move || queries.iter().map(|q| db.lookup(q).unwrap().len()).sum()
        }),
        c: Box::new(move || {
            let mut n = 0;
            for q in &queries {
                // SAFETY: live handles, `q.len()` readable bytes.
                let rc = unsafe { (cdb.lookup_n)(cdb.db, q.as_ptr().cast(), q.len(), cdb.result) };
                n += (rc == MATCHY_OK) as usize;
            }
            n
        }),
        c_more: Vec::new(),
    });
    cases.push(ip_case("ip", db, cdb, octets));
    if let Some((db, cdb, octets)) = &geolite {
        cases.push(ip_case("ip-geolite2", db, cdb, octets));
    }

    // Value reads: the lookup, then the string at country/iso_code.
    let read_rust = |m: &engine::Match| match m.value().get(&overhead_data::PATH).unwrap() {
        Some(v) => v.as_str().unwrap().len(),
        None => 0,
    };
    // SAFETY (the three readers): a live result, a NULL-terminated path / a live prepared path,
    // writable outputs.
    let get_string = move || unsafe {
        let (mut s, mut len) = (std::ptr::null(), 0);
        let rc = (cdb.get_string)(cdb.result, 0, path_c, &mut s, &mut len);
        if rc == MATCHY_OK {
            len
        } else {
            0
        }
    };
    let get_string_at = move || unsafe {
        let (mut s, mut len) = (std::ptr::null(), 0);
        let rc = (cdb.get_string_at)(cdb.result, 0, prepared, &mut s, &mut len);
        if rc == MATCHY_OK {
            len
        } else {
            0
        }
    };
    let get_value = move || unsafe {
        let mut v = std::mem::MaybeUninit::<matchy_value_t>::uninit();
        if (cdb.get_value)(cdb.result, 0, path_c, v.as_mut_ptr()) == MATCHY_OK {
            v.assume_init().size
        } else {
            0
        }
    };
    type Read<'a> = &'a dyn Fn() -> usize;
    let (queries, c_queries) = (&literal_queries, &literal_c_queries);
    let literal_then = move |read: Read<'_>| {
        let mut n = 0;
        for q in c_queries {
            // SAFETY: live handles, a NUL-terminated query.
            if unsafe { (cdb.lookup)(cdb.db, q.as_ptr(), cdb.result) } == MATCHY_OK {
                n += read();
            }
        }
        n
    };
    let ip_then = move |read: Read<'_>| {
        let mut n = 0;
        for a in octets {
            // SAFETY: live handles, 4 readable bytes.
            if unsafe { (cdb.lookup_ip)(cdb.db, a.as_ptr(), 4, cdb.result) } == MATCHY_OK {
                n += read();
            }
        }
        n
    };
    cases.push(Case {
        name: "literal+iso_code",
        items: queries.len(),
        rust: Box::new(move || {
            let mut n = 0;
            for q in queries {
                if let Some(m) = db.lookup(q).unwrap().first() {
                    n += read_rust(m);
                }
            }
            n
        }),
        c: Box::new(move || literal_then(&get_string)),
        c_more: vec![
            ("c-at", Box::new(move || literal_then(&get_string_at))),
            ("c-get_value", Box::new(move || literal_then(&get_value))),
        ],
    });
    cases.push(Case {
        name: "ip+iso_code",
        items: ips.len(),
        rust: Box::new(move || {
            let mut n = 0;
            for &ip in ips {
                if let Some(m) = db.lookup_ip(ip).unwrap() {
                    n += read_rust(&m);
                }
            }
            n
        }),
        c: Box::new(move || ip_then(&get_string)),
        c_more: vec![("c-at", Box::new(move || ip_then(&get_string_at)))],
    });

    for case in &mut cases {
        assert_eq!((case.rust)(), (case.c)(), "{}: both sides agree", case.name);
        let mut g = c.benchmark_group(format!("overhead/{}", case.name));
        g.throughput(Throughput::Elements(case.items as u64));
        g.bench_function("rust", |b| b.iter(|| black_box((case.rust)())));
        g.bench_function("c", |b| b.iter(|| black_box((case.c)())));
        for (name, f) in &mut case.c_more {
            g.bench_function(*name, |b| b.iter(|| black_box(f())));
        }
        g.finish();
    }
    // The robust numbers on a shared machine: passes of the two sides interleaved.
    for case in &mut cases {
        let (rust, c) = (&mut case.rust, &mut case.c);
        let ab = Ab::run(
            201,
            case.items,
            || {
                black_box(rust());
            },
            || {
                black_box(c());
            },
        );
        ab.report(&format!("overhead/{} interleaved", case.name), "rust", "c");
    }
    // SAFETY: made above, released once.
    unsafe { matchy_path_free(prepared) };
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    targets = bench_overhead
}
criterion_main!(benches);
