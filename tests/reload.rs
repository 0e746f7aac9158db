//! Live reload, end to end: the promises of `Database::from(path).auto_reload()` a user relies
//! on, each checked against real files in a temporary directory.
//!
//! Every fixture answers the query [`Q`] three times (its IP network, the literal `10.1.2.3` and
//! the glob `*`), each match tagged with the file's version, so one lookup shows which file
//! answered and whether all of its matches came from the same one. Waits poll a condition
//! against a deadline ([`WAIT`]); the only fixed sleeps are those that check something does
//! *not* happen.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use matchy::{DataValue, Database, DatabaseBuilder, ReloadEvent, ReloadKind};

const DEBOUNCE: Duration = Duration::from_millis(50);
const POLL: Duration = Duration::from_millis(100);
/// Deadline of any awaited condition: generous, since the machine may be loaded.
const WAIT: Duration = Duration::from_secs(15);
/// Long enough for the watcher to have acted on anything it was going to act on.
const SETTLE: Duration = Duration::from_millis(3 * (50 + 100));

/// Matched by the IP network, the literal and the glob of every fixture.
const Q: &str = "10.1.2.3";

fn tag(version: u32) -> DataValue {
    DataValue::Map(vec![("version".into(), DataValue::Uint32(version))])
}

/// A database whose every answer to [`Q`] (and to `key.example`) carries `version`; `bulk`
/// untagged literals make the file bigger.
fn db_bytes(version: u32, bulk: u32) -> Vec<u8> {
    let mut b = DatabaseBuilder::new();
    b.build_epoch(0);
    b.add("10.0.0.0/8", tag(version)).unwrap();
    b.add("literal:10.1.2.3", tag(version)).unwrap();
    b.add("key.example", tag(version)).unwrap();
    b.add("*", tag(version)).unwrap();
    for i in 0..bulk {
        b.add(
            &format!("host{i}.bulk.example"),
            DataValue::Map(vec![("n".into(), DataValue::Uint32(i))]),
        )
        .unwrap();
    }
    b.build().unwrap()
}

/// The versions of every match of `q`, in match order.
fn versions(db: &Database, q: &str) -> matchy::Result<Vec<u64>> {
    let ms = db.lookup(q)?;
    ms.iter()
        .map(|m| {
            Ok(m.value()
                .get(&["version"])?
                .map(|v| v.as_u64())
                .transpose()?
                .unwrap_or(u64::MAX))
        })
        .collect()
}

/// The version of the network holding 10.1.2.3, through `lookup_ip` (after a thousand IPv4
/// lookups of a version, through its in-memory index and the pin's pointer to it).
fn served_ip(db: &Database) -> u64 {
    let m = db
        .lookup_ip("10.1.2.3".parse().unwrap())
        .expect("lookup_ip failed")
        .expect("10.0.0.0/8 holds 10.1.2.3");
    m.value()
        .get(&["version"])
        .unwrap()
        .unwrap()
        .as_u64()
        .unwrap()
}

/// The version answering [`Q`]; panics unless all three matches come from one version.
fn served(db: &Database) -> u64 {
    let v = versions(db, Q).expect("lookup failed");
    assert_eq!(
        v.len(),
        3,
        "expected IP + literal + glob matches, got {v:?}"
    );
    assert!(v.iter().all(|&x| x == v[0]), "mixed versions {v:?}");
    v[0]
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// A temporary directory that deploys files the way a careful publisher does: write a
/// temporary file next to the destination, then rename it over the destination.
struct Dir {
    root: tempfile::TempDir,
    seq: AtomicUsize,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            root: tempfile::tempdir().unwrap(),
            seq: AtomicUsize::new(0),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
    fn deploy(&self, dest: &Path, bytes: &[u8]) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = dest.parent().unwrap().join(format!("tmp-{n}.mxy"));
        fs::write(&tmp, bytes).unwrap();
        fs::rename(&tmp, dest).unwrap();
    }
}

/// Every event the `on_reload` callback saw, with a way to wait for more.
#[derive(Clone, Default)]
struct Events(Arc<(Mutex<Vec<ReloadEvent>>, Condvar)>);

impl Events {
    fn callback(&self) -> impl Fn(&ReloadEvent) + Send + Sync + 'static {
        let me = self.clone();
        move |ev| {
            me.0 .0.lock().unwrap().push(ev.clone());
            me.0 .1.notify_all();
        }
    }
    fn all(&self) -> Vec<ReloadEvent> {
        self.0 .0.lock().unwrap().clone()
    }
    fn count(&self, kind: ReloadKind) -> usize {
        self.all().iter().filter(|e| e.kind == kind).count()
    }
    /// Wait until `n` events of `kind` were delivered; returns the last of them.
    fn wait_for(&self, kind: ReloadKind, n: usize) -> ReloadEvent {
        let deadline = Instant::now() + WAIT;
        let mut evs = self.0 .0.lock().unwrap();
        loop {
            let of_kind: Vec<&ReloadEvent> = evs.iter().filter(|e| e.kind == kind).collect();
            if of_kind.len() >= n {
                return of_kind[n - 1].clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {n} {kind:?} events; saw {:#?}",
                *evs
            );
            evs = self.0 .1.wait_timeout(evs, deadline - now).unwrap().0;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Inotify,
    Polling,
}

fn open(path: &Path, mode: Mode, events: &Events) -> Database {
    let db = Database::from(path)
        .auto_reload()
        .on_reload(events.callback())
        .debounce(DEBOUNCE)
        .poll_interval(POLL)
        .max_backoff(Duration::from_millis(400))
        .force_polling(mode == Mode::Polling)
        .open()
        .unwrap();
    let expected = match mode {
        Mode::Inotify => "inotify",
        Mode::Polling => "polling",
    };
    assert_eq!(db.stats().watch_mode, expected);
    db
}

// ---------------------------------------------------------------------------------------------
// Every replacement style, three times in a row, with inotify and with polling.

/// `setup` lays out version 1 and returns the path to open; `swap(v)` replaces it with version
/// `v`. Each swap must be delivered as `Reloaded` and then answered from.
fn three_in_a_row(mode: Mode, setup: impl FnOnce(&Dir) -> PathBuf, swap: impl Fn(&Dir, u32)) {
    let dir = Dir::new();
    let path = setup(&dir);
    let events = Events::default();
    let db = open(&path, mode, &events);
    assert_eq!(served(&db), 1);
    for v in 2..=4u32 {
        swap(&dir, v);
        let ev = events.wait_for(ReloadKind::Reloaded, v as usize - 1);
        assert_eq!(ev.generation, u64::from(v));
        assert_eq!(ev.path, path);
        assert!(ev.error.is_none());
        assert_eq!(served(&db), u64::from(v), "{mode:?}: swap {v} not served");
        assert_eq!(db.generation(), u64::from(v));
    }
    thread::sleep(SETTLE);
    let evs = events.all();
    assert!(
        evs.iter().all(|e| e.kind == ReloadKind::Reloaded),
        "{mode:?}: unexpected events {evs:#?}"
    );
    assert_eq!(evs.len(), 3, "{mode:?}: one event per swap, got {evs:#?}");
    let st = db.stats();
    assert_eq!((st.successes, st.failures, st.generation), (3, 0, 4));
}

fn rename_setup(dir: &Dir) -> PathBuf {
    let p = dir.path("db.mxy");
    dir.deploy(&p, &db_bytes(1, 0));
    p
}
fn rename_swap(dir: &Dir, v: u32) {
    dir.deploy(&dir.path("db.mxy"), &db_bytes(v, 0));
}

/// `cur.mxy -> vN.mxy`, swapped like `ln -s vN.mxy cur.tmp && mv -T cur.tmp cur.mxy`.
fn symlink_setup(dir: &Dir) -> PathBuf {
    fs::write(dir.path("v1.mxy"), db_bytes(1, 0)).unwrap();
    symlink("v1.mxy", dir.path("cur.mxy")).unwrap();
    dir.path("cur.mxy")
}
fn symlink_swap(dir: &Dir, v: u32) {
    fs::write(dir.path(&format!("v{v}.mxy")), db_bytes(v, 0)).unwrap();
    symlink(format!("v{v}.mxy"), dir.path("cur.tmp")).unwrap();
    fs::rename(dir.path("cur.tmp"), dir.path("cur.mxy")).unwrap();
}

/// Kubernetes ConfigMap volume: `db.mxy -> ..data/db.mxy`, `..data -> ..<timestamp>`; an
/// update writes a new timestamped directory, points `..data_tmp` at it, renames `..data_tmp`
/// over `..data`, then removes the old directory.
fn k8s_dir(v: u32) -> String {
    format!("..2024_01_01_00_00_{v:02}.000000001")
}
fn k8s_setup(dir: &Dir) -> PathBuf {
    fs::create_dir(dir.path(&k8s_dir(1))).unwrap();
    fs::write(dir.path(&k8s_dir(1)).join("db.mxy"), db_bytes(1, 0)).unwrap();
    symlink(k8s_dir(1), dir.path("..data")).unwrap();
    symlink("..data/db.mxy", dir.path("db.mxy")).unwrap();
    dir.path("db.mxy")
}
fn k8s_swap(dir: &Dir, v: u32) {
    fs::create_dir(dir.path(&k8s_dir(v))).unwrap();
    fs::write(dir.path(&k8s_dir(v)).join("db.mxy"), db_bytes(v, 0)).unwrap();
    symlink(k8s_dir(v), dir.path("..data_tmp")).unwrap();
    fs::rename(dir.path("..data_tmp"), dir.path("..data")).unwrap();
    fs::remove_dir_all(dir.path(&k8s_dir(v - 1))).unwrap();
}

/// The database's directory is removed and created again with a new file in it.
fn recreate_setup(dir: &Dir) -> PathBuf {
    fs::create_dir(dir.path("sub")).unwrap();
    let p = dir.path("sub").join("db.mxy");
    dir.deploy(&p, &db_bytes(1, 0));
    p
}
fn recreate_swap(dir: &Dir, v: u32) {
    fs::remove_dir_all(dir.path("sub")).unwrap();
    fs::create_dir(dir.path("sub")).unwrap();
    dir.deploy(&dir.path("sub").join("db.mxy"), &db_bytes(v, 0));
}

#[test]
fn rename_is_detected_three_times_inotify() {
    three_in_a_row(Mode::Inotify, rename_setup, rename_swap);
}
#[test]
fn rename_is_detected_three_times_polling() {
    three_in_a_row(Mode::Polling, rename_setup, rename_swap);
}
#[test]
fn symlink_swap_is_detected_three_times_inotify() {
    three_in_a_row(Mode::Inotify, symlink_setup, symlink_swap);
}
#[test]
fn symlink_swap_is_detected_three_times_polling() {
    three_in_a_row(Mode::Polling, symlink_setup, symlink_swap);
}
#[test]
fn kubernetes_configmap_swap_is_detected_three_times_inotify() {
    three_in_a_row(Mode::Inotify, k8s_setup, k8s_swap);
}
#[test]
fn kubernetes_configmap_swap_is_detected_three_times_polling() {
    three_in_a_row(Mode::Polling, k8s_setup, k8s_swap);
}
#[test]
fn recreated_directory_is_detected_three_times_inotify() {
    three_in_a_row(Mode::Inotify, recreate_setup, recreate_swap);
}
#[test]
fn recreated_directory_is_detected_three_times_polling() {
    three_in_a_row(Mode::Polling, recreate_setup, recreate_swap);
}

/// A watch follows the directory's inode, so a recreated directory must be watched again:
/// with the poll tick out of the picture (60 s), recreations and the plain renames after them
/// are still detected.
#[test]
fn recreated_directory_is_watched_again() {
    let dir = Dir::new();
    let path = recreate_setup(&dir);
    let events = Events::default();
    let db = Database::from(&path)
        .auto_reload()
        .on_reload(events.callback())
        .debounce(DEBOUNCE)
        .poll_interval(Duration::from_secs(60))
        .open()
        .unwrap();
    let mut reloads = 0;
    for v in 2..=4u32 {
        recreate_swap(&dir, v);
        reloads += 1;
        events.wait_for(ReloadKind::Reloaded, reloads);
        assert_eq!(served(&db), u64::from(v));
        dir.deploy(&path, &db_bytes(v + 10, 0));
        reloads += 1;
        events.wait_for(ReloadKind::Reloaded, reloads);
        assert_eq!(served(&db), u64::from(v) + 10);
    }
    let st = db.stats();
    assert_eq!((st.watch_mode, st.watch_note), ("inotify", None));
}

// ---------------------------------------------------------------------------------------------
// Bad files never replace a good one.

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `good` with the matchy `format_version` (a uint64 1, encoded `01 02 01` after its key) set
/// to 2; nothing else changes, so every checksum the standard validation reads still holds.
fn with_format_version_2(good: &[u8]) -> Vec<u8> {
    let key = b"format_version";
    let at = good
        .windows(key.len())
        .rposition(|w| w == key)
        .expect("format_version key in the metadata")
        + key.len();
    assert_eq!(&good[at..at + 3], &[0x01, 0x02, 0x01], "uint64 1 encoding");
    let mut bad = good.to_vec();
    bad[at + 2] = 2;
    bad
}

/// The bad-file corpus: (name, bytes, a word the error must contain).
fn bad_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let good = db_bytes(99, 300);
    let mut random = vec![0u8; good.len()];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    random.iter_mut().for_each(|b| *b = rng.next() as u8);
    // Flip bytes in the middle: inside the indexes, far from the metadata at the end.
    let mut corrupt = good.clone();
    let mid = good.len() / 2;
    let meta = Database::from_bytes(good.clone())
        .unwrap()
        .info()
        .metadata_offset as usize;
    assert!(
        mid + 16 < meta,
        "the flipped bytes must lie before the metadata"
    );
    corrupt[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0xA5);
    vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("zero-length", Vec::new()),
        ("random bytes", random),
        ("corrupt body", corrupt),
        ("wrong format version", with_format_version_2(&good)),
    ]
}

fn bad_files_keep_the_old_version_serving(mode: Mode) {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let events = Events::default();
    let db = open(&path, mode, &events);
    let corpus = bad_corpus();
    for (i, (name, bytes)) in corpus.iter().enumerate() {
        dir.deploy(&path, bytes);
        let ev = events.wait_for(ReloadKind::Failed, i + 1);
        let err = ev.error.as_deref().unwrap_or("");
        assert!(!err.is_empty(), "{name}: Failed without a reason");
        assert!(
            err.contains(path.to_str().unwrap()),
            "{name}: the error names the file: {err}"
        );
        if *name == "wrong format version" {
            assert!(err.contains("format version 2"), "{name}: {err}");
        }
        assert_eq!(ev.generation, 1, "{name}");
        assert_eq!(served(&db), 1, "{name}: the old version must keep serving");
        let st = db.stats();
        assert_eq!(st.failures, i as u64 + 1, "{name}: {st:?}");
        assert_eq!(
            st.failures_by_reason.values().sum::<u64>(),
            st.failures,
            "{name}: {st:?}"
        );
        assert_eq!(st.successes, 0);
    }
    // A good file after all that is picked up (backoff is bounded by max_backoff).
    dir.deploy(&path, &db_bytes(2, 0));
    let ev = events.wait_for(ReloadKind::Reloaded, 1);
    assert_eq!(ev.generation, 2);
    assert_eq!(served(&db), 2);
    let st = db.stats();
    assert_eq!((st.successes, st.failures), (1, corpus.len() as u64));
    assert!(st.last_success_unix.is_some());
    // Each bad file was reported once: a broken file is not retried until it changes.
    assert_eq!(events.count(ReloadKind::Failed), corpus.len());
}

#[test]
fn bad_files_keep_the_old_version_serving_inotify() {
    bad_files_keep_the_old_version_serving(Mode::Inotify);
}
#[test]
fn bad_files_keep_the_old_version_serving_polling() {
    bad_files_keep_the_old_version_serving(Mode::Polling);
}

// ---------------------------------------------------------------------------------------------
// Bursts and callbacks.

/// With the default debounce (200 ms), twenty renames 10 ms apart are one burst. Should the
/// writer itself stall for longer than the debounce (an overloaded machine), that quiet period
/// legitimately ends a burst: each such stall allows one more reload.
#[test]
fn a_burst_of_twenty_writes_gives_at_most_two_reloads() {
    let debounce = Duration::from_millis(200);
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let events = Events::default();
    let db = Database::from(&path)
        .auto_reload()
        .on_reload(events.callback())
        .debounce(debounce)
        .poll_interval(POLL)
        .open()
        .unwrap();
    let files: Vec<Vec<u8>> = (2..=21).map(|v| db_bytes(v, 0)).collect();
    let mut stalls = 0;
    let mut last = Instant::now();
    for bytes in &files {
        dir.deploy(&path, bytes);
        let now = Instant::now();
        if now - last > debounce {
            stalls += 1;
        }
        last = now;
        thread::sleep(Duration::from_millis(10));
    }
    wait_until("the last version of the burst", || served(&db) == 21);
    thread::sleep(debounce + SETTLE);
    let reloads = events.count(ReloadKind::Reloaded);
    assert!(
        (1..=2 + stalls).contains(&reloads),
        "{reloads} reloads for one burst (writer stalls > debounce: {stalls}): {:#?}",
        events.all()
    );
    assert_eq!(events.count(ReloadKind::Failed), 0);
    assert_eq!(served(&db), 21);
}

/// A steady trickle of writes, each within the debounce of the last, cannot postpone reloads
/// forever: `max_debounce_wait` forces a check while the trickle goes on.
#[test]
fn a_steady_trickle_cannot_postpone_reloads_forever() {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let events = Events::default();
    let db = Database::from(&path)
        .auto_reload()
        .on_reload(events.callback())
        .debounce(Duration::from_millis(200))
        .max_debounce_wait(Duration::from_millis(300))
        .poll_interval(POLL)
        .open()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut v = 1;
    while events.count(ReloadKind::Reloaded) == 0 {
        assert!(
            Instant::now() < deadline,
            "no reload during a trickle of {v} writes"
        );
        v += 1;
        dir.deploy(&path, &db_bytes(v, 0));
        thread::sleep(Duration::from_millis(20));
    }
    assert!(served(&db) > 1);
}

#[test]
fn a_slow_callback_does_not_stop_later_reloads() {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let events = Events::default();
    let record = events.callback();
    let db = Database::from(&path)
        .auto_reload()
        .debounce(DEBOUNCE)
        .poll_interval(POLL)
        .on_reload(move |ev| {
            record(ev);
            thread::sleep(Duration::from_millis(300));
        })
        .open()
        .unwrap();
    dir.deploy(&path, &db_bytes(2, 0));
    events.wait_for(ReloadKind::Reloaded, 1);
    // The callback is asleep now: this swap arrives while the watcher thread is busy.
    dir.deploy(&path, &db_bytes(3, 0));
    let ev = events.wait_for(ReloadKind::Reloaded, 2);
    assert_eq!(ev.generation, 3);
    assert_eq!(served(&db), 3);
    dir.deploy(&path, &db_bytes(4, 0));
    events.wait_for(ReloadKind::Reloaded, 3);
    assert_eq!(served(&db), 4);
}

#[test]
fn a_panicking_callback_does_not_stop_later_reloads() {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let events = Events::default();
    let record = events.callback();
    let db = Database::from(&path)
        .auto_reload()
        .debounce(DEBOUNCE)
        .poll_interval(POLL)
        .on_reload(move |ev| {
            record(ev);
            panic!("callback panics on purpose (expected in this test)");
        })
        .open()
        .unwrap();
    for v in 2..=4u32 {
        dir.deploy(&path, &db_bytes(v, 0));
        events.wait_for(ReloadKind::Reloaded, v as usize - 1);
        assert_eq!(served(&db), u64::from(v));
        // The panic is counted after the callback unwinds.
        wait_until("callback_panics to count", || {
            db.stats().callback_panics == u64::from(v - 1)
        });
    }
}

// ---------------------------------------------------------------------------------------------
// What readers see.

/// Readers hammer while a writer flips hundreds of versions in (renames, made effective by
/// `reload_now` for speed, while the inotify watcher races it): every answer comes wholly from
/// one version, versions never go backwards within a thread, and no lookup fails.
#[test]
fn every_answer_comes_wholly_from_one_version() {
    const FLIPS: u32 = 300;
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let events = Events::default();
    let db = Arc::new(open(&path, Mode::Inotify, &events));
    let files: Vec<Vec<u8>> = (2..=FLIPS + 1).map(|v| db_bytes(v, 0)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (db, stop) = (db.clone(), stop.clone());
            thread::spawn(move || {
                let (mut n, mut last) = (0u64, 0u64);
                // Until the writer is done and this reader has seen the last version.
                while !(stop.load(Ordering::Relaxed) && last == u64::from(FLIPS) + 1) {
                    // Alternate queries so the IP path (as text, and as an address through
                    // the IPv4 index) and the string path are crossed.
                    let (q, want) =
                        [(Q, 3), ("key.example", 2), ("lookup_ip 10.1.2.3", 1)][(n % 3) as usize];
                    let v = if want == 1 {
                        vec![served_ip(&db)]
                    } else {
                        versions(&db, q)
                            .unwrap_or_else(|e| panic!("reader {r}: lookup {q} failed: {e}"))
                    };
                    assert_eq!(v.len(), want, "reader {r}: {q} -> {v:?}");
                    assert!(v.iter().all(|&x| x == v[0]), "reader {r}: mixed {v:?}");
                    assert!(
                        v[0] >= last,
                        "reader {r}: went back from {last} to {}",
                        v[0]
                    );
                    last = v[0];
                    n += 1;
                }
                (n, last)
            })
        })
        .collect();
    for (i, bytes) in files.iter().enumerate() {
        let v = i as u64 + 2;
        dir.deploy(&path, bytes);
        let ev = db.reload_now().unwrap();
        // The watcher may have won the race: then the file is already served.
        assert!(
            matches!(ev.kind, ReloadKind::Reloaded | ReloadKind::Skipped),
            "{ev:?}"
        );
        assert_eq!(served(&db), v);
        assert_eq!(db.generation(), v, "one generation per version");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let (n, last) = r.join().expect("a reader failed");
        assert!(n > 0);
        assert_eq!(last, u64::from(FLIPS) + 1);
    }
    assert_eq!(db.generation(), u64::from(FLIPS) + 1);
    assert_eq!(events.count(ReloadKind::Failed), 0);
}

/// After `Reloaded` is delivered (or `reload_now` returned it), no thread answers from the old
/// file: each reader reads the published generation, then looks up, and must see at least that
/// version (version == generation by construction). Every round waits until each reader has
/// made a lookup after the publication, so the check is never vacuous.
fn no_thread_answers_from_the_old_file(manual: bool) {
    const ROUNDS: u32 = 12;
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let published = Arc::new(AtomicU64::new(1));
    let p2 = published.clone();
    let events = Events::default();
    let record = events.callback();
    let db = Arc::new(
        Database::from(&path)
            .auto_reload()
            .debounce(DEBOUNCE)
            .poll_interval(POLL)
            .on_reload(move |ev| {
                if ev.kind == ReloadKind::Reloaded {
                    p2.fetch_max(ev.generation, Ordering::SeqCst);
                }
                record(ev);
            })
            .open()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Per reader: the newest publication it has verified a lookup against.
    let verified: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (db, stop, published, verified) = (
                db.clone(),
                stop.clone(),
                published.clone(),
                verified.clone(),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let p = published.load(Ordering::SeqCst);
                    let v = served(&db);
                    assert!(
                        v >= p,
                        "reader {r}: answered from {v} after {p} was delivered"
                    );
                    let v = served_ip(&db);
                    assert!(
                        v >= p,
                        "reader {r}: lookup_ip answered from {v} after {p} was delivered"
                    );
                    verified[r].store(p, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for v in 2..=ROUNDS + 1 {
        dir.deploy(&path, &db_bytes(v, 0));
        if manual {
            let ev = db.reload_now().unwrap();
            if ev.kind == ReloadKind::Reloaded {
                published.fetch_max(ev.generation, Ordering::SeqCst);
            }
        }
        wait_until("the reload to be published", || {
            published.load(Ordering::SeqCst) == u64::from(v)
        });
        wait_until("every reader to look up after the publication", || {
            verified
                .iter()
                .all(|x| x.load(Ordering::SeqCst) >= u64::from(v))
                || readers.iter().any(|r| r.is_finished())
        });
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("a reader answered from the old file");
    }
}

#[test]
fn after_reloaded_is_delivered_no_thread_answers_from_the_old_file() {
    no_thread_answers_from_the_old_file(false);
}
#[test]
fn after_reload_now_returns_no_thread_answers_from_the_old_file() {
    no_thread_answers_from_the_old_file(true);
}

// ---------------------------------------------------------------------------------------------
// Closing.

#[test]
fn no_callback_runs_after_drop_returns() {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (s2, f2) = (started.clone(), finished.clone());
    let db = Database::from(&path)
        .auto_reload()
        .debounce(DEBOUNCE)
        .poll_interval(POLL)
        .on_reload(move |_| {
            s2.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(200));
            f2.fetch_add(1, Ordering::SeqCst);
        })
        .open()
        .unwrap();
    dir.deploy(&path, &db_bytes(2, 0));
    wait_until("the callback to start", || {
        started.load(Ordering::SeqCst) == 1
    });
    // Drop while the callback sleeps: drop waits for it, and nothing runs afterwards.
    drop(db);
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "drop returned mid-callback"
    );
    dir.deploy(&path, &db_bytes(3, 0));
    thread::sleep(SETTLE);
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "a callback ran after drop"
    );
}

/// Set when dropped: the callback owns one, so it is set once the watcher thread has let go of
/// the shared state, i.e. has ended.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn dropping_the_database_inside_its_callback_is_defined() {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let holder: Arc<Mutex<Option<Arc<Database>>>> = Arc::new(Mutex::new(None));
    let released = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (h2, c2, flag) = (holder.clone(), calls.clone(), DropFlag(released.clone()));
    let db = Database::from(&path)
        .auto_reload()
        .debounce(DEBOUNCE)
        .poll_interval(POLL)
        .on_reload(move |_| {
            let _keep = &flag;
            c2.fetch_add(1, Ordering::SeqCst);
            // The last handle goes here, on the watcher thread.
            let db = h2.lock().unwrap().take();
            if let Some(db) = db {
                assert_eq!(db.lookup(Q).unwrap().len(), 3);
                drop(db);
            }
        })
        .open()
        .unwrap();
    *holder.lock().unwrap() = Some(Arc::new(db));
    dir.deploy(&path, &db_bytes(2, 0));
    wait_until("the watcher thread to end and release its state", || {
        released.load(Ordering::SeqCst)
    });
    assert!(holder.lock().unwrap().is_none());
    dir.deploy(&path, &db_bytes(3, 0));
    thread::sleep(SETTLE);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Old mappings go once readers move on.

/// Lines of /proc/self/maps naming a file under `dir` that has been deleted.
fn deleted_mappings(dir: &Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir) && l.ends_with("(deleted)"))
        .map(String::from)
        .collect()
}

fn mappings(dir: &Path) -> usize {
    let dir = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir))
        .count()
}

/// A replaced file stays mapped while a result from it lives, and is unmapped as soon as the
/// last one goes, even though an idle thread (one lookup, then nothing) still pins it.
#[test]
fn old_mappings_are_released_once_readers_move_on() {
    let dir = Dir::new();
    let path = dir.path("db.mxy");
    dir.deploy(&path, &db_bytes(1, 2000));
    let events = Events::default();
    let db = Arc::new(open(&path, Mode::Inotify, &events));
    let stop = Arc::new(AtomicBool::new(false));
    let last_seen: Arc<Vec<AtomicU64>> = Arc::new((0..2).map(|_| AtomicU64::new(0)).collect());
    let busy: Vec<_> = (0..2)
        .map(|r| {
            let (db, stop, last_seen) = (db.clone(), stop.clone(), last_seen.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    last_seen[r].store(served(&db), Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    // An idle reader: one lookup, then nothing until told.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<u64>();
    let idle = {
        let db = db.clone();
        thread::spawn(move || {
            done_tx.send(served(&db)).unwrap();
            go_rx.recv().unwrap();
            done_tx.send(served(&db)).unwrap();
        })
    };
    assert_eq!(done_rx.recv().unwrap(), 1);
    // A result from version 1, kept across the reload.
    let kept = db.lookup(Q).unwrap();
    assert!(mappings(dir.root.path()) > 0, "the file is mapped");
    assert!(deleted_mappings(dir.root.path()).is_empty());

    dir.deploy(&path, &db_bytes(2, 2000));
    events.wait_for(ReloadKind::Reloaded, 1);
    assert_eq!(served(&db), 2); // this thread moves on too
    wait_until("the busy readers to move on", || {
        last_seen.iter().all(|v| v.load(Ordering::SeqCst) == 2)
    });
    thread::sleep(SETTLE);
    assert!(
        !deleted_mappings(dir.root.path()).is_empty(),
        "a result from the old file must keep it mapped"
    );
    let version = |m: &matchy::Match| m.value().get(&["version"]).unwrap().unwrap().as_u64();
    assert!(kept.iter().all(|m| version(m).unwrap() == 1));
    drop(kept);
    // The idle thread has not looked up since: its pin must not keep the old file mapped.
    wait_until("the old mapping to be released", || {
        deleted_mappings(dir.root.path()).is_empty()
    });
    go_tx.send(()).unwrap();
    assert_eq!(done_rx.recv().unwrap(), 2);
    idle.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    for r in busy {
        r.join().unwrap();
    }
}

/// A thread busy on another database (never leaving its fast path) still lets go of a
/// database that was closed.
#[test]
fn a_closed_database_is_unmapped_by_threads_busy_elsewhere() {
    let dir = Dir::new();
    let (a, b) = (dir.path("a.mxy"), dir.path("b.mxy"));
    dir.deploy(&a, &db_bytes(1, 2000));
    dir.deploy(&b, &db_bytes(2, 2000));
    let db_a = Arc::new(Database::from(&a).open().unwrap());
    let db_b = Arc::new(Database::from(&b).open().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let (pinned_tx, pinned_rx) = std::sync::mpsc::channel::<()>();
    let busy = {
        let (db_a, db_b, stop) = (db_a.clone(), db_b.clone(), stop.clone());
        thread::spawn(move || {
            assert_eq!(served(&db_a), 1);
            drop(db_a);
            pinned_tx.send(()).unwrap();
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(served(&db_b), 2);
            }
        })
    };
    pinned_rx.recv().unwrap();
    let a_mapped = || {
        fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .any(|l| l.ends_with(a.to_str().unwrap()))
    };
    assert!(a_mapped());
    drop(db_a); // the last handle
    wait_until("the busy thread to let go of the closed database", || {
        !a_mapped()
    });
    stop.store(true, Ordering::SeqCst);
    busy.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Manual reloads and counters.

#[test]
fn reload_now_reports_skipped_then_reloaded_and_counts() {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    // Without auto-reload: no watcher, manual reloads still work.
    let db = Database::from(&path).open().unwrap();
    let st = db.stats();
    assert_eq!(st.watch_mode, "off");
    assert_eq!((st.attempts, st.successes, st.failures), (0, 0, 0));
    assert!(st.last_success_unix.is_none() && st.last_duration.is_none());

    let ev = db.reload_now().unwrap();
    assert_eq!(ev.kind, ReloadKind::Skipped);
    assert_eq!((ev.generation, ev.path.as_path()), (1, path.as_path()));
    assert!(ev.error.is_none());
    assert_eq!(
        db.stats().attempts,
        0,
        "an unchanged file is not an attempt"
    );

    dir.deploy(&path, &db_bytes(2, 0));
    assert_eq!(served(&db), 1, "no watcher: nothing changes by itself");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ev = db.reload_now().unwrap();
    assert_eq!(ev.kind, ReloadKind::Reloaded);
    assert_eq!(ev.generation, 2);
    assert_eq!(served(&db), 2);
    let st = db.stats();
    assert_eq!((st.attempts, st.successes, st.failures), (1, 1, 0));
    assert_eq!(st.generation, 2);
    let t = st.last_success_unix.expect("last success time");
    assert!(t >= before && t <= before + 5, "{t} vs {before}");
    let d = st.last_duration.expect("last duration");
    assert!(d <= ev.duration + Duration::from_millis(1) && d < Duration::from_secs(5));
    assert_eq!(db.reload_now().unwrap().kind, ReloadKind::Skipped);

    // A bad file: Failed with a reason, counted by reason, old version serving.
    dir.deploy(&path, b"not a database");
    let ev = db.reload_now().unwrap();
    assert_eq!(ev.kind, ReloadKind::Failed);
    assert!(ev.error.is_some());
    assert_eq!(served(&db), 2);
    let st = db.stats();
    assert_eq!((st.attempts, st.successes, st.failures), (2, 1, 1));
    assert_eq!(st.failures_by_reason.values().sum::<u64>(), 1);
    assert_eq!(st.last_success_unix, Some(t));

    // A missing file is a failure of a manual reload, not a crash.
    fs::remove_file(&path).unwrap();
    let ev = db.reload_now().unwrap();
    assert_eq!(ev.kind, ReloadKind::Failed);
    assert_eq!(db.stats().failures_by_reason.get("io"), Some(&1));
    assert_eq!(served(&db), 2);

    // Opened from bytes: there is nothing to reload.
    let mem = Database::from_bytes(db_bytes(1, 0)).unwrap();
    assert!(mem.reload_now().is_err());
}

#[test]
fn watch_mode_is_reported() {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let events = Events::default();
    let db = open(&path, Mode::Inotify, &events);
    assert_eq!(db.stats().watch_note, None);
    drop(db);
    let db = open(&path, Mode::Polling, &events);
    assert!(db.stats().watch_note.is_some());
}

#[test]
fn several_databases_in_one_thread_do_not_evict_each_other() {
    let dir = Dir::new();
    let (a, b) = (dir.path("a.mxy"), dir.path("b.mxy"));
    dir.deploy(&a, &db_bytes(1, 0));
    dir.deploy(&b, &db_bytes(101, 0));
    let (db_a, db_b) = (
        Database::from(&a).open().unwrap(),
        Database::from(&b).open().unwrap(),
    );
    for round in 0..3u32 {
        assert_eq!(served(&db_a), u64::from(round) + 1);
        assert_eq!(served(&db_b), u64::from(round) + 101);
        dir.deploy(&a, &db_bytes(round + 2, 0));
        dir.deploy(&b, &db_bytes(round + 102, 0));
        assert_eq!(db_a.reload_now().unwrap().kind, ReloadKind::Reloaded);
        assert_eq!(db_b.reload_now().unwrap().kind, ReloadKind::Reloaded);
    }
}

/// `touch` changes the served file's mtime but not its inode: indistinguishable from an
/// in-place write, so it is reported as `ModifiedInPlace`, and the (valid) content is served
/// from a private copy from then on.
#[test]
fn touching_the_served_file_is_an_in_place_modification() {
    let dir = Dir::new();
    let path = rename_setup(&dir);
    let events = Events::default();
    let db = open(&path, Mode::Inotify, &events);
    let f = fs::File::options().append(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(1))
        .unwrap();
    let ev = events.wait_for(ReloadKind::ModifiedInPlace, 1);
    assert_eq!((ev.error, ev.generation), (None, 2));
    assert_eq!(served(&db), 1);
    assert_eq!(db.stats().modified_in_place, 1);
    // A good file renamed in afterwards is an ordinary reload.
    dir.deploy(&path, &db_bytes(2, 0));
    events.wait_for(ReloadKind::Reloaded, 1);
    assert_eq!(served(&db), 2);
}

// ---------------------------------------------------------------------------------------------
// In-place writes (a misuse) must not kill the process. Each scenario runs in a child process
// (this test binary, re-run on one ignored test) so that a fatal signal is observed and named
// instead of taking the whole test run down.

const SCENARIO_VAR: &str = "MATCHY_RELOAD_IN_PLACE_SCENARIO";

/// Run one scenario of [`in_place_scenario`] in a child process and name any fatal signal.
fn run_in_place_scenario(scenario: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["in_place_scenario", "--exact", "--ignored", "--nocapture"])
        .env(SCENARIO_VAR, scenario)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(sig) = out.status.signal() {
        let what = if sig == 7 {
            " (SIGBUS: a reader touched a page of the mapping past the truncated end of file)"
        } else {
            ""
        };
        panic!("{scenario}: the process was killed by signal {sig}{what}; output:\n{text}");
    }
    assert!(out.status.success(), "{scenario} failed:\n{text}");
    assert!(text.contains("1 passed"), "{scenario} did not run:\n{text}");
    for line in text.lines().filter(|l| l.starts_with("tally")) {
        eprintln!("{scenario}: {line}");
    }
}

/// With `.in_memory(true)` nothing done to the file afterwards reaches the readers: truncation
/// is reported, every lookup keeps answering from the copy, and a good file renamed in is
/// served.
#[test]
fn truncating_an_in_memory_database_is_harmless() {
    run_in_place_scenario("truncate_in_memory");
}

/// `cp new db` (same inode) and `truncate -s 0 db` while readers run on a *mapped* file: the
/// kernel delivers SIGBUS to a reader that touches a page past the new end of file before the
/// watcher has poisoned the snapshot; the SIGBUS guard must turn that into lookup errors.
#[test]
fn in_place_writes_to_a_mapped_file_do_not_kill_the_process() {
    run_in_place_scenario("overwrite_then_truncate_mapped");
    run_in_place_scenario("truncate_mapped");
}

#[derive(Default)]
struct Tally {
    /// Lookups answered wholly from version 1, 2, 3.
    ok: [AtomicU64; 3],
    /// Lookups whose matches disagree (the file changed under a mapping mid-lookup).
    torn: AtomicU64,
    errors: AtomicU64,
}

fn run_in_shell(cmd: &str) {
    let st = std::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
}

#[test]
#[ignore = "a scenario of in_place_writes_do_not_kill_the_process, run in a child process"]
fn in_place_scenario() {
    let Ok(scenario) = std::env::var(SCENARIO_VAR) else {
        return;
    };
    let dir = Dir::new();
    let path = dir.path("db.mxy");
    // Several pages, so lookups touch pages all over the file.
    dir.deploy(&path, &db_bytes(1, 2000));
    let v2 = dir.path("v2.bin");
    fs::write(&v2, db_bytes(2, 2000)).unwrap();
    let in_memory = scenario == "truncate_in_memory";
    let events = Events::default();
    let db = Arc::new(
        Database::from(&path)
            .auto_reload()
            .on_reload(events.callback())
            .debounce(DEBOUNCE)
            .poll_interval(POLL)
            .in_memory(in_memory)
            .open()
            .unwrap(),
    );
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let last_seen: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (db, tally, stop, last_seen) =
                (db.clone(), tally.clone(), stop.clone(), last_seen.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match versions(&db, Q) {
                        Ok(v) if v.len() == 3 && v.iter().all(|&x| x == v[0]) => {
                            assert!((1..=3).contains(&v[0]), "reader {r}: {v:?}");
                            tally.ok[v[0] as usize - 1].fetch_add(1, Ordering::Relaxed);
                            last_seen[r].store(v[0], Ordering::Relaxed);
                        }
                        Ok(_) => {
                            tally.torn.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                            last_seen[r].store(0, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let all_readers_at = |v: u64| {
        wait_until("every reader to answer from the expected version", || {
            last_seen.iter().all(|x| x.load(Ordering::Relaxed) == v)
        })
    };
    all_readers_at(1);
    let p = path.display();
    match scenario.as_str() {
        "overwrite_then_truncate_mapped" => {
            // `cp` onto an existing file truncates it and writes into the same inode.
            run_in_shell(&format!("cp {} {p}", v2.display()));
            wait_until("the in-place copy to be served", || {
                versions(&db, Q).is_ok_and(|v| v == [2, 2, 2])
            });
            let ev = events.wait_for(ReloadKind::ModifiedInPlace, 1);
            assert_eq!(ev.generation, 2, "{ev:?}");
            assert_eq!(db.stats().modified_in_place, 1);
            all_readers_at(2);
            // The new content is served from a private copy: truncating it is harmless now.
            let before = events.count(ReloadKind::ModifiedInPlace);
            run_in_shell(&format!("truncate -s 0 {p}"));
            let ev = events.wait_for(ReloadKind::ModifiedInPlace, before + 1);
            assert!(ev.error.is_some(), "{ev:?}");
            assert_eq!(served(&db), 2);
        }
        "truncate_mapped" => {
            run_in_shell(&format!("truncate -s 0 {p}"));
            let ev = events.wait_for(ReloadKind::ModifiedInPlace, 1);
            assert!(ev.error.is_some(), "{ev:?}");
            assert_eq!(ev.generation, 1);
            // The mapping is no longer trusted: lookups are refused, not answered from it.
            let err = db.lookup(Q).expect_err("a lookup on a truncated mapping");
            assert!(err.to_string().contains("modified in place"), "{err}");
            all_readers_at(0);
        }
        "truncate_in_memory" => {
            run_in_shell(&format!("truncate -s 0 {p}"));
            let ev = events.wait_for(ReloadKind::ModifiedInPlace, 1);
            assert!(ev.error.is_some(), "{ev:?}");
            assert_eq!(served(&db), 1, "the in-memory copy keeps answering");
        }
        other => panic!("unknown scenario {other}"),
    }
    // A good file renamed into place is served again.
    dir.deploy(&path, &db_bytes(3, 2000));
    events.wait_for(ReloadKind::Reloaded, 1);
    assert_eq!(served(&db), 3);
    all_readers_at(3);
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader failed");
    }
    let t = &tally;
    println!(
        "tally: v1 {} v2 {} v3 {} torn {} errors {}",
        t.ok[0].load(Ordering::Relaxed),
        t.ok[1].load(Ordering::Relaxed),
        t.ok[2].load(Ordering::Relaxed),
        t.torn.load(Ordering::Relaxed),
        t.errors.load(Ordering::Relaxed)
    );
    if in_memory {
        assert_eq!(t.errors.load(Ordering::Relaxed), 0);
        assert_eq!(t.torn.load(Ordering::Relaxed), 0);
    }
}
