//! Live-reload soak (bounded: ~15 s, or 400 swaps, whichever comes first): four readers hammer
//! lookups while a publisher renames hundreds of new files into place, 30% of them broken.
//! Promises: no lookup fails, no lookup mixes versions, versions never go backwards within a
//! thread, every good file is served and every bad one refused, and memory stays flat (no
//! mapping and no memory kept per swap).
//!
//! Run alone with `cargo test --test reload_soak -- --nocapture` to see the figures.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use matchy::{DataValue, Database, DatabaseBuilder, ReloadEvent, ReloadKind};

const Q: &str = "10.1.2.3";
const MAX_SWAPS: u32 = 400;
const MAX_TIME: Duration = Duration::from_secs(15);
/// Fewer swaps than this in MAX_TIME means the watcher is far too slow, not a loaded machine.
const MIN_SWAPS: u32 = 100;

fn tag(version: u32) -> DataValue {
    DataValue::Map(vec![("version".into(), DataValue::Uint32(version))])
}

/// Every answer to `Q` carries `version` three times (IP network, literal, glob); the bulk
/// literals give the file some pages.
fn db_bytes(version: u32) -> Vec<u8> {
    let mut b = DatabaseBuilder::new();
    b.build_epoch(0);
    b.add("10.0.0.0/8", tag(version)).unwrap();
    b.add("literal:10.1.2.3", tag(version)).unwrap();
    b.add("*", tag(version)).unwrap();
    for i in 0..1000u32 {
        b.add(
            &format!("host{i}.bulk.example"),
            DataValue::Map(vec![("n".into(), DataValue::Uint32(i))]),
        )
        .unwrap();
    }
    b.build().unwrap()
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A broken variant of `good`, by kind: truncated, empty, random, or flipped bytes in the middle.
fn broken(good: &[u8], rng: &mut XorShift) -> Vec<u8> {
    match rng.next() % 4 {
        0 => good[..(rng.next() as usize % good.len())].to_vec(),
        1 => Vec::new(),
        2 => (0..good.len()).map(|_| rng.next() as u8).collect(),
        _ => {
            let mut b = good.to_vec();
            let at = good.len() / 4 + rng.next() as usize % (good.len() / 2);
            b[at] ^= 1 << (rng.next() % 8);
            b
        }
    }
}

fn rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Distinct files under `dir` mapped into this process.
fn mapped_files(dir: &Path) -> usize {
    let dir = dir.to_str().unwrap();
    let mut inodes: Vec<String> = fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir))
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .collect();
    inodes.sort();
    inodes.dedup();
    inodes.len()
}

#[derive(Default)]
struct ReaderTally {
    lookups: AtomicU64,
    failed: AtomicU64,
    mixed: AtomicU64,
    backwards: AtomicU64,
    last: AtomicU64,
}

#[test]
fn soak_four_readers_hundreds_of_swaps_thirty_percent_bad() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.mxy");
    let deploy = |n: u32, bytes: &[u8]| {
        let tmp = dir.path().join(format!("tmp-{n}.mxy"));
        fs::write(&tmp, bytes).unwrap();
        fs::rename(&tmp, &path).unwrap();
    };
    deploy(0, &db_bytes(1));
    let events: Arc<Mutex<Vec<ReloadEvent>>> = Arc::default();
    let ev2 = events.clone();
    let db = Arc::new(
        Database::from(&path)
            .auto_reload()
            .on_reload(move |ev| ev2.lock().unwrap().push(ev.clone()))
            .debounce(Duration::from_millis(20))
            .poll_interval(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(200))
            .open()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let tallies: Arc<Vec<ReaderTally>> = Arc::new((0..4).map(|_| ReaderTally::default()).collect());
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (db, stop, tallies) = (db.clone(), stop.clone(), tallies.clone());
            thread::spawn(move || {
                let t = &tallies[r];
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    t.lookups.fetch_add(1, Ordering::Relaxed);
                    let Ok(ms) = db.lookup(Q) else {
                        t.failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let v: Vec<u64> = ms
                        .iter()
                        .filter_map(|m| m.value().get(&["version"]).ok().flatten())
                        .filter_map(|v| v.as_u64().ok())
                        .collect();
                    if v.len() != 3 || v.iter().any(|&x| x != v[0]) {
                        t.mixed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if v[0] < last {
                        t.backwards.fetch_add(1, Ordering::Relaxed);
                    }
                    last = v[0];
                    t.last.store(last, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let events_of = |kind| {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    };
    let mut rng = XorShift(0x5EED_1234_ABCD_0001);
    let mut good = db_bytes(1);
    let (mut version, mut bad_count, mut swaps) = (1u32, 0usize, 0u32);
    let mut warm_rss = None;
    let start = Instant::now();
    while swaps < MAX_SWAPS && start.elapsed() < MAX_TIME {
        swaps += 1;
        let (reloaded, failed) = (
            events_of(ReloadKind::Reloaded),
            events_of(ReloadKind::Failed),
        );
        let bad = rng.next() % 10 < 3;
        if bad {
            bad_count += 1;
            deploy(swaps, &broken(&good, &mut rng));
        } else {
            version += 1;
            good = db_bytes(version);
            deploy(swaps, &good);
        }
        // Each swap is answered by exactly one event of the right kind.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (r, f) = (
                events_of(ReloadKind::Reloaded),
                events_of(ReloadKind::Failed),
            );
            if (r, f) == (reloaded + usize::from(!bad), failed + usize::from(bad)) {
                break;
            }
            assert!(
                Instant::now() < deadline && r <= reloaded + 1 && f <= failed + 1,
                "swap {swaps} (bad: {bad}): reloaded {reloaded}->{r}, failed {failed}->{f}"
            );
            thread::sleep(Duration::from_millis(2));
        }
        if swaps == 30 {
            warm_rss = Some(rss_kib());
        }
    }
    // Let every reader answer from the last good version, then stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tallies
        .iter()
        .any(|t| t.last.load(Ordering::Relaxed) != u64::from(version))
    {
        assert!(
            Instant::now() < deadline,
            "readers never saw version {version}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    let end_rss = rss_kib();
    let files_mapped = mapped_files(dir.path());
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }

    let sum = |f: fn(&ReaderTally) -> &AtomicU64| -> u64 {
        tallies.iter().map(|t| f(t).load(Ordering::Relaxed)).sum()
    };
    let (lookups, failed, mixed, backwards) = (
        sum(|t| &t.lookups),
        sum(|t| &t.failed),
        sum(|t| &t.mixed),
        sum(|t| &t.backwards),
    );
    let st = db.stats();
    let warm_rss = warm_rss.expect("reached warm-up");
    eprintln!(
        "soak: {swaps} swaps ({bad_count} bad) in {:.1?}; {lookups} lookups: {failed} failed, \
         {mixed} mixed, {backwards} backwards; RSS {warm_rss} KiB after warm-up, {end_rss} KiB \
         at the end; {files_mapped} file(s) mapped; stats {st:?}",
        start.elapsed()
    );
    assert!(swaps >= MIN_SWAPS, "only {swaps} swaps in {MAX_TIME:?}");
    assert!(bad_count > 0 && lookups > u64::from(swaps));
    assert_eq!((failed, mixed, backwards), (0, 0, 0));
    assert_eq!(st.successes, u64::from(version) - 1);
    assert_eq!(st.failures, bad_count as u64);
    assert_eq!(db.generation(), u64::from(version));
    assert_eq!(files_mapped, 1, "only the served file stays mapped");
    assert!(
        end_rss <= warm_rss + 4096,
        "RSS grew from {warm_rss} KiB to {end_rss} KiB over {swaps} swaps"
    );
}
