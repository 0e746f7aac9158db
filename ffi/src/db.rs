//! The database handle: opening (path, options, caller's buffer), closing, metadata, validation,
//! and live reload (options, the C callback trampoline, `matchy_reload_now`, stats).

use std::ffi::{c_char, c_int, c_void, CString, OsStr};
use std::mem::size_of;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use engine::{Database, ReloadEvent, ReloadKind, ValidationLevel};

use crate::error::{
    guard, guard_ptr, guard_value, non_null, to_c_string, Failure, Outcome, MATCHY_ERR_CORRUPT,
    MATCHY_ERR_RELOAD_FAILED, MATCHY_ERR_UNSUPPORTED, MATCHY_OK,
};

/// Open-time validation: the O(1) checks of metadata and section bounds at open; a file that
/// auto-reload picks up must pass `MATCHY_VALIDATION_STANDARD`.
pub const MATCHY_VALIDATION_DEFAULT: c_int = 0;
/// Metadata, section bounds, every section checksum and the entry counts (linear in the file
/// size, no decoding).
pub const MATCHY_VALIDATION_STANDARD: c_int = 1;
/// Everything `STANDARD` checks, plus every tree node, index entry and data value.
pub const MATCHY_VALIDATION_STRICT: c_int = 2;

/// An open database. Opaque; create with `matchy_open*`, release with `matchy_close`.
///
/// Thread safety: every function taking a `const matchy_t *` may be called from any number of
/// threads at once. `matchy_close` must not run concurrently with other calls on the same
/// handle (except from inside that handle's reload callback, see `matchy_close`).
pub struct matchy_t {
    pub(crate) db: Database,
    /// The path as given, for reload events (`None` for buffers).
    path: Option<CString>,
}

/// What a reload attempt did.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum matchy_reload_kind_t {
    /// A new file was opened, validated and is now served.
    MATCHY_RELOAD_RELOADED = 1,
    /// A new file was found but could not be opened or failed validation; the previous
    /// version is still served. `error` says why.
    MATCHY_RELOAD_FAILED = 2,
    /// The path still names the file being served: nothing to do (`matchy_reload_now` only).
    MATCHY_RELOAD_SKIPPED = 3,
    /// The served file was written in place instead of being replaced by rename. Its mapping is
    /// no longer trusted: valid new content is served from a private in-memory copy (`error`
    /// NULL), otherwise (`error` set) lookups fail until a good file is renamed into place.
    MATCHY_RELOAD_MODIFIED_IN_PLACE = 4,
}

/// One reload attempt, as passed to the reload callback and filled in by `matchy_reload_now`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct matchy_reload_event_t {
    /// `sizeof(matchy_reload_event_t)` as the library knows it. Set it before passing a struct
    /// to `matchy_reload_now`; fields past it were not written.
    pub struct_size: usize,
    pub kind: matchy_reload_kind_t,
    /// The generation served after this event: 1 at open, +1 at each successful reload.
    pub generation: u64,
    /// From the start of the attempt to the swap (or the failure), in nanoseconds.
    pub duration_ns: u64,
    /// The database path as given to `matchy_open*`. NUL-terminated, owned by matchy: valid
    /// during the callback (for `matchy_reload_now`: until `matchy_close`).
    pub path: *const c_char,
    /// Why the attempt failed, or NULL. NUL-terminated, owned by matchy, valid during the
    /// callback only (always NULL from `matchy_reload_now`, which reports failures through its
    /// return code and `matchy_last_error()`).
    pub error: *const c_char,
}

/// The reload callback: called after every reload attempt the watcher makes (Reloaded, Failed,
/// ModifiedInPlace), on matchy's watcher thread (never on a thread of yours), one call at a time
/// per database. `event` and the strings in it are valid during the call only; `user_data` is
/// `reload_callback_user_data` from the options.
///
/// Inside the callback you may call `matchy_lookup*` and every other function on the database
/// (the new version is already served), and you may call `matchy_close` on it: the watcher
/// then stops when the callback returns. It may run while `matchy_open_with_options` is still
/// returning (if the file changes that early), so publish your handle to it with the usual
/// care. No callback runs after `matchy_close` has returned. It must not throw (C++) or
/// `longjmp` out: that would abort the process.
pub type matchy_reload_callback_t =
    Option<unsafe extern "C" fn(event: *const matchy_reload_event_t, user_data: *mut c_void)>;

/// Options for `matchy_open_with_options`. Always start with `matchy_init_open_options`, which
/// sets `struct_size` and the defaults, then change fields: new fields may be added at the end
/// in later versions and old programs keep working.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct matchy_open_options_t {
    /// `sizeof(matchy_open_options_t)`; set by `matchy_init_open_options`.
    pub struct_size: usize,
    /// Watch the file's directory and serve each new version renamed (or symlinked) into place,
    /// once it has been opened and validated; a bad new file never replaces a good one.
    /// Default false.
    pub auto_reload: bool,
    /// Detect changes by polling the file's identity instead of inotify. Default false.
    pub force_polling: bool,
    /// Read the file into memory instead of mapping it (nothing done to the file afterwards can
    /// affect lookups). Default false.
    pub in_memory: bool,
    /// `MATCHY_VALIDATION_DEFAULT` (the default), `_STANDARD` or `_STRICT`: with STANDARD or
    /// STRICT, the file is validated at that level at open (failure: NULL with
    /// `MATCHY_ERR_CORRUPT`) and every reloaded file must pass it too.
    pub validation: c_int,
    /// Quiet period after the last file-system event before a reload check, in milliseconds;
    /// 0 means the default (200).
    pub debounce_ms: u32,
    /// How often the file's identity is checked even without events, in milliseconds; 0 means
    /// the default (1000).
    pub poll_interval_ms: u32,
    /// Called after each automatic reload attempt (see `matchy_reload_callback_t`); NULL for none.
    pub reload_callback: matchy_reload_callback_t,
    /// Passed unchanged to `reload_callback`. matchy never dereferences it.
    pub reload_callback_user_data: *mut c_void,
}

impl Default for matchy_open_options_t {
    fn default() -> Self {
        matchy_open_options_t {
            struct_size: size_of::<matchy_open_options_t>(),
            auto_reload: false,
            force_polling: false,
            in_memory: false,
            validation: MATCHY_VALIDATION_DEFAULT,
            debounce_ms: 0,
            poll_interval_ms: 0,
            reload_callback: None,
            reload_callback_user_data: std::ptr::null_mut(),
        }
    }
}

/// Fill `opts` with the defaults and set `opts->struct_size`. NULL is ignored.
///
/// # Safety
/// `opts` is NULL or points to writable memory of `sizeof(matchy_open_options_t)` bytes.
#[no_mangle]
pub unsafe extern "C" fn matchy_init_open_options(opts: *mut matchy_open_options_t) {
    guard_value((), || {
        if !opts.is_null() {
            // SAFETY: non-NULL and writable per the contract; `write` ignores the old contents.
            unsafe { opts.write(matchy_open_options_t::default()) };
        }
        Ok(())
    })
}

/// Open the database file at `path` (memory-mapped; O(1) in the file size) with default options.
/// Returns NULL on failure: `matchy_last_error()` says why, `matchy_last_error_code()` gives
/// the code (`MATCHY_ERR_IO`, `MATCHY_ERR_CORRUPT`, ...). Release with `matchy_close`.
///
/// `path` is NUL-terminated; it is used as bytes (any file name the OS accepts, UTF-8 or not).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn matchy_open(path: *const c_char) -> *mut matchy_t {
    // SAFETY: forwarded contract; NULL options mean the defaults.
    unsafe { matchy_open_with_options(path, std::ptr::null()) }
}

/// Open the database file at `path` with `opts` (NULL: the defaults). See `matchy_open` for the
/// result, and `matchy_open_options_t` for the options. Fails with `MATCHY_ERR_INVALID_ARG` if
/// `opts->struct_size` is smaller than the first published size of the struct or
/// `opts->validation` is unknown.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `opts` is NULL or points to an options struct
/// initialised by `matchy_init_open_options`.
#[no_mangle]
pub unsafe extern "C" fn matchy_open_with_options(
    path: *const c_char,
    opts: *const matchy_open_options_t,
) -> *mut matchy_t {
    guard_ptr(|| {
        if path.is_null() {
            return Err(Failure::null("path"));
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let path_c = unsafe { std::ffi::CStr::from_ptr(path) };
        let o = if opts.is_null() {
            matchy_open_options_t::default()
        } else {
            // SAFETY: non-NULL, points to an initialised struct per the contract; the size is
            // read first so a struct from an older header is never read past its end.
            let size = unsafe { (*opts).struct_size };
            if size < size_of::<matchy_open_options_t>() {
                return Err(Failure::invalid(format!(
                    "opts->struct_size is {size}, expected at least {}: initialise options with matchy_init_open_options",
                    size_of::<matchy_open_options_t>()
                )));
            }
            // SAFETY: as above, and at least our size is readable.
            unsafe { read_options(opts) }
        };
        let level = validation_level(o.validation)?;
        let file = Path::new(OsStr::from_bytes(path_c.to_bytes()));
        let mut builder = Database::from(file)
            .in_memory(o.in_memory)
            .force_polling(o.force_polling)
            .validation(level.unwrap_or(ValidationLevel::Standard));
        if o.debounce_ms > 0 {
            builder = builder.debounce(Duration::from_millis(o.debounce_ms.into()));
        }
        if o.poll_interval_ms > 0 {
            builder = builder.poll_interval(Duration::from_millis(o.poll_interval_ms.into()));
        }
        if let Some(cb) = o.reload_callback {
            let tramp = Trampoline {
                cb,
                user_data: o.reload_callback_user_data,
                path: path_c.to_owned(),
            };
            builder = builder.on_reload(move |ev| tramp.deliver(ev));
        }
        if o.auto_reload {
            builder = builder.auto_reload();
        }
        let db = builder.open()?;
        if let Some(level) = level {
            check(&db, level)?;
        }
        Ok(Box::into_raw(Box::new(matchy_t {
            db,
            path: Some(path_c.to_owned()),
        })))
    })
}

/// Copy the caller's options. The `bool` fields are read as bytes: a C caller can leave any
/// byte there (e.g. a struct filled with `memset`), and only 0 and 1 are valid Rust `bool`s.
///
/// # Safety
/// `opts` points to at least `size_of::<matchy_open_options_t>()` readable bytes.
unsafe fn read_options(opts: *const matchy_open_options_t) -> matchy_open_options_t {
    use std::ptr::addr_of;
    // SAFETY: every field is read at its own offset inside the readable struct; `u8` and the
    // other field types accept any bit pattern (an `Option` of a function pointer is NULL or
    // a pointer), so no read produces an invalid value.
    unsafe {
        let flag = |p: *const bool| p.cast::<u8>().read() != 0;
        matchy_open_options_t {
            struct_size: addr_of!((*opts).struct_size).read(),
            auto_reload: flag(addr_of!((*opts).auto_reload)),
            force_polling: flag(addr_of!((*opts).force_polling)),
            in_memory: flag(addr_of!((*opts).in_memory)),
            validation: addr_of!((*opts).validation).read(),
            debounce_ms: addr_of!((*opts).debounce_ms).read(),
            poll_interval_ms: addr_of!((*opts).poll_interval_ms).read(),
            reload_callback: addr_of!((*opts).reload_callback).read(),
            reload_callback_user_data: addr_of!((*opts).reload_callback_user_data).read(),
        }
    }
}

/// Open a database held in memory: the `len` bytes at `data` are copied, so the caller may
/// free them as soon as this returns. NULL on failure (see `matchy_open`). Such a handle has no
/// file: reloading it fails with `MATCHY_ERR_UNSUPPORTED`.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn matchy_open_buffer(data: *const c_void, len: usize) -> *mut matchy_t {
    guard_ptr(|| {
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        // SAFETY: non-NULL and `len` readable bytes per the contract; copied before returning.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        let db = Database::from_bytes(bytes.to_vec())?;
        Ok(Box::into_raw(Box::new(matchy_t { db, path: None })))
    })
}

/// Close a database: stops its watcher (waiting for a running callback to finish, unless
/// called from inside that callback) and releases the handle. NULL is ignored.
///
/// Results filled from this database stay valid until you free or clear them (they keep the
/// file version they came from mapped). After it returns no reload callback runs for this
/// database, and `user_data` may be freed. No other thread may use `db` during or after it.
///
/// Calling it from inside this database's reload callback is allowed: the watcher stops once
/// the callback returns. Do not touch `db` again after that call, even in the same callback.
///
/// # Safety
/// `db` is NULL or a handle from `matchy_open*` not closed yet.
#[no_mangle]
pub unsafe extern "C" fn matchy_close(db: *mut matchy_t) {
    guard_value((), || {
        if !db.is_null() {
            // SAFETY: a live handle from `Box::into_raw` per the contract, released once.
            drop(unsafe { Box::from_raw(db) });
        }
        Ok(())
    })
}

/// The handle behind `db`.
///
/// # Safety
/// `db` is NULL or a live handle.
#[inline]
pub(crate) unsafe fn handle<'a>(db: *const matchy_t) -> Outcome<&'a matchy_t> {
    // SAFETY: per the contract.
    unsafe { non_null(db, "db") }
}

fn validation_level(v: c_int) -> Outcome<Option<ValidationLevel>> {
    match v {
        MATCHY_VALIDATION_DEFAULT => Ok(None),
        MATCHY_VALIDATION_STANDARD => Ok(Some(ValidationLevel::Standard)),
        MATCHY_VALIDATION_STRICT => Ok(Some(ValidationLevel::Strict)),
        other => Err(Failure::invalid(format!(
            "unknown validation level {other} (expected MATCHY_VALIDATION_DEFAULT, _STANDARD or _STRICT)"
        ))),
    }
}

fn check(db: &Database, level: ValidationLevel) -> Outcome<()> {
    let report = db.validate(level);
    let Some(first) = report.errors.first() else {
        return Ok(());
    };
    let more = match report.errors.len() {
        1 => String::new(),
        n => format!(" (and {} more problems)", n - 1),
    };
    Err(Failure::new(
        MATCHY_ERR_CORRUPT,
        format!("fails {} validation: {first}{more}", level.as_str()),
    ))
}

/// Validate the version being served: `MATCHY_VALIDATION_STANDARD` (or `_DEFAULT`) checks
/// metadata, section bounds and checksums; `_STRICT` also walks every tree node, index entry and
/// value. `MATCHY_OK` if valid; `MATCHY_ERR_CORRUPT` if not, with the first problem (and the
/// number of others) in `matchy_last_error()`.
///
/// # Safety
/// `db` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn matchy_validate(db: *const matchy_t, level: c_int) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { handle(db) }?;
        let level = validation_level(level)?.unwrap_or(ValidationLevel::Standard);
        check(&h.db, level)?;
        Ok(MATCHY_OK)
    })
}

/// Which version is served: 1 at open, +1 at every successful reload; 0 if `db` is NULL.
///
/// # Safety
/// `db` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn matchy_generation(db: *const matchy_t) -> u64 {
    guard_value(0, || {
        // SAFETY: per the contract.
        Ok(unsafe { handle(db) }?.db.generation())
    })
}

// ---------------------------------------------------------------------------------------------
// Reload

/// Carries the C callback to the watcher thread.
struct Trampoline {
    cb: unsafe extern "C" fn(*const matchy_reload_event_t, *mut c_void),
    user_data: *mut c_void,
    path: CString,
}

// SAFETY: matchy never dereferences `user_data`; the header documents that the callback runs on
// the watcher thread, so the C side makes whatever it points to safe to use from there.
unsafe impl Send for Trampoline {}
// SAFETY: as above; the callback is never called concurrently for one database.
unsafe impl Sync for Trampoline {}

impl Trampoline {
    fn deliver(&self, ev: &ReloadEvent) {
        let error = ev.error.as_deref().map(to_c_string);
        let event = event_to_c(ev, &self.path, error.as_deref());
        // SAFETY: a function pointer the caller gave us with this signature; the event and its
        // strings outlive the call.
        unsafe { (self.cb)(&event, self.user_data) };
    }
}

fn kind_to_c(kind: ReloadKind) -> matchy_reload_kind_t {
    match kind {
        ReloadKind::Reloaded => matchy_reload_kind_t::MATCHY_RELOAD_RELOADED,
        ReloadKind::Failed => matchy_reload_kind_t::MATCHY_RELOAD_FAILED,
        ReloadKind::Skipped => matchy_reload_kind_t::MATCHY_RELOAD_SKIPPED,
        ReloadKind::ModifiedInPlace => matchy_reload_kind_t::MATCHY_RELOAD_MODIFIED_IN_PLACE,
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn event_to_c(
    ev: &ReloadEvent,
    path: &std::ffi::CStr,
    error: Option<&std::ffi::CStr>,
) -> matchy_reload_event_t {
    matchy_reload_event_t {
        struct_size: size_of::<matchy_reload_event_t>(),
        kind: kind_to_c(ev.kind),
        generation: ev.generation,
        duration_ns: duration_ns(ev.duration),
        path: path.as_ptr(),
        error: error.map_or(std::ptr::null(), |e| e.as_ptr()),
    }
}

/// Check the database path now and serve the file it names if that is a new, valid file (a
/// manual trigger: matchy installs no signal handlers; works with or without auto-reload).
/// `MATCHY_OK` when a new version is served (`RELOADED`, or `MODIFIED_IN_PLACE` with new content
/// accepted) or nothing changed (`SKIPPED`); `MATCHY_ERR_RELOAD_FAILED` when the new file was
/// refused (the message says why; the previous version serves on); `MATCHY_ERR_UNSUPPORTED` for
/// a database opened from a buffer. The reload callback is not called for manual reloads.
///
/// `out` may be NULL. Otherwise set `out->struct_size = sizeof *out` first; it is written only
/// on `MATCHY_OK`.
///
/// # Safety
/// `db` is NULL or a live handle; `out` is NULL or points to a writable event struct whose
/// `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn matchy_reload_now(
    db: *const matchy_t,
    out: *mut matchy_reload_event_t,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { handle(db) }?;
        if !out.is_null() {
            // SAFETY: non-NULL, per the contract.
            unsafe { check_struct_size((*out).struct_size, size_of::<matchy_reload_event_t>()) }?;
        }
        let Some(path) = &h.path else {
            return Err(Failure::new(
                MATCHY_ERR_UNSUPPORTED,
                "this database was opened from a buffer: there is no file to reload",
            ));
        };
        let ev = h.db.reload_now()?;
        if let Some(error) = &ev.error {
            return Err(Failure::new(MATCHY_ERR_RELOAD_FAILED, error.clone()));
        }
        if ev.kind == ReloadKind::Failed {
            return Err(Failure::new(MATCHY_ERR_RELOAD_FAILED, "reload failed"));
        }
        if !out.is_null() {
            // SAFETY: non-NULL and at least our size (checked above).
            unsafe { out.write(event_to_c(&ev, path, None)) };
        }
        Ok(MATCHY_OK)
    })
}

pub(crate) fn check_struct_size(given: usize, ours: usize) -> Outcome<()> {
    if given < ours {
        return Err(Failure::invalid(format!(
            "struct_size is {given}, expected at least {ours}: set struct_size = sizeof the struct"
        )));
    }
    Ok(())
}

/// Reload counters of a database.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct matchy_stats_t {
    /// `sizeof(matchy_stats_t)`: set it before calling `matchy_stats`.
    pub struct_size: usize,
    /// The generation served: 1 at open, +1 at every successful reload.
    pub generation: u64,
    /// Reload attempts on a changed file (automatic and manual).
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    /// Times the served file was found written in place.
    pub modified_in_place: u64,
    /// Reload callbacks that failed (a Rust panic inside the callback machinery).
    pub callback_panics: u64,
    /// Unix time (seconds) of the last successful reload; 0 if none yet.
    pub last_success_unix: u64,
    /// Duration of the last successful reload in nanoseconds; 0 if none yet.
    pub last_duration_ns: u64,
    /// `"inotify"`, `"polling"` or `"off"` (no auto-reload). Static: do not free.
    pub watch_mode: *const c_char,
}

/// Fill `out` with the reload counters of `db`. Set `out->struct_size = sizeof *out` first;
/// `out` is written only on `MATCHY_OK`.
///
/// # Safety
/// `db` is NULL or a live handle; `out` is NULL or points to a writable stats struct whose
/// `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn matchy_stats(db: *const matchy_t, out: *mut matchy_stats_t) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { handle(db) }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: non-NULL, per the contract.
        unsafe { check_struct_size((*out).struct_size, size_of::<matchy_stats_t>()) }?;
        let s = h.db.stats();
        let watch_mode = match s.watch_mode {
            "inotify" => c"inotify",
            "polling" => c"polling",
            _ => c"off",
        };
        let stats = matchy_stats_t {
            struct_size: size_of::<matchy_stats_t>(),
            generation: s.generation,
            attempts: s.attempts,
            successes: s.successes,
            failures: s.failures,
            modified_in_place: s.modified_in_place,
            callback_panics: s.callback_panics,
            last_success_unix: s.last_success_unix.unwrap_or(0),
            last_duration_ns: s.last_duration.map_or(0, duration_ns),
            watch_mode: watch_mode.as_ptr(),
        };
        // SAFETY: non-NULL and at least our size (checked above).
        unsafe { out.write(stats) };
        Ok(MATCHY_OK)
    })
}

// ---------------------------------------------------------------------------------------------
// Metadata

/// One description of the database, in one language.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct matchy_description_t {
    pub language: *const c_char,
    pub text: *const c_char,
}

/// Metadata, counts and sizes of the version served when `matchy_info` was called. Allocated
/// by matchy: release with `matchy_info_free`. Every string and array in it is owned by the
/// struct and valid until then; strings are NUL-terminated.
#[repr(C)]
#[derive(Debug)]
pub struct matchy_info_t {
    /// `sizeof(matchy_info_t)` as the library knows it: fields past it do not exist.
    pub struct_size: usize,
    /// `"matchy"` for files with matchy's indexes, `"mmdb"` for plain MaxMind DB files.
    pub format: *const c_char,
    /// The MaxMind DB `database_type`.
    pub database_type: *const c_char,
    /// The path given at open; NULL for a database opened from a buffer.
    pub path: *const c_char,
    pub generation: u64,
    /// Unix time (seconds) the file was built.
    pub build_epoch: u64,
    /// 4 or 6.
    pub ip_version: u32,
    /// Search tree record size in bits (24, 28 or 32).
    pub record_size: u32,
    pub node_count: u32,
    /// Literals and globs compare ASCII letters without case.
    pub case_insensitive: bool,
    /// The counts below are known (false for plain `.mmdb` files, which do not record them).
    pub has_counts: bool,
    pub ip_count: u64,
    pub literal_count: u64,
    pub glob_count: u64,
    pub file_size: u64,
    pub tree_size: u64,
    pub data_section_size: u64,
    pub language_count: usize,
    /// `language_count` language codes.
    pub languages: *const *const c_char,
    pub description_count: usize,
    /// `description_count` descriptions.
    pub descriptions: *const matchy_description_t,
}

/// What `matchy_info` allocates: the public struct first, then the storage it points into.
#[repr(C)]
struct InfoBox {
    info: matchy_info_t,
    _strings: Vec<CString>,
    _languages: Vec<*const c_char>,
    _descriptions: Vec<matchy_description_t>,
}

/// Metadata and counts of the version being served. On `MATCHY_OK`, `*out` is a new struct to
/// release with `matchy_info_free`; on failure `*out` is not written.
///
/// # Safety
/// `db` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_info(db: *const matchy_t, out: *mut *mut matchy_info_t) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { handle(db) }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let generation = h.db.generation();
        let i = h.db.info();
        let mut strings = Vec::new();
        let mut keep = |s: &str| {
            let c = to_c_string(s);
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let database_type = keep(&i.database_type);
        let languages: Vec<*const c_char> = i.languages.iter().map(|l| keep(l)).collect();
        let descriptions: Vec<matchy_description_t> = i
            .description
            .iter()
            .map(|(l, t)| matchy_description_t {
                language: keep(l),
                text: keep(t),
            })
            .collect();
        let format = if i.format == "mmdb" {
            c"mmdb"
        } else {
            c"matchy"
        };
        let info = matchy_info_t {
            struct_size: size_of::<matchy_info_t>(),
            format: format.as_ptr(),
            database_type,
            path: h.path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            generation,
            build_epoch: i.build_epoch,
            ip_version: i.ip_version.into(),
            record_size: i.record_size.into(),
            node_count: i.node_count,
            case_insensitive: i.match_mode == engine::MatchMode::CaseInsensitive,
            has_counts: i.ip_count.is_some(),
            ip_count: i.ip_count.unwrap_or(0),
            literal_count: i.literal_count.unwrap_or(0),
            glob_count: i.glob_count.unwrap_or(0),
            file_size: i.file_size,
            tree_size: i.tree_size,
            data_section_size: i.data_section_size,
            language_count: languages.len(),
            languages: languages.as_ptr(),
            description_count: descriptions.len(),
            descriptions: descriptions.as_ptr(),
        };
        // The Vecs' heap buffers do not move when the Vecs move into the box.
        let boxed = Box::new(InfoBox {
            info,
            _strings: strings,
            _languages: languages,
            _descriptions: descriptions,
        });
        // SAFETY: `out` is non-NULL and writable per the contract. `InfoBox` is repr(C) with the
        // public struct first, so the pointer is also a valid `matchy_info_t *`.
        unsafe { out.write(Box::into_raw(boxed).cast::<matchy_info_t>()) };
        Ok(MATCHY_OK)
    })
}

/// Release a struct from `matchy_info`. NULL is ignored.
///
/// # Safety
/// `info` is NULL or a struct from `matchy_info` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn matchy_info_free(info: *mut matchy_info_t) {
    guard_value((), || {
        if !info.is_null() {
            // SAFETY: allocated by `matchy_info` as an `InfoBox` (see there), released once.
            drop(unsafe { Box::from_raw(info.cast::<InfoBox>()) });
        }
        Ok(())
    })
}
