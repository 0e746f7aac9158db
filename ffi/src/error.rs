//! Status codes, the thread-local last error, and the guards every exported function runs its
//! body in: a panic becomes `MATCHY_ERR_PANIC` (it never unwinds into C) and every failure leaves
//! its message in `matchy_last_error()`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Success.
pub const MATCHY_OK: c_int = 0;
/// The lookup (or path, or network) found nothing. Not an error: `matchy_last_error()` is not
/// changed.
pub const MATCHY_NOT_FOUND: c_int = 1;
/// A required pointer argument was NULL.
pub const MATCHY_ERR_NULL_ARG: c_int = -1;
/// A string argument is not valid UTF-8.
pub const MATCHY_ERR_INVALID_UTF8: c_int = -2;
/// An argument is out of range: an index past the last match, an address length other than 4
/// or 16, an unknown address family, a `struct_size` too small, an embedded NUL byte, ...
pub const MATCHY_ERR_INVALID_ARG: c_int = -3;
/// Reading the database file failed (missing, unreadable, ...).
pub const MATCHY_ERR_IO: c_int = -4;
/// The database bytes are damaged or are not a database (the message has the byte offset).
pub const MATCHY_ERR_CORRUPT: c_int = -5;
/// A query the database cannot answer, e.g. an IPv6 address against an IPv4-only database.
pub const MATCHY_ERR_INVALID_QUERY: c_int = -6;
/// A value is not of the type asked for, or does not fit in it.
pub const MATCHY_ERR_TYPE: c_int = -7;
/// A reload attempt found a new file but could not serve it; the previous version serves on.
pub const MATCHY_ERR_RELOAD_FAILED: c_int = -8;
/// The operation does not apply to this handle (e.g. reloading a database opened from a buffer).
pub const MATCHY_ERR_UNSUPPORTED: c_int = -9;
/// A result holding matches was used on a thread other than the one that filled it.
pub const MATCHY_ERR_WRONG_THREAD: c_int = -10;
/// A bug inside matchy (a Rust panic, caught at the boundary). Please report it.
pub const MATCHY_ERR_PANIC: c_int = -99;

/// Why a call failed: a status code and the message `matchy_last_error()` will show.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: c_int,
    pub message: Cow<'static, str>,
}

// Failures are built on cold paths: kept out of line, the hot path of each function stays short.
impl Failure {
    #[cold]
    pub fn new(code: c_int, message: impl Into<Cow<'static, str>>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    #[cold]
    pub fn null(what: &'static str) -> Failure {
        Failure::new(MATCHY_ERR_NULL_ARG, format!("{what} is NULL"))
    }

    #[cold]
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Failure {
        Failure::new(MATCHY_ERR_INVALID_ARG, message)
    }
}

impl From<engine::Error> for Failure {
    fn from(e: engine::Error) -> Failure {
        Failure::engine(&e)
    }
}

impl Failure {
    /// The failure an engine error maps to.
    #[cold]
    #[inline(never)]
    pub fn engine(e: &engine::Error) -> Failure {
        let code = match e {
            engine::Error::Io { .. } => MATCHY_ERR_IO,
            engine::Error::Corrupt { .. } => MATCHY_ERR_CORRUPT,
            engine::Error::InvalidQuery { .. } => MATCHY_ERR_INVALID_QUERY,
            engine::Error::Decode(_) => MATCHY_ERR_TYPE,
            _ => MATCHY_ERR_INVALID_ARG,
        };
        Failure::new(code, e.to_string())
    }
}

pub(crate) type Outcome<T = c_int> = Result<T, Failure>;

struct LastError {
    code: c_int,
    message: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        code: MATCHY_OK,
        message: CString::default(),
    });
}

pub(crate) fn set_last_error(f: &Failure) {
    // Interior NULs would cut the message short in C; no message of ours has one, but file
    // paths and database strings end up in messages.
    let bytes: Vec<u8> = f.message.bytes().filter(|&b| b != 0).collect();
    let message = CString::new(bytes).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.code = f.code;
            e.message = message;
        }
    });
}

fn panic_failure(panic: Box<dyn std::any::Any + Send>) -> Failure {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Failure::new(
        MATCHY_ERR_PANIC,
        format!("internal error in matchy (please report): {what}"),
    )
}

/// Run an exported function's body: its status code, or the failure's code (recorded as the
/// last error). A panic is caught and becomes `MATCHY_ERR_PANIC`. Always inlined: the exported
/// function then is the body, without a call and an argument block in between (~30
/// instructions per call; `catch_unwind` itself costs nothing until a panic).
#[inline(always)]
pub(crate) fn guard(body: impl FnOnce() -> Outcome) -> c_int {
    // Failures are recorded inside the protected call, so that only a status crosses
    // `catch_unwind`'s return slot, as a full word: stored as 4 bytes and reloaded as 8, it
    // stalled store forwarding (measured: a third of a miss's overhead); carrying the whole
    // `Outcome` across cost ~5 instructions per call to decode.
    let code = catch_unwind(AssertUnwindSafe(|| match body() {
        Ok(code) => code as isize,
        Err(f) => fail(f) as isize,
    }));
    match code {
        Ok(code) => code as c_int,
        Err(panic) => fail(panic_failure(panic)),
    }
}

/// Record `f` as this thread's last error; its status code.
#[cold]
#[inline(never)]
pub(crate) fn fail(f: Failure) -> c_int {
    set_last_error(&f);
    f.code
}

/// Like [`guard`] for functions returning a pointer: NULL on failure.
pub(crate) fn guard_ptr<T>(body: impl FnOnce() -> Outcome<*mut T>) -> *mut T {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(p)) => return p,
        Ok(Err(f)) => f,
        Err(panic) => panic_failure(panic),
    };
    set_last_error(&failure);
    std::ptr::null_mut()
}

/// Like [`guard`] for functions that return a plain value (`fallback` on failure or panic).
#[inline(always)]
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> Outcome<T>) -> T {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => return v,
        Ok(Err(f)) => f,
        Err(panic) => panic_failure(panic),
    };
    set_last_error(&failure);
    fallback
}

/// A NUL-terminated argument as UTF-8 text.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that stays valid for `'a`.
#[inline(always)]
pub(crate) unsafe fn c_str<'a>(s: *const c_char, what: &'static str) -> Outcome<&'a str> {
    if s.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    let s = unsafe { CStr::from_ptr(s) };
    let bytes = s.to_bytes();
    // Queries and keys are almost always ASCII, which a word-at-a-time scan confirms faster
    // than full UTF-8 validation (measured: ~15 ns of a ~250 ns lookup with a path read).
    if is_ascii(bytes) {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    utf8(bytes, what)
}

/// The rest of `c_str` for text that is not ASCII, out of line: the inlined fast path then keeps
/// nothing (such as `what`) for the error.
#[inline(never)]
fn utf8<'a>(bytes: &'a [u8], what: &'static str) -> Outcome<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| {
        Failure::new(
            MATCHY_ERR_INVALID_UTF8,
            format!("{what} is not valid UTF-8"),
        )
    })
}

const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW: u64 = 0x0101_0101_0101_0101;

/// `bytes.is_ascii()`, cheaper for the short texts of queries and keys (see `all_bytes`; the
/// standard library's scan goes byte by byte after the last whole word: ~10 instructions more
/// for a 15-byte query).
#[inline(always)]
pub(crate) fn is_ascii(bytes: &[u8]) -> bool {
    all_bytes(bytes, |w| w & HIGH, <[u8]>::is_ascii)
}

/// ASCII without a NUL byte: what a query given with its length almost always is, checked as
/// cheaply as `is_ascii` (a `memchr` call and full UTF-8 validation cost `matchy_lookup_n` more
/// than `strlen` costs `matchy_lookup`).
#[inline(always)]
pub(crate) fn is_ascii_without_nul(bytes: &[u8]) -> bool {
    // A byte's high bit is set in `w - LOW` and clear in `w` only if the byte is zero, or if a
    // zero byte below it borrowed: exact as to whether there is any.
    all_bytes(
        bytes,
        |w| (w | (w.wrapping_sub(LOW) & !w)) & HIGH,
        |b| b.is_ascii() && !b.contains(&0),
    )
}

/// Whether `flags` is zero for every byte of `bytes`: `flags` marks the high bit of each byte
/// of a word that fails the test, and must pass the ASCII space. Up to 32 bytes are read as two
/// or four overlapping words (queries and keys are short); shorter texts as 4-byte halves or
/// single bytes, padded with spaces. Longer ones go to `long`.
#[inline(always)]
fn all_bytes(bytes: &[u8], flags: impl Fn(u64) -> u64, long: impl Fn(&[u8]) -> bool) -> bool {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())) | SPACES << 32
    };
    match n {
        8..=16 => flags(word(0)) | flags(word(n - 8)) == 0,
        // Domains and URLs: four overlapping words (the standard scan went byte by byte
        // through the tail: ~20 instructions for a 17-byte query).
        17..=32 => flags(word(0)) | flags(word(8)) | flags(word(n - 16)) | flags(word(n - 8)) == 0,
        4..=7 => flags(half(0)) | flags(half(n - 4)) == 0,
        0..=3 => bytes
            .iter()
            .all(|&b| flags(u64::from(b) | SPACES << 8) == 0),
        _ => long(bytes),
    }
}

/// A text owned by C for the rest of the call, as a `CString` for returning to C: interior NULs
/// (which C could not see past) are dropped.
pub(crate) fn to_c_string(s: impl Into<Vec<u8>>) -> CString {
    let mut bytes: Vec<u8> = s.into();
    bytes.retain(|&b| b != 0);
    CString::new(bytes).unwrap_or_default()
}

/// A static description of `code` (`"not found"`, `"I/O error"`, ...). Never NULL; an
/// unknown code gives `"unknown error code"`. The string is static: do not free it.
#[no_mangle]
pub extern "C" fn matchy_strerror(code: c_int) -> *const c_char {
    catch_unwind(|| strerror(code).as_ptr()).unwrap_or(c"".as_ptr())
}

fn strerror(code: c_int) -> &'static CStr {
    match code {
        MATCHY_OK => c"success",
        MATCHY_NOT_FOUND => c"not found",
        MATCHY_ERR_NULL_ARG => c"a required argument is NULL",
        MATCHY_ERR_INVALID_UTF8 => c"a string argument is not valid UTF-8",
        MATCHY_ERR_INVALID_ARG => c"invalid argument",
        MATCHY_ERR_IO => c"I/O error",
        MATCHY_ERR_CORRUPT => c"corrupt or invalid database",
        MATCHY_ERR_INVALID_QUERY => c"invalid query for this database",
        MATCHY_ERR_TYPE => c"value is not of the requested type",
        MATCHY_ERR_RELOAD_FAILED => c"reload failed; the previous version is still served",
        MATCHY_ERR_UNSUPPORTED => c"operation not supported by this handle",
        MATCHY_ERR_WRONG_THREAD => c"result used on a thread other than the one that filled it",
        MATCHY_ERR_PANIC => c"internal error in matchy",
        _ => c"unknown error code",
    }
}

/// The message of the most recent failed call on the calling thread, or `""` if none failed
/// yet. Never NULL. Successful calls (and `MATCHY_NOT_FOUND`) leave it unchanged, like
/// `errno`. The string belongs to matchy and stays valid until the next failing call on this
/// thread: copy it to keep it. Do not free it.
#[no_mangle]
pub extern "C" fn matchy_last_error() -> *const c_char {
    let p = catch_unwind(|| {
        LAST_ERROR
            .try_with(|e| e.try_borrow().map(|e| e.message.as_ptr()).ok())
            .ok()
            .flatten()
    });
    match p {
        Ok(Some(p)) => p,
        _ => c"".as_ptr(),
    }
}

/// The status code of the most recent failed call on the calling thread (`MATCHY_OK` if none
/// failed yet). Useful after a function that returns NULL on failure, such as `matchy_open`.
#[no_mangle]
pub extern "C" fn matchy_last_error_code() -> c_int {
    catch_unwind(|| {
        LAST_ERROR
            .try_with(|e| e.try_borrow().map(|e| e.code).unwrap_or(MATCHY_OK))
            .unwrap_or(MATCHY_OK)
    })
    .unwrap_or(MATCHY_ERR_PANIC)
}

/// The `T` behind a pointer argument, or the NULL-argument failure naming it (`what`).
///
/// # Safety
/// `ptr` is NULL or points to a live `T`, not mutated while the reference lives.
#[inline(always)]
pub(crate) unsafe fn non_null<'a, T>(ptr: *const T, what: &'static str) -> Outcome<&'a T> {
    // SAFETY: per the contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: matchy_last_error returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(matchy_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_become_status_codes_and_messages() {
        let code = guard(|| panic!("boom in a body"));
        assert_eq!(code, MATCHY_ERR_PANIC);
        assert!(last_error().contains("boom in a body"), "{}", last_error());
        assert_eq!(matchy_last_error_code(), MATCHY_ERR_PANIC);

        let p: *mut u8 = guard_ptr(|| panic!("{}", String::from("formatted boom")));
        assert!(p.is_null());
        assert!(last_error().contains("formatted boom"));

        assert_eq!(guard_value(7u32, || panic!("value boom")), 7);
        assert!(last_error().contains("value boom"));
    }

    #[test]
    fn failures_set_the_thread_local_last_error_and_success_keeps_it() {
        let code = guard(|| Err(Failure::invalid("first\0problem")));
        assert_eq!(code, MATCHY_ERR_INVALID_ARG);
        assert_eq!(last_error(), "firstproblem");
        assert_eq!(guard(|| Ok(MATCHY_NOT_FOUND)), MATCHY_NOT_FOUND);
        assert_eq!(last_error(), "firstproblem");
        // Another thread has its own.
        std::thread::spawn(|| {
            assert_eq!(last_error(), "");
            assert_eq!(matchy_last_error_code(), MATCHY_OK);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn c_strings_are_checked() {
        // SAFETY: NULL and NUL-terminated literals.
        unsafe {
            assert_eq!(
                c_str(std::ptr::null(), "q").unwrap_err().code,
                MATCHY_ERR_NULL_ARG
            );
            assert_eq!(c_str(c"ok".as_ptr(), "q").unwrap(), "ok");
            assert_eq!(c_str(c"caf\xc3\xa9".as_ptr(), "q").unwrap(), "café");
            let bad = c_str(c"caf\xe9".as_ptr(), "q").unwrap_err();
            assert_eq!(bad.code, MATCHY_ERR_INVALID_UTF8);
        }
    }

    #[test]
    fn ascii_check_agrees_with_the_standard_library() {
        let agree = |b: &[u8]| {
            assert_eq!(is_ascii(b), b.is_ascii(), "{b:?}");
            let plain = b.is_ascii() && !b.contains(&0);
            assert_eq!(is_ascii_without_nul(b), plain, "{b:?}");
        };
        for n in 0..40 {
            // Every ASCII byte value but NUL, at every place.
            let plain: Vec<u8> = (0..n).map(|i| 1 + (i * 37 % 127) as u8).collect();
            agree(&plain);
            for at in 0..n {
                for odd in [0x80 | (at as u8), 0xff, 0] {
                    let mut b = plain.clone();
                    b[at] = odd;
                    agree(&b);
                    // Next to a 0x01: the byte a NUL's borrow could be blamed on.
                    b[(at + 1) % n] = 1;
                    agree(&b);
                }
            }
        }
    }

    #[test]
    fn every_code_has_its_own_text() {
        let codes = [
            MATCHY_OK,
            MATCHY_NOT_FOUND,
            MATCHY_ERR_NULL_ARG,
            MATCHY_ERR_INVALID_UTF8,
            MATCHY_ERR_INVALID_ARG,
            MATCHY_ERR_IO,
            MATCHY_ERR_CORRUPT,
            MATCHY_ERR_INVALID_QUERY,
            MATCHY_ERR_TYPE,
            MATCHY_ERR_RELOAD_FAILED,
            MATCHY_ERR_UNSUPPORTED,
            MATCHY_ERR_WRONG_THREAD,
            MATCHY_ERR_PANIC,
        ];
        // SAFETY: static NUL-terminated strings.
        let texts: std::collections::BTreeSet<_> = codes
            .iter()
            .map(|&c| unsafe { CStr::from_ptr(matchy_strerror(c)) })
            .collect();
        assert_eq!(texts.len(), codes.len());
        assert!(!texts.contains(c"unknown error code"));
    }
}
