//! `Database`: the handle users hold. It serves the newest good [`Snapshot`] of its file and,
//! with auto-reload, swaps in new versions while readers keep going.
//!
//! The current snapshot lives behind an `ArcSwap`; a generation counter is bumped after each
//! swap. Each thread keeps its own pin of the snapshot it last used (a thread-local `Rc`), so a
//! lookup costs one atomic load of the generation plus thread-local bookkeeping, with or without
//! auto-reload. Results (`Match`, `Matches`) hold the pin: the snapshot they borrow from stays
//! mapped until the last result from it is dropped, even if a newer file is being served.
//! That pin is a non-atomic `Rc`, which is why results are `!Send`. Each use of a pin (a lookup
//! in progress, a result alive) is counted for the reload watcher, which unmaps a replaced
//! snapshot as soon as nothing uses it, even while idle threads still pin it (`crate::readers`).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::error::Result;
use crate::mmdb::stride::StrideIndex;
use crate::readers::{self, ReaderState};
use crate::reload::{self, Callback, ReloadEvent, ReloadOptions, ReloadState, ReloadStats};
use crate::snapshot::{self, DatabaseInfo, EntryKind, RawMatch, Snapshot};
use crate::validate::{ValidationLevel, ValidationReport};
use crate::value::Value;

/// Options for [`Database::from`]; finish with [`open`](OpenOptions::open).
pub struct OpenOptions {
    path: PathBuf,
    auto_reload: bool,
    reload: ReloadOptions,
    callback: Option<Callback>,
}

impl fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenOptions")
            .field("path", &self.path)
            .field("auto_reload", &self.auto_reload)
            .field("reload", &self.reload)
            .field("callback", &self.callback.is_some())
            .finish()
    }
}

impl OpenOptions {
    /// Watch the file and serve each new version that is renamed (or symlinked) into place, once
    /// it has been opened and validated. A bad new file never replaces a good one.
    pub fn auto_reload(mut self) -> Self {
        self.auto_reload = true;
        self
    }

    /// Called after every reload attempt the watcher makes (`Reloaded`, `Failed`,
    /// `ModifiedInPlace`), on the watcher thread. It may call `lookup` on this database, and it
    /// may drop the database (the watcher then stops once the callback returns). A panic in it
    /// is caught and counted. No callback runs after the database's drop returns (unless the
    /// drop happens inside the callback, which then finishes).
    pub fn on_reload(mut self, f: impl Fn(&ReloadEvent) + Send + Sync + 'static) -> Self {
        self.callback = Some(Arc::new(f));
        self
    }

    /// Quiet period after the last file-system event before checking (default 200 ms).
    pub fn debounce(mut self, quiet: Duration) -> Self {
        self.reload.debounce = quiet;
        self
    }

    /// Longest wait from the first event of a burst to the check, so a steady trickle of writes
    /// cannot postpone a reload forever (default 2 s).
    pub fn max_debounce_wait(mut self, max: Duration) -> Self {
        self.reload.max_wait = max;
        self
    }

    /// Validation a new file must pass before it is served (default `Standard`).
    pub fn validation(mut self, level: ValidationLevel) -> Self {
        self.reload.validation = level;
        self
    }

    /// How often the file's identity is checked even without events (default 1 s); the only
    /// detection when inotify is unavailable or polling is forced.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.reload.poll_interval = every;
        self
    }

    /// Do not use inotify; detect changes by polling the file's identity.
    pub fn force_polling(mut self, yes: bool) -> Self {
        self.reload.force_polling = yes;
        self
    }

    /// Upper bound of the back-off between checks after repeated failures (default 30 s).
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.reload.max_backoff = max;
        self
    }

    /// Read the file into memory instead of mapping it. Costs memory and open time; in exchange
    /// nothing done to the file afterwards (in-place writes, truncation) can affect lookups.
    pub fn in_memory(mut self, yes: bool) -> Self {
        self.reload.in_memory = yes;
        self
    }

    /// Open (map) the file and check its metadata and section bounds: O(1) in the file size.
    pub fn open(self) -> Result<Database> {
        let snap = Snapshot::open(&self.path, self.reload.in_memory)?;
        let shared = Arc::new(Shared::new(
            snap,
            Some(self.path),
            ReloadState::new(self.reload, self.callback),
        ));
        let watcher = if self.auto_reload {
            Some(reload::Watcher::spawn(shared.clone())?)
        } else {
            None
        };
        Ok(Database { watcher, shared })
    }
}

/// State shared by the handle, the thread-local pins and the watcher thread.
pub(crate) struct Shared {
    id: u64,
    pub path: Option<PathBuf>,
    pub current: ArcSwap<Snapshot>,
    generation: AtomicU64,
    pub reload: ReloadState,
    /// Snapshots replaced by reloads that may still be mapped (see `release_retired`).
    retired: Mutex<Vec<Weak<Snapshot>>>,
}

impl Shared {
    fn new(snap: Snapshot, path: Option<PathBuf>, reload: ReloadState) -> Shared {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path,
            current: ArcSwap::from_pointee(snap),
            generation: AtomicU64::new(1),
            reload,
            retired: Mutex::new(Vec::new()),
        }
    }

    /// Takes a snapshot that was just replaced (its successor's generation published) and
    /// releases its mapping as soon as no thread uses it.
    pub fn retire(&self, old: Arc<Snapshot>) {
        reload::lock(&self.retired).push(Arc::downgrade(&old));
        drop(old);
        self.release_retired();
    }

    /// Releases the mappings of replaced snapshots that no thread uses any more, although idle
    /// threads may still pin them (see `crate::readers`). True while some remain in use.
    pub fn release_retired(&self) -> bool {
        let mut retired = reload::lock(&self.retired);
        let before = retired.len();
        retired.retain(|w| w.strong_count() > 0);
        if retired.len() < before {
            // A replaced snapshot is gone, with its IPv4 index.
            reload::return_freed_memory();
        }
        if retired.is_empty() {
            return false;
        }
        if !readers::process_barrier() {
            // No barrier, no early release: pins free their snapshots when their threads
            // next look up (or exit).
            retired.clear();
            return false;
        }
        retired.retain(|w| w.upgrade().is_some_and(|snap| !snap.release_if_unused(0)));
        !retired.is_empty()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Publish a snapshot already stored in `current`.
    pub fn bump_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// A thread's pin of one snapshot (kept in the thread-local cache).
struct Pin {
    snap: Arc<Snapshot>,
    /// This thread's use of `snap`, which the reload watcher checks before releasing it.
    reader: Arc<ReaderState>,
}

/// One counted use of a pin: a lookup in progress, or a result alive. While any exists on any
/// thread, a replaced snapshot stays mapped (see `crate::readers`).
struct Hold(Rc<Pin>);

impl Hold {
    fn snap(&self) -> &Snapshot {
        &self.0.snap
    }
}

impl Clone for Hold {
    #[inline]
    fn clone(&self) -> Hold {
        self.0.reader.enter();
        Hold(self.0.clone())
    }
}

impl Drop for Hold {
    #[inline]
    fn drop(&mut self) {
        self.0.reader.leave();
    }
}

struct PinSlot {
    db: u64,
    generation: u64,
    pin: Rc<Pin>,
    owner: Weak<Shared>,
}

/// This thread's pins, one per database it has used; owns them.
struct Pins(RefCell<Vec<PinSlot>>);

impl Drop for Pins {
    fn drop(&mut self) {
        // The pins go now: the copy in `HOT` must not outlive them.
        HOT.set(HotPin::EMPTY);
    }
}

/// A copy of the `PINS` slot this thread used last (database id, generation, the pin), read by
/// the fast path without a `RefCell` or a destructor-registered thread-local. `pin` points
/// into the `Rc` that slot owns; every change to `PINS` that could drop or replace it resets
/// or updates `HOT` (`repin`, `Database::drop`, `Pins::drop`).
#[derive(Clone, Copy)]
struct HotPin {
    db: u64,
    generation: u64,
    pin: *const Pin,
    /// The IPv4 index of `pin`'s snapshot once it is built (null before): IPv4 lookups ask it
    /// first. Set only by `lookup_ip_walk`, next to the `pin` it belongs to.
    ipv4: *const StrideIndex,
}

impl HotPin {
    /// Database ids start at 1: no database matches.
    const EMPTY: HotPin = HotPin {
        db: 0,
        generation: 0,
        pin: std::ptr::null(),
        ipv4: std::ptr::null(),
    };

    fn new(db: u64, generation: u64, pin: &Rc<Pin>) -> HotPin {
        HotPin {
            db,
            generation,
            pin: Rc::as_ptr(pin),
            ipv4: std::ptr::null(),
        }
    }
}

thread_local! {
    static PINS: Pins = const { Pins(RefCell::new(Vec::new())) };
    static HOT: Cell<HotPin> = const { Cell::new(HotPin::EMPTY) };
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone, so no lookup can start; threads may still pin the snapshot
        // in their caches (one busy on another database never looks at this one again, and
        // prunes closed databases only when it repins). Unmap it now unless results live.
        if readers::process_barrier() {
            self.current.load_full().release_if_unused(1);
        }
        self.release_retired();
    }
}

/// An open database. `Send + Sync`: share it between threads with `Arc`.
pub struct Database {
    // Dropped first: stopping the watcher before the shared state goes.
    watcher: Option<reload::Watcher>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.shared.path)
            .field("generation", &self.generation())
            .field("auto_reload", &self.watcher.is_some())
            .finish()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        drop(self.watcher.take());
        // Release this thread's pin now. Other threads' pins are pruned when they next re-pin
        // (or exit); the mapping goes before that, when the shared state drops.
        let id = self.shared.id;
        let _ = PINS.try_with(|p| {
            if let Ok(mut slots) = p.0.try_borrow_mut() {
                HOT.set(HotPin::EMPTY);
                slots.retain(|s| s.db != id);
            }
        });
    }
}

/// The body of [`Database::lookup_ip`] and [`Database::lookup_ip_inlined`] (its `return`
/// leaves the function it is expanded in).
macro_rules! lookup_ip {
    ($db:expr, $ip:expr) => {{
        let (hold, ipv4_index) = $db.pin_and_ipv4_index();
        if let IpAddr::V4(a) = $ip {
            // The hot path, kept small enough to inline: the IPv4 index, found through the
            // thread-local pin without a look at the snapshot's tree.
            if !ipv4_index.is_null() {
                // SAFETY: `HotPin::ipv4` is set next to `HotPin::pin`, which `hold` holds,
                // and points to the IPv4 index of that pin's snapshot (`lookup_ip_walk`); the
                // index lives as long as the snapshot, which `hold` keeps alive.
                let index = unsafe { &*ipv4_index };
                if let Some(raw) = hold.snap().lookup_v4_indexed(index, a) {
                    // SAFETY: `raw` comes from `hold.snap()` and `hold` goes with it.
                    let raw = unsafe { Match::detach(raw) };
                    return Ok(Match::with_hold(raw, hold));
                }
            }
        }
        $db.lookup_ip_walk(hold, $ip)
    }};
}

impl Database {
    /// Start opening the database at `path`: `Database::from(path).open()?`, or with
    /// `.auto_reload()` and `.on_reload(..)` before `open`.
    #[allow(clippy::should_implement_trait)]
    pub fn from(path: impl AsRef<Path>) -> OpenOptions {
        OpenOptions {
            path: path.as_ref().to_path_buf(),
            auto_reload: false,
            reload: ReloadOptions::default(),
            callback: None,
        }
    }

    /// Open a database held in memory (e.g. built with `DatabaseBuilder::build`).
    pub fn from_bytes(bytes: impl Into<Box<[u8]>>) -> Result<Database> {
        let snap = Snapshot::from_bytes(bytes.into())?;
        Ok(Database {
            watcher: None,
            shared: Arc::new(Shared::new(
                snap,
                None,
                ReloadState::new(ReloadOptions::default(), None),
            )),
        })
    }

    /// A counted use of this thread's pin of the current snapshot: one atomic load of the
    /// generation (and two plain stores) when nothing changed.
    #[inline]
    fn pin(&self) -> Hold {
        self.pin_and_ipv4_index().0
    }

    /// [`pin`](Self::pin), plus the IPv4 index of the pinned snapshot if this thread has seen
    /// it built (null otherwise), from the same read of the thread-local copy.
    #[inline(always)]
    fn pin_and_ipv4_index(&self) -> (Hold, *const StrideIndex) {
        let hot = HOT.get();
        if hot.db == self.shared.id {
            // SAFETY: `hot` copies this thread's `PINS` slot for this database, whose `Rc`
            // keeps the pin alive; anything that replaces or drops that slot resets `HOT`
            // first (see `HotPin`), and nothing else runs on this thread meanwhile.
            let pin = unsafe { &*hot.pin };
            // Counted before the generation is read: the watcher publishes a generation before
            // it looks at readers, so it sees this use or this lookup sees the new generation.
            pin.reader.enter();
            if hot.generation == self.shared.generation.load(Ordering::Acquire) {
                // SAFETY: as above, `hot.pin` came from `Rc::as_ptr` of a live `Rc<Pin>` (the
                // pointer `Rc::into_raw` would return); one more strong count makes the new
                // `Rc` an owner of its own.
                let hold = Hold(unsafe {
                    Rc::increment_strong_count(hot.pin);
                    Rc::from_raw(hot.pin)
                });
                return (hold, hot.ipv4);
            }
            pin.reader.leave();
        }
        (self.pin_slow(), std::ptr::null())
    }

    /// [`pin`](Self::pin) after another database was used on this thread, or after a reload.
    #[cold]
    fn pin_slow(&self) -> Hold {
        let id = self.shared.id;
        let found = PINS.with(|p| {
            let slots = p.0.borrow();
            let slot = slots.iter().find(|s| s.db == id)?;
            slot.pin.reader.enter();
            let hold = Hold(slot.pin.clone());
            (slot.generation == self.shared.generation.load(Ordering::Acquire)).then(|| {
                HOT.set(HotPin::new(id, slot.generation, &slot.pin));
                hold
            })
        });
        found.unwrap_or_else(|| self.repin())
    }

    #[cold]
    fn repin(&self) -> Hold {
        let (generation, snap, reader) = loop {
            let generation = self.shared.generation.load(Ordering::Acquire);
            let snap = self.shared.current.load_full();
            // Fails only if the snapshot was released, i.e. replaced meanwhile: load again.
            if let Some(reader) = snap.add_reader() {
                break (generation, snap, reader);
            }
        };
        let pin = Rc::new(Pin { snap, reader });
        let id = self.shared.id;
        PINS.with(|p| {
            // The slots change: nothing may point into them until they are settled.
            HOT.set(HotPin::EMPTY);
            let mut slots = p.0.borrow_mut();
            // Forget pins of databases that were closed, so their snapshots can go.
            slots.retain(|s| s.db == id || s.owner.strong_count() > 0);
            match slots.iter_mut().find(|s| s.db == id) {
                Some(s) => {
                    s.generation = generation;
                    s.pin = pin.clone();
                }
                None => slots.push(PinSlot {
                    db: id,
                    generation,
                    pin: pin.clone(),
                    owner: Arc::downgrade(&self.shared),
                }),
            }
            HOT.set(HotPin::new(id, generation, &pin));
        });
        // `add_reader` counted this use already.
        Hold(pin)
    }

    /// Every entry matching `query`, in order: the IP network (when `query` is an IP address),
    /// the exact literal, then each matching glob in insertion order. IP text is also checked
    /// against literals and globs (so `glob:10.0.*` matches `10.0.0.1`). An IPv6 address
    /// against an IPv4-only database is a miss here (and an error from [`lookup_ip`](Self::lookup_ip)).
    pub fn lookup(&self, query: &str) -> Result<Matches> {
        let hold = self.pin();
        let ip = snapshot::parse_ip(query);
        if ip.is_none() && hold.snap().literals_answer_alone() {
            // The common case, kept short: every instruction between two lookups delays the
            // next one's memory reads behind this one's (see ARCHITECTURE.md, "Lookup cost").
            // SAFETY: the match comes from `hold.snap()` and `hold` goes with it.
            let raw = unsafe { Match::detach(hold.snap().lookup_literal(query)?) };
            return Ok(Matches {
                first: Match::with_hold(raw, hold),
                rest: Vec::new(),
            });
        }
        Self::lookup_general(hold, query, ip)
    }

    /// [`lookup`](Self::lookup) when more than one entry may match. Inlined: out of line, it
    /// cost files with globs a second frame (~30 instructions per lookup).
    #[inline(always)]
    fn lookup_general(hold: Hold, query: &str, ip: Option<IpAddr>) -> Result<Matches> {
        let mut out = Matches::default();
        hold.snap()
            .lookup_with(query, ip, |raw| out.push(Match::new(raw, &hold)))?;
        Ok(out)
    }

    /// [`lookup`](Self::lookup) for many queries at once: `result[i]` holds the matches of
    /// `queries[i]`, in the same order `lookup` gives. Faster than one call per query when many
    /// queries hit exact strings (their memory waits overlap).
    pub fn lookup_batch(&self, queries: &[&str]) -> Result<Vec<Matches>> {
        let hold = self.pin();
        let mut out: Vec<Matches> = (0..queries.len()).map(|_| Matches::default()).collect();
        hold.snap()
            .lookup_batch_with(queries, |i, raw| out[i].push(Match::new(raw, &hold)))?;
        Ok(out)
    }

    /// The IP network (longest prefix) holding `ip`, if any.
    #[inline]
    pub fn lookup_ip(&self, ip: IpAddr) -> Result<Option<Match>> {
        lookup_ip!(self, ip)
    }

    /// [`lookup_ip`](Self::lookup_ip), always inlined: for the C library, where the call and
    /// the copy of its answer are ~10% of an IPv4 lookup. `lookup_ip` itself stays
    /// `#[inline]`: inlined into every caller it moved the engine's other code about and made
    /// the 1M-literal bench 25-35% slower (ARCHITECTURE.md, "Lookup cost"), and a `lookup_ip`
    /// that called this function was inlined the same way. Both expand one macro: one piece of
    /// code, and the bench binary's machine code stays the same.
    #[doc(hidden)]
    #[inline(always)]
    pub fn lookup_ip_inlined(&self, ip: IpAddr) -> Result<Option<Match>> {
        lookup_ip!(self, ip)
    }

    /// [`lookup_ip`](Self::lookup_ip) through the snapshot's tree: IPv6, IPv4 before the index
    /// is built (counting towards building it), damaged trees, refused lookups.
    #[inline(never)]
    fn lookup_ip_walk(&self, hold: Hold, ip: IpAddr) -> Result<Option<Match>> {
        let snap = hold.snap();
        let raw = snap.lookup_ip(ip)?;
        if let Some(index) = snap.ipv4_index() {
            let mut hot = HOT.get();
            if hot.pin == Rc::as_ptr(&hold.0) {
                hot.ipv4 = index;
                HOT.set(hot);
            }
        }
        // SAFETY: `raw` comes from `hold.snap()` and `hold` goes with it.
        let raw = unsafe { Match::detach(raw) };
        Ok(Match::with_hold(raw, hold))
    }

    /// Metadata, counts and layout of the snapshot being served.
    pub fn info(&self) -> DatabaseInfo {
        self.shared.current.load().info().clone()
    }

    /// The file this database was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// Which version is served: 1 at open, +1 at every successful reload.
    pub fn generation(&self) -> u64 {
        self.shared.generation()
    }

    /// Reload counters (all zero without auto-reload or manual reloads).
    pub fn stats(&self) -> ReloadStats {
        let mut s = reload_stats(&self.shared);
        s.generation = self.generation();
        s
    }

    /// Check the path now and swap in a new file if it names one (manual trigger; the library
    /// installs no signal handlers). Returns what happened, `Skipped` if the file is unchanged.
    /// The `on_reload` callback is not called for manual reloads: the caller has the event.
    pub fn reload_now(&self) -> Result<ReloadEvent> {
        let ev = reload::attempt(&self.shared, true)?;
        reload::after_swap(&self.shared);
        Ok(ev.expect("a forced reload attempt always reports an event"))
    }

    /// Validate the snapshot being served: `Standard` checks metadata, section bounds and
    /// checksums; `Strict` also walks every tree node, index entry and value.
    pub fn validate(&self, level: ValidationLevel) -> ValidationReport {
        self.shared.current.load().validate(level)
    }
}

fn reload_stats(shared: &Shared) -> ReloadStats {
    shared
        .reload
        .stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// One matching entry: its kind, the entry as inserted, and its data. Keeps the database
/// version it came from alive; use and drop it on the thread that looked it up.
pub struct Match {
    raw: RawMatch<'static>,
    _hold: Hold,
}

impl Match {
    /// `raw` must have been produced by `hold.snap()`.
    fn new(raw: RawMatch<'_>, hold: &Hold) -> Match {
        // SAFETY: as in `detach`, with a clone of `hold`.
        let raw = unsafe { Match::detach(Some(raw)) };
        Match::with_hold(raw, hold.clone()).expect("a match")
    }

    /// Frees a match of a hold's snapshot from the borrow of the hold, so that the hold can move
    /// into the [`Match`] next to it ([`with_hold`](Self::with_hold)).
    ///
    /// # Safety
    /// `raw` must borrow from `hold.snap()` for the `hold` then given to `with_hold`. That hold
    /// keeps the bytes alive (and unmoved: they live in a heap allocation or mapping owned by
    /// the snapshot; and mapped: a snapshot is released only when no hold on it exists) for as
    /// long as the Match exists. The 'static lifetime never escapes: every accessor re-borrows
    /// it for `&self`.
    #[inline(always)]
    unsafe fn detach(raw: Option<RawMatch<'_>>) -> Option<RawMatch<'static>> {
        // SAFETY: see the function's contract.
        unsafe { std::mem::transmute::<Option<RawMatch<'_>>, Option<RawMatch<'static>>>(raw) }
    }

    #[inline(always)]
    fn with_hold(raw: Option<RawMatch<'static>>, hold: Hold) -> Option<Match> {
        raw.map(|raw| Match { raw, _hold: hold })
    }

    pub fn kind(&self) -> EntryKind {
        self.raw.kind()
    }

    /// The entry as inserted: a network in CIDR form (`10.0.0.0/8`), the literal, or the glob.
    /// For a plain `.mmdb` file (which does not record inserted networks) the network is the
    /// tree leaf that answered, as other MaxMind DB readers report it.
    pub fn entry(&self) -> Cow<'_, str> {
        self.raw.entry()
    }

    /// The network of an IP match (address with host bits cleared, prefix length).
    pub fn network(&self) -> Option<(IpAddr, u8)> {
        self.raw.network()
    }

    /// The entry's data, decoded lazily.
    pub fn value(&self) -> Value<'_> {
        self.raw.value()
    }
}

impl fmt::Debug for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

/// All matches of one query, in a stable order: the IP match, then the exact literal, then each
/// matching glob in insertion order. Holds one match without allocating; an empty `Matches`
/// holds no pin and no allocation (the C API relies on it to skip dropping one).
#[derive(Debug, Default)]
pub struct Matches {
    first: Option<Match>,
    rest: Vec<Match>,
}

impl Matches {
    fn push(&mut self, m: Match) {
        if self.first.is_none() {
            self.first = Some(m);
        } else {
            self.rest.push(m);
        }
    }
    pub fn len(&self) -> usize {
        self.first.is_some() as usize + self.rest.len()
    }
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
    pub fn first(&self) -> Option<&Match> {
        self.first.as_ref()
    }
    pub fn get(&self, i: usize) -> Option<&Match> {
        if i == 0 {
            self.first.as_ref()
        } else {
            self.rest.get(i - 1)
        }
    }
    pub fn iter(
        &self,
    ) -> std::iter::Chain<std::option::Iter<'_, Match>, std::slice::Iter<'_, Match>> {
        self.first.iter().chain(self.rest.iter())
    }
}

impl IntoIterator for Matches {
    type Item = Match;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Match>, std::vec::IntoIter<Match>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl<'m> IntoIterator for &'m Matches {
    type Item = &'m Match;
    type IntoIter = std::iter::Chain<std::option::Iter<'m, Match>, std::slice::Iter<'m, Match>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
