//! The price of the C boundary, measured in one run: each case runs the same queries against the
//! same file through the Rust API (`rust`) and through the exported C functions (`c`), so the
//! ratio of the two criterion medians is the overhead.
//!
//! * `literal`, `glob`, `miss`: `Database::lookup` vs `matchy_lookup`.
//! * `ip`: `Database::lookup_ip` vs `matchy_lookup_ip_bytes`.
//! * `literal+iso_code`, `ip+iso_code`: the lookup, then the string at `country`/`iso_code`:
//!   `Value::get` + `as_str` vs `matchy_result_get_string` (no copy); `c-get_value` is the same
//!   with `matchy_result_get_value` (a NUL-terminated copy of the string).
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

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use db::{matchy_close, matchy_open, matchy_t};
use error::MATCHY_OK;
use result::{
    matchy_lookup, matchy_lookup_ip_bytes, matchy_result_free, matchy_result_get_string,
    matchy_result_get_value, matchy_result_new, matchy_result_t, matchy_value_t,
};

fn database() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ffi-overhead.mxy");
    overhead_data::write_database(&path);
    path
}

type Lookup = unsafe extern "C" fn(*const matchy_t, *const c_char, *mut matchy_result_t) -> c_int;
type LookupIp =
    unsafe extern "C" fn(*const matchy_t, *const u8, usize, *mut matchy_result_t) -> c_int;
type GetString = unsafe extern "C" fn(
    *const matchy_result_t,
    usize,
    *const *const c_char,
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
    lookup_ip: LookupIp,
    get_string: GetString,
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
            lookup_ip: black_box(matchy_lookup_ip_bytes as LookupIp),
            get_string: black_box(matchy_result_get_string as GetString),
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

fn bench_overhead(c: &mut Criterion) {
    let path = database();
    let db = engine::Database::from(&path).open().unwrap();
    let cdb = C::open(&path);
    let path_c: [*const c_char; 3] = [c"country".as_ptr(), c"iso_code".as_ptr(), std::ptr::null()];
    let path_c = path_c.as_ptr();
    for kind in ["literal", "glob", "miss"] {
        let queries = overhead_data::queries(kind);
        let c_queries: Vec<CString> = queries
            .iter()
            .map(|q| CString::new(q.as_str()).unwrap())
            .collect();
        let mut g = c.benchmark_group(format!("overhead/{kind}"));
        g.throughput(Throughput::Elements(queries.len() as u64));
        g.bench_function("rust", |b| {
            b.iter(|| {
                let mut n = 0;
                for q in &queries {
                    n += db.lookup(q).unwrap().len();
                }
                black_box(n)
            })
        });
        g.bench_function("c", |b| {
            b.iter(|| {
                let mut n = 0;
                for q in &c_queries {
                    // SAFETY: live handles, a NUL-terminated query.
                    n += unsafe { (cdb.lookup)(cdb.db, q.as_ptr(), cdb.result) == MATCHY_OK }
                        as usize;
                }
                black_box(n)
            })
        });
        g.finish();
        if kind == "literal" {
            let mut g = c.benchmark_group("overhead/literal+iso_code");
            g.throughput(Throughput::Elements(queries.len() as u64));
            g.bench_function("rust", |b| {
                b.iter(|| {
                    let mut n = 0;
                    for q in &queries {
                        if let Some(m) = db.lookup(q).unwrap().first() {
                            if let Some(v) = m.value().get(&overhead_data::PATH).unwrap() {
                                n += v.as_str().unwrap().len();
                            }
                        }
                    }
                    black_box(n)
                })
            });
            g.bench_function("c", |b| {
                b.iter(|| {
                    let mut n = 0;
                    for q in &c_queries {
                        // SAFETY: live handles, a NUL-terminated query, a NULL-terminated path,
                        // writable outputs.
                        unsafe {
                            if (cdb.lookup)(cdb.db, q.as_ptr(), cdb.result) == MATCHY_OK {
                                let (mut s, mut len) = (std::ptr::null(), 0);
                                if (cdb.get_string)(cdb.result, 0, path_c, &mut s, &mut len)
                                    == MATCHY_OK
                                {
                                    n += len;
                                }
                            }
                        }
                    }
                    black_box(n)
                })
            });
            g.bench_function("c-get_value", |b| {
                b.iter(|| {
                    let mut n = 0;
                    for q in &c_queries {
                        // SAFETY: as above.
                        unsafe {
                            if (cdb.lookup)(cdb.db, q.as_ptr(), cdb.result) == MATCHY_OK {
                                let mut v = std::mem::MaybeUninit::<matchy_value_t>::uninit();
                                if (cdb.get_value)(cdb.result, 0, path_c, v.as_mut_ptr())
                                    == MATCHY_OK
                                {
                                    n += v.assume_init().size;
                                }
                            }
                        }
                    }
                    black_box(n)
                })
            });
            g.finish();
        }
    }

    let queries: Vec<IpAddr> = overhead_data::queries("ip")
        .iter()
        .map(|q| q.parse().unwrap())
        .collect();
    let octets: Vec<[u8; 4]> = queries
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(_) => unreachable!("the bench queries are IPv4"),
        })
        .collect();
    let mut g = c.benchmark_group("overhead/ip");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("rust", |b| {
        b.iter(|| {
            let mut n = 0;
            for &ip in &queries {
                n += db.lookup_ip(ip).unwrap().is_some() as usize;
            }
            black_box(n)
        })
    });
    g.bench_function("c", |b| {
        b.iter(|| {
            let mut n = 0;
            for a in &octets {
                // SAFETY: live handles, 4 readable bytes.
                n += unsafe { (cdb.lookup_ip)(cdb.db, a.as_ptr(), 4, cdb.result) == MATCHY_OK }
                    as usize;
            }
            black_box(n)
        })
    });
    g.finish();
    let mut g = c.benchmark_group("overhead/ip+iso_code");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("rust", |b| {
        b.iter(|| {
            let mut n = 0;
            for &ip in &queries {
                if let Some(m) = db.lookup_ip(ip).unwrap() {
                    if let Some(v) = m.value().get(&overhead_data::PATH).unwrap() {
                        n += v.as_str().unwrap().len();
                    }
                }
            }
            black_box(n)
        })
    });
    g.bench_function("c", |b| {
        b.iter(|| {
            let mut n = 0;
            for a in &octets {
                // SAFETY: live handles, 4 readable bytes, a NULL-terminated path, writable
                // outputs.
                unsafe {
                    if (cdb.lookup_ip)(cdb.db, a.as_ptr(), 4, cdb.result) == MATCHY_OK {
                        let (mut s, mut len) = (std::ptr::null(), 0);
                        if (cdb.get_string)(cdb.result, 0, path_c, &mut s, &mut len) == MATCHY_OK {
                            n += len;
                        }
                    }
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    targets = bench_overhead
}
criterion_main!(benches);
