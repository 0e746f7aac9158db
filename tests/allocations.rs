//! The allocation promises: an IP lookup allocates nothing, and a string lookup allocates
//! nothing when it finds nothing (literal and glob misses, case-insensitive too).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use matchy::{DataValue, Database, DatabaseBuilder, MatchMode};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is thread-local and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(|c| c.get());
    f();
    ALLOCS.with(|c| c.get()) - before
}

fn db(mode: MatchMode) -> Database {
    let mut b = DatabaseBuilder::new();
    b.match_mode(mode);
    let d = || DataValue::Map(vec![("k".into(), DataValue::String("v".into()))]);
    for i in 0..2000 {
        b.add(&format!("10.{}.{}.0/24", i / 256, i % 256), d())
            .unwrap();
        b.add(&format!("host{i}.example.com"), d()).unwrap();
        b.add(&format!("*.zone{i}.example"), d()).unwrap();
        b.add(&format!("pre{i}-*"), d()).unwrap();
        b.add(&format!("*mid{i}dle*"), d()).unwrap();
    }
    b.add("2001:db8::/32", d()).unwrap();
    Database::from_bytes(b.build().unwrap()).unwrap()
}

#[test]
fn ip_lookups_allocate_nothing() {
    let db = db(MatchMode::CaseSensitive);
    db.lookup_ip("10.1.2.3".parse().unwrap()).unwrap(); // first use pins this thread
    for q in [
        "10.1.2.3",
        "10.7.200.1",
        "192.0.2.1",
        "2001:db8::1",
        "::ffff:10.1.2.3",
    ] {
        let ip = q.parse().unwrap();
        let n = allocations(|| {
            let m = db.lookup_ip(ip).unwrap();
            if let Some(m) = &m {
                let _ = m.value().get(&["k"]).unwrap();
                let _ = m.network();
            }
        });
        assert_eq!(n, 0, "lookup_ip({q}) allocated");
        // Through the string API too, when only the IP matches.
        assert_eq!(
            allocations(|| drop(db.lookup(q).unwrap())),
            0,
            "lookup({q}) allocated"
        );
    }
}

#[test]
fn string_misses_allocate_nothing() {
    for mode in [MatchMode::CaseSensitive, MatchMode::CaseInsensitive] {
        let db = db(mode);
        db.lookup("warm-up").unwrap();
        for q in [
            "host99999.example.com",
            "www.zone99999.example",
            "nomatch",
            "PRE-x",
            "a-mid-dle",
            "",
        ] {
            let n = allocations(|| assert!(db.lookup(q).unwrap().is_empty(), "{q}"));
            assert_eq!(n, 0, "{mode:?} miss {q:?} allocated");
        }
        // A single hit (the literal) allocates nothing either: one match is held inline.
        let n = allocations(|| assert_eq!(db.lookup("host7.example.com").unwrap().len(), 1));
        assert_eq!(n, 0, "{mode:?} single hit allocated");
    }
}
