//! The C ABI for matchy: `libmatchy.so` / `libmatchy.a` and `include/matchy.h`, which cbindgen
//! generates from this crate (the `header` test fails when the checked-in header is stale;
//! `MATCHY_UPDATE_HEADER=1 cargo test -p matchy-ffi --test header` rewrites it).
//!
//! Every exported function runs its body inside `catch_unwind` (see `error::guard`): no panic
//! reaches C. Every pointer argument may be NULL (an error code, never a crash), strings are
//! checked for UTF-8 (and NULs where a length is given), outputs are written only on success,
//! and every string handed out is NUL-terminated (except the pointer + length pairs that point
//! into the file: `matchy_result_get_string`, bytes values). Ownership and lifetimes are documented on
//! each item; cbindgen copies these doc comments into the header.
//!
//! Modules: `error` (status codes, last error, guards), `db` (open/close, options, reload,
//! metadata), `result` (lookups and reading their matches).

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

mod db;
mod error;
mod result;

use std::ffi::c_char;

pub use db::*;
pub use error::*;
pub use result::*;

/// Major version of the library this header belongs to (compare with `matchy_version()` at run
/// time to detect a mismatched shared library).
pub const MATCHY_VERSION_MAJOR: u32 = 0;
pub const MATCHY_VERSION_MINOR: u32 = 1;
pub const MATCHY_VERSION_PATCH: u32 = 0;

/// The library's version, `"MAJOR.MINOR.PATCH"`. Static: do not free.
#[no_mangle]
pub extern "C" fn matchy_version() -> *const c_char {
    // Nothing here can panic; the guard keeps the rule "every exported function" literal.
    std::panic::catch_unwind(|| concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
        .unwrap_or(std::ptr::null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_macros_follow_the_crate_version() {
        let v = format!("{MATCHY_VERSION_MAJOR}.{MATCHY_VERSION_MINOR}.{MATCHY_VERSION_PATCH}");
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(matchy_version()) };
        assert_eq!(s.to_str().unwrap(), v);
    }
}
