//! Live reload: a watcher thread that notices when the database path names a new file and swaps
//! it in, off the query path.
//!
//! It watches the path's *parent directory* (so renames, symlink swaps and Kubernetes'
//! `..data` swaps all show up), treats every event as "check now", debounces bursts, and decides
//! by comparing the identity (device, inode, size, mtime in ns) of the file the path names now
//! with the one being served — so its own opening of the file never causes a reload. A periodic
//! identity check (the poll interval) backs inotify up, and replaces it where inotify cannot be
//! had or when polling is forced. A new file is opened and validated before the swap; any failure
//! (I/O, corruption, validation, a panic) leaves the old snapshot serving, is reported as
//! `Failed` and counted, and the same broken file is not retried until it changes again.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use notify::Watcher as _;

use crate::database::Shared;
use crate::error::{Error, Result};
use crate::snapshot::{FileIdentity, Snapshot};
use crate::validate::ValidationLevel;

/// What a reload attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadKind {
    /// A new file was opened, validated and is now served.
    Reloaded,
    /// A new file was found but could not be opened or failed validation; the old one serves on.
    Failed,
    /// The path still names the file being served: nothing to do (only reported for
    /// [`Database::reload_now`](crate::Database::reload_now)).
    Skipped,
    /// The served file was written in place (same inode, new size or mtime). Its mapping is no
    /// longer trusted: a valid new content is served from a private in-memory copy, otherwise
    /// lookups fail until a good file is renamed into place.
    ModifiedInPlace,
}

impl ReloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadKind::Reloaded => "reloaded",
            ReloadKind::Failed => "failed",
            ReloadKind::Skipped => "skipped",
            ReloadKind::ModifiedInPlace => "modified_in_place",
        }
    }
}

/// Reported to the `on_reload` callback and returned by `reload_now`.
#[derive(Debug, Clone)]
pub struct ReloadEvent {
    pub path: PathBuf,
    pub kind: ReloadKind,
    /// The generation served after this event (unchanged unless a new snapshot was swapped in).
    pub generation: u64,
    /// Why it failed (or, for `ModifiedInPlace`, why the new content was refused).
    pub error: Option<String>,
    /// From the start of the attempt to the swap (or failure).
    pub duration: Duration,
}

/// Counters of the reload machinery.
#[derive(Debug, Clone, Default)]
pub struct ReloadStats {
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    /// Failures by reason: `io`, `corrupt`, `validation`, `panic`.
    pub failures_by_reason: BTreeMap<&'static str, u64>,
    pub modified_in_place: u64,
    /// Callbacks that panicked (the watcher survives them).
    pub callback_panics: u64,
    pub generation: u64,
    /// Unix time (seconds) of the last successful reload.
    pub last_success_unix: Option<u64>,
    pub last_duration: Option<Duration>,
    /// `"inotify"`, `"polling"` (inotify unavailable or forced), or `"off"`.
    pub watch_mode: &'static str,
    /// Why the watcher fell back to polling, when it did.
    pub watch_note: Option<String>,
}

pub(crate) type Callback = Arc<dyn Fn(&ReloadEvent) + Send + Sync + 'static>;

/// Knobs of auto-reload; set through [`OpenOptions`](crate::OpenOptions).
#[derive(Debug, Clone)]
pub(crate) struct ReloadOptions {
    pub debounce: Duration,
    pub max_wait: Duration,
    pub validation: ValidationLevel,
    pub poll_interval: Duration,
    pub force_polling: bool,
    pub max_backoff: Duration,
    pub in_memory: bool,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        ReloadOptions {
            debounce: Duration::from_millis(200),
            max_wait: Duration::from_secs(2),
            validation: ValidationLevel::Standard,
            poll_interval: Duration::from_secs(1),
            force_polling: false,
            max_backoff: Duration::from_secs(30),
            in_memory: false,
        }
    }
}

/// Reload state shared by the watcher thread and `reload_now`.
pub(crate) struct ReloadState {
    pub options: ReloadOptions,
    pub callback: Option<Callback>,
    pub stats: Mutex<ReloadStats>,
    /// Serialises reload attempts (watcher vs `reload_now`).
    pub attempt: Mutex<()>,
    /// Identity of the last file that failed, so it is not retried until it changes.
    pub last_failed: Mutex<Option<FileIdentity>>,
    /// The snapshot just swapped in replaced one whose IPv4 index was built: build its own
    /// (after the event is delivered, so the index does not delay the reload).
    pub index_pending: AtomicBool,
}

impl ReloadState {
    pub fn new(options: ReloadOptions, callback: Option<Callback>) -> ReloadState {
        ReloadState {
            options,
            callback,
            stats: Mutex::new(ReloadStats {
                watch_mode: "off",
                ..Default::default()
            }),
            attempt: Mutex::new(()),
            last_failed: Mutex::new(None),
            index_pending: AtomicBool::new(false),
        }
    }
}

/// Work that follows a swap but must not delay it, nor the next reload: the new snapshot's IPv4
/// index, when the workload uses one, built on a thread of its own (a large tree takes a few
/// hundred milliseconds). Until it is built, IPv4 lookups walk the tree (they never wait).
pub(crate) fn after_swap(shared: &Shared) {
    if shared.reload.index_pending.swap(false, Ordering::AcqRel) {
        let snap = shared.current.load_full();
        let spawned = thread::Builder::new()
            .name("matchy-index".into())
            .spawn(move || {
                snap.build_ip_index();
                drop(snap);
                return_freed_memory();
            });
        // Without a thread, lookups build it after a thousand IPv4 queries, as after an open.
        drop(spawned);
    }
}

/// Hands the memory that malloc keeps after a large free back to the OS. A replaced snapshot's
/// IPv4 index (megabytes, allocated on the thread that built it) and the scratch space of
/// building the next one end up as free space inside glibc's per-thread arenas, which glibc
/// does not return by itself: across reloads of a 98 MB file the process kept ~150 MB of such
/// free memory resident.
pub(crate) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free pages of malloc's heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the counters inconsistent in a way
    // that matters more than losing reloads would.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn reason(e: &Error) -> &'static str {
    match e {
        Error::Io { .. } => "io",
        Error::Corrupt { .. } => "corrupt",
        _ => "validation",
    }
}

/// Check the path and swap in a new snapshot if it names a different (valid) file.
/// `force` reports `Skipped` too (manual reloads); the watcher passes false.
pub(crate) fn attempt(shared: &Shared, force: bool) -> Result<Option<ReloadEvent>> {
    let Some(path) = shared.path.as_deref() else {
        return Err(Error::InvalidQuery {
            query: String::new(),
            what: "this database was opened from bytes, not a file: there is nothing to reload"
                .into(),
        });
    };
    let state = &shared.reload;
    let _serial = lock(&state.attempt);
    let start = Instant::now();
    let event = |kind, error: Option<String>| ReloadEvent {
        path: path.to_path_buf(),
        kind,
        generation: shared.generation(),
        error,
        duration: start.elapsed(),
    };
    let now = match FileIdentity::of_path(path) {
        Ok(id) => id,
        Err(e) => {
            // The path may be missing for a moment during a swap; the watcher will look again.
            if !force {
                return Ok(None);
            }
            let e = Error::io(path, e);
            record_failure(state, &e, None);
            return Ok(Some(event(ReloadKind::Failed, Some(e.to_string()))));
        }
    };
    let current = shared.current.load_full();
    let served = current.identity();
    if served == Some(now) {
        return Ok(force.then(|| event(ReloadKind::Skipped, None)));
    }
    if !force && *lock(&state.last_failed) == Some(now) {
        return Ok(None); // the same broken file: wait until it changes
    }
    lock(&state.stats).attempts += 1;
    let in_place = served.is_some_and(|s| s.modified_in_place(&now));
    if in_place && current.is_mapped() {
        // The bytes under our mapping changed: stop reading them before anything else.
        current.poison();
        lock(&state.stats).modified_in_place += 1;
    }
    // Released here so the swap below can retire the last strong reference but the readers'.
    drop(current);
    // In-place writes are only trusted as a private copy: the file may change again under a map.
    let in_memory = state.options.in_memory || in_place;
    let level = state.options.validation;
    let opened = catch_unwind(AssertUnwindSafe(|| -> Result<Snapshot> {
        let snap = Snapshot::open(path, in_memory)?;
        let report = snap.validate(level);
        if let Some(first) = report.errors.first() {
            return Err(Error::Corrupt {
                offset: first.offset.unwrap_or(0),
                what: format!(
                    "{}: fails {} validation: {}",
                    path.display(),
                    level.as_str(),
                    first.what
                ),
            });
        }
        Ok(snap)
    }));
    let kind_ok = if in_place {
        ReloadKind::ModifiedInPlace
    } else {
        ReloadKind::Reloaded
    };
    match opened {
        Ok(Ok(snap)) => {
            // Store the snapshot before publishing its generation: a reader that sees the new
            // generation is guaranteed to load the new snapshot.
            let old = shared.current.swap(Arc::new(snap));
            let generation = shared.bump_generation();
            state
                .index_pending
                .store(old.ip_index_built(), Ordering::Release);
            // After the bump: readers that miss it are seen by the release's barrier.
            shared.retire(old);
            *lock(&state.last_failed) = None;
            let mut st = lock(&state.stats);
            st.successes += 1;
            st.generation = generation;
            st.last_duration = Some(start.elapsed());
            st.last_success_unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs());
            drop(st);
            Ok(Some(event(kind_ok, None)))
        }
        Ok(Err(e)) => {
            record_failure(state, &e, Some(now));
            let kind = if in_place {
                ReloadKind::ModifiedInPlace
            } else {
                ReloadKind::Failed
            };
            Ok(Some(event(kind, Some(e.to_string()))))
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let mut st = lock(&state.stats);
            st.failures += 1;
            *st.failures_by_reason.entry("panic").or_default() += 1;
            drop(st);
            *lock(&state.last_failed) = Some(now);
            Ok(Some(event(
                ReloadKind::Failed,
                Some(format!("{}: opening panicked: {what}", path.display())),
            )))
        }
    }
}

fn record_failure(state: &ReloadState, e: &Error, id: Option<FileIdentity>) {
    let mut st = lock(&state.stats);
    st.failures += 1;
    *st.failures_by_reason.entry(reason(e)).or_default() += 1;
    drop(st);
    if id.is_some() {
        *lock(&state.last_failed) = id;
    }
}

/// Run the user's callback; a panic in it is counted, never propagated.
pub(crate) fn deliver(shared: &Shared, event: &ReloadEvent) {
    if let Some(cb) = &shared.reload.callback {
        if catch_unwind(AssertUnwindSafe(|| cb(event))).is_err() {
            lock(&shared.reload.stats).callback_panics += 1;
        }
    }
}

enum Msg {
    Changed,
    Stop,
}

/// The running watcher; stopping it (drop) joins the thread unless called from that thread.
pub(crate) struct Watcher {
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
    /// Shared with the thread, which re-watches the directory when it is recreated.
    notify: SharedNotify,
}

type SharedNotify = Arc<Mutex<Option<notify::RecommendedWatcher>>>;

impl Watcher {
    pub fn spawn(shared: Arc<Shared>) -> Result<Watcher> {
        let path = shared.path.clone().expect("auto-reload needs a path");
        let dir = watch_dir(&path);
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let opts = shared.reload.options.clone();
        let mut notify = None;
        let mut note = None;
        // Taken before the watch is added: if the directory is replaced in between, the
        // thread sees a different identity and watches again.
        let watched = dir_identity(&dir);
        if !opts.force_polling {
            let tx2 = tx.clone();
            let made = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
                // Every event (including errors and rescans) means "look again".
                let _ = tx2.send(Msg::Changed);
            });
            match made {
                Ok(mut w) => match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => notify = Some(w),
                    Err(e) => note = Some(format!("cannot watch {}: {e}; polling", dir.display())),
                },
                Err(e) => note = Some(format!("inotify unavailable: {e}; polling")),
            }
        }
        {
            let mut st = lock(&shared.reload.stats);
            st.watch_mode = if notify.is_some() {
                "inotify"
            } else {
                "polling"
            };
            st.watch_note = if opts.force_polling {
                Some("polling forced by options".into())
            } else {
                note
            };
        }
        let dir_watch = DirWatch {
            enabled: notify.is_some(),
            watched: watched.filter(|_| notify.is_some()),
            notify: Arc::new(Mutex::new(notify)),
            dir,
        };
        let notify = dir_watch.notify.clone();
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name("matchy-reload".into())
            .spawn(move || watch_loop(shared, rx, stop2, opts, dir_watch))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Watcher {
            stop,
            tx,
            thread_id: thread.thread().id(),
            thread: Some(thread),
            notify,
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let notify = lock(&self.notify).take();
        drop(notify);
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            // Dropped from inside the callback: the thread exits when the callback returns.
            if thread::current().id() != self.thread_id {
                let _ = t.join();
            }
        }
    }
}

/// The directory to watch: the parent of the path as given (not of a symlink's target: swaps
/// happen where the user's path lives).
fn watch_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// The inotify watch on the database's directory. A watch follows the directory's inode: once
/// the directory is removed (and created again) it hears nothing more, so every wake-up checks
/// that the directory is still the one watched and watches the new one otherwise.
struct DirWatch {
    notify: SharedNotify,
    dir: PathBuf,
    enabled: bool,
    /// (device, inode) of the directory under watch; `None` while the watch is lost.
    watched: Option<(u64, u64)>,
}

impl DirWatch {
    /// The watch is lost (the directory is missing, or could not be watched again): check
    /// often until it is back, since no event will say when.
    fn lost(&self) -> bool {
        self.enabled && self.watched.is_none()
    }

    /// Watch the directory again if it was replaced; true if it did (events may have been
    /// missed meanwhile, so the caller should look now).
    fn refresh(&mut self, shared: &Shared) -> bool {
        if !self.enabled {
            return false;
        }
        let now = dir_identity(&self.dir);
        if now.is_some() && now == self.watched {
            return false;
        }
        self.watched = None;
        let Some(now) = now else {
            return false;
        };
        let mut guard = lock(&self.notify);
        let Some(w) = guard.as_mut() else {
            return false; // being dropped
        };
        let _ = w.unwatch(&self.dir);
        match w.watch(&self.dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched = Some(now);
                true
            }
            Err(e) => {
                lock(&shared.reload.stats).watch_note = Some(format!(
                    "cannot watch {} again: {e}; polling",
                    self.dir.display()
                ));
                false
            }
        }
    }
}

/// Poison the served mapping if its file now has the same inode but a new size or mtime.
fn poison_if_modified_in_place(shared: &Shared) {
    let current = shared.current.load();
    if let (Some(served), Some(path)) = (current.identity(), shared.path.as_deref()) {
        if let Ok(now) = FileIdentity::of_path(path) {
            if current.is_mapped() && served.modified_in_place(&now) {
                current.poison();
            }
        }
    }
}

/// How often the watcher looks again at replaced snapshots that were still in use.
const RELEASE_RETRY: Duration = Duration::from_millis(50);

fn watch_loop(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Msg>,
    stop: Arc<AtomicBool>,
    opts: ReloadOptions,
    mut dir_watch: DirWatch,
) {
    let mut failures: u32 = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // A replaced snapshot still in use is released soon after its last reader lets go.
        let releasing = shared.release_retired();
        // Wait for an event or the next poll tick (backing off after repeated failures).
        let backoff = if releasing {
            RELEASE_RETRY
        } else if dir_watch.lost() {
            opts.debounce.max(Duration::from_millis(10))
        } else {
            opts.poll_interval
                .saturating_mul(1u32 << failures.min(5))
                .min(opts.max_backoff.max(opts.poll_interval))
        };
        match rx.recv_timeout(backoff) {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Msg::Changed) => {
                // An in-place write to the mapped file must stop readers at once, not after the
                // debounce: they would read half-written bytes meanwhile.
                poison_if_modified_in_place(&shared);
                // Debounce: wait for a quiet period, but never longer than max_wait in all.
                let first = Instant::now();
                let mut quiet_until = first + opts.debounce;
                loop {
                    let now = Instant::now();
                    let deadline = quiet_until.min(first + opts.max_wait);
                    if now >= deadline {
                        break;
                    }
                    match rx.recv_timeout(deadline - now) {
                        Ok(Msg::Changed) => quiet_until = Instant::now() + opts.debounce,
                        Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) if dir_watch.refresh(&shared) => {}
            Err(RecvTimeoutError::Timeout) => {
                // Polling: a changed identity must hold still for the debounce period.
                let before = shared
                    .path
                    .as_deref()
                    .and_then(|p| FileIdentity::of_path(p).ok());
                if before.is_none() || before == shared.current.load().identity() {
                    continue;
                }
                thread::sleep(opts.debounce);
                let after = shared
                    .path
                    .as_deref()
                    .and_then(|p| FileIdentity::of_path(p).ok());
                if after != before {
                    continue; // still changing; look again at the next tick
                }
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        dir_watch.refresh(&shared);
        match attempt(&shared, false) {
            Ok(Some(ev)) => {
                match ev.kind {
                    ReloadKind::Failed => failures = failures.saturating_add(1),
                    _ => failures = 0,
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                deliver(&shared, &ev);
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                after_swap(&shared);
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
}
