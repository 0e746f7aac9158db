//! `Database`: the handle users hold. It serves the newest good [`Snapshot`] of its file and,
//! with auto-reload, swaps in new versions while readers keep going.
//!
//! The current snapshot lives behind an `ArcSwap`; a generation counter is bumped after each
//! swap. Each thread keeps its own pin of the snapshot it last used (a thread-local `Rc`), so a
//! lookup costs one atomic load of the generation plus thread-local bookkeeping, with or without
//! auto-reload. Results (`Match`, `Matches`) hold the pin: the snapshot they borrow from stays
//! mapped until the last result from it is dropped, even if a newer file is being served.
//! That pin is a non-atomic `Rc`, which is why results are `!Send`.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::error::Result;
use crate::reload::{self, Callback, ReloadEvent, ReloadOptions, ReloadState, ReloadStats};
use crate::snapshot::{DatabaseInfo, EntryKind, RawMatch, Snapshot};
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
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Publish a snapshot already stored in `current`.
    pub fn bump_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// A thread's hold on one snapshot.
struct Pin {
    snap: Arc<Snapshot>,
}

struct PinSlot {
    db: u64,
    generation: u64,
    pin: Rc<Pin>,
    owner: Weak<Shared>,
}

/// Bumped whenever a database's shared state goes (its last handle was dropped): a thread
/// that sees it change prunes its pins of closed databases at its next lookup, even one on the
/// fast path of another database, which would otherwise keep the closed file mapped forever.
static CLOSED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static PINS: RefCell<Vec<PinSlot>> = const { RefCell::new(Vec::new()) };
    /// The value of `CLOSED` when this thread last pruned its pins.
    static CLOSED_SEEN: Cell<u64> = const { Cell::new(0) };
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Runs once the strong count is zero: a thread that sees the bump also sees that
        // `owner.strong_count() == 0`, so its pruning cannot miss this database.
        CLOSED.fetch_add(1, Ordering::Release);
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
        // Release this thread's pin now; other threads release theirs at their next lookup of
        // any database, or when they exit.
        let id = self.shared.id;
        let _ = PINS.try_with(|p| {
            if let Ok(mut slots) = p.try_borrow_mut() {
                slots.retain(|s| s.db != id);
            }
        });
    }
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

    /// This thread's pin of the current snapshot: one atomic load when nothing changed.
    #[inline]
    fn pin(&self) -> Rc<Pin> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        let closed = CLOSED.load(Ordering::Acquire);
        let id = self.shared.id;
        let fast = PINS.with(|p| {
            if CLOSED_SEEN.with(Cell::get) != closed {
                return None;
            }
            let slots = p.borrow();
            slots
                .iter()
                .find(|s| s.db == id && s.generation == generation)
                .map(|s| s.pin.clone())
        });
        match fast {
            Some(pin) => pin,
            None => self.repin(generation, closed),
        }
    }

    #[cold]
    fn repin(&self, generation: u64, closed: u64) -> Rc<Pin> {
        let pin = Rc::new(Pin {
            snap: self.shared.current.load_full(),
        });
        let id = self.shared.id;
        PINS.with(|p| {
            let mut slots = p.borrow_mut();
            // Forget pins of databases that were closed, so their snapshots can go.
            slots.retain(|s| s.db == id || s.owner.strong_count() > 0);
            CLOSED_SEEN.with(|c| c.set(closed));
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
        });
        pin
    }

    /// Every entry matching `query`, in order: the IP network (when `query` is an IP address),
    /// the exact literal, then each matching glob in insertion order. IP text is also checked
    /// against literals and globs (so `glob:10.0.*` matches `10.0.0.1`). An IPv6 address
    /// against an IPv4-only database is a miss here (and an error from [`lookup_ip`](Self::lookup_ip)).
    pub fn lookup(&self, query: &str) -> Result<Matches> {
        let pin = self.pin();
        let mut out = Matches::default();
        pin.snap
            .lookup_with(query, |raw| out.push(Match::new(raw, &pin)))?;
        Ok(out)
    }

    /// [`lookup`](Self::lookup) for many queries at once: `result[i]` holds the matches of
    /// `queries[i]`, in the same order `lookup` gives. Faster than one call per query when many
    /// queries hit exact strings (their memory waits overlap).
    pub fn lookup_batch(&self, queries: &[&str]) -> Result<Vec<Matches>> {
        let pin = self.pin();
        let mut out: Vec<Matches> = (0..queries.len()).map(|_| Matches::default()).collect();
        pin.snap
            .lookup_batch_with(queries, |i, raw| out[i].push(Match::new(raw, &pin)))?;
        Ok(out)
    }

    /// The IP network (longest prefix) holding `ip`, if any.
    #[inline]
    pub fn lookup_ip(&self, ip: IpAddr) -> Result<Option<Match>> {
        let pin = self.pin();
        let raw = pin.snap.lookup_ip(ip)?;
        // SAFETY: as in `Match::with_pin`: the pin moves into the Match that borrows from it.
        let raw =
            unsafe { std::mem::transmute::<Option<RawMatch<'_>>, Option<RawMatch<'static>>>(raw) };
        Ok(raw.map(|raw| Match { raw, _pin: pin }))
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
    _pin: Rc<Pin>,
}

impl Match {
    /// `raw` must have been produced by `pin.snap`.
    fn new(raw: RawMatch<'_>, pin: &Rc<Pin>) -> Match {
        // SAFETY: `raw` borrows bytes of `pin.snap`, which the `Rc<Pin>` stored next to it keeps
        // alive (and unmoved: the bytes live in a heap allocation or mapping owned by the
        // snapshot) for as long as this Match exists. The 'static lifetime never escapes: every
        // accessor re-borrows it for `&self`.
        let raw = unsafe { std::mem::transmute::<RawMatch<'_>, RawMatch<'static>>(raw) };
        Match {
            raw,
            _pin: pin.clone(),
        }
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
/// matching glob in insertion order. Holds one match without allocating.
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
