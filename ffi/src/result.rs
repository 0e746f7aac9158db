//! Lookups and their results: the reusable `matchy_result_t` handle, the lookup functions that
//! fill it, and the accessors (kind, entry text, network, typed values by path, JSON).
//!
//! A result holds the engine's matches, which pin the database version they came from with a
//! thread-local (non-atomic) reference count: they must be used and released on the thread that
//! looked them up. Every access checks the thread (`pthread_self`) and refuses with
//! `MATCHY_ERR_WRONG_THREAD` rather than touch the count from another thread.
//!
//! `matchy_result_get_string` hands out file strings as pointer + length, without a copy. The
//! NUL-terminated strings of the other accessors need one: the result copies them into a small
//! arena of fixed chunks (pointers stay put until the result is refilled, cleared or freed); the
//! first chunk is kept across lookups, so a lookup loop that reads a few strings per result does
//! not allocate.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CString};
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use engine::{EntryKind, Match, Matches, Value, ValueKind};

use crate::db::{handle, matchy_t};
use crate::error::{
    c_str, fail, guard, guard_value, is_ascii_without_nul, non_null, to_c_string, Failure, Outcome,
    MATCHY_ERR_INVALID_UTF8, MATCHY_ERR_WRONG_THREAD, MATCHY_NOT_FOUND, MATCHY_OK,
};

/// The matches of one lookup. Opaque and reusable: create one with `matchy_result_new`, pass it
/// to any number of lookups (each replaces the previous matches), release it with
/// `matchy_result_free`. Reusing one result per thread makes a lookup loop allocation-free.
///
/// After a lookup returns `MATCHY_OK` the result holds `matchy_result_count()` >= 1 matches;
/// after `MATCHY_NOT_FOUND` or any error it holds none. Pointers obtained from a result (entry
/// text, string values, bytes) stay valid until the result is used for another lookup, cleared
/// or freed — also after `matchy_close` and after a reload (the result keeps the file version it
/// came from mapped).
///
/// Thread rule: a result holding matches belongs to the thread that did the lookup. Read,
/// clear and free it on that thread (other threads get `MATCHY_ERR_WRONG_THREAD`). An empty
/// result (new, cleared, or after NOT_FOUND) may move to any thread. Use one result per thread.
pub struct matchy_result_t {
    /// Which slot holds the matches, if any.
    held: Held,
    /// Which thread filled the slot (see `current_thread`); meaningless while `held` is `Empty`.
    owner: usize,
    /// The engine's answer to a string lookup, written where the engine returns it (no copy):
    /// initialised, `Ok` with at least one match, exactly while `held` is `Text`.
    text: MaybeUninit<engine::Result<Matches>>,
    /// The match of an IP lookup: initialised exactly while `held` is `Ip`.
    ip: MaybeUninit<Match>,
    strings: RefCell<Arena>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    Empty,
    Text,
    Ip,
}

impl matchy_result_t {
    #[inline(always)]
    fn len(&self) -> usize {
        match self.held {
            Held::Empty => 0,
            // SAFETY: `Text` means the slot is initialised.
            Held::Text => unsafe { self.text.assume_init_ref() }
                .as_ref()
                .map_or(0, |m| m.len()),
            Held::Ip => 1,
        }
    }

    #[inline(always)]
    fn match_at(&self, index: usize) -> Option<&Match> {
        match self.held {
            Held::Empty => None,
            // SAFETY: `Text` means the slot is initialised.
            Held::Text => unsafe { self.text.assume_init_ref() }
                .as_ref()
                .ok()?
                .get(index),
            // SAFETY: `Ip` means the slot is initialised.
            Held::Ip if index == 0 => Some(unsafe { self.ip.assume_init_ref() }),
            Held::Ip => None,
        }
    }
}

/// An identity of the calling thread, unique among live threads (another thread can only get
/// the same one after this one has exited, when nothing can race with it any more): the thread
/// pointer. On x86-64 and AArch64 Linux it is read directly, one instruction (x86-64: the TLS
/// ABI stores the thread control block's own address in its first word, `%fs:0`, in glibc and
/// musl alike; AArch64: the `tpidr_el0` register). Elsewhere `pthread_self()` (a libc call). The
/// address of a thread-local, the obvious alternative, costs a `__tls_get_addr` call inside a
/// shared library.
#[inline(always)]
fn current_thread() -> usize {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let tp: usize;
        // SAFETY: reads the first word of the calling thread's TCB (always mapped, readable):
        // no memory is written, no flags or stack are touched.
        unsafe {
            std::arch::asm!(
                "mov {}, qword ptr fs:[0]",
                out(reg) tp,
                options(nostack, readonly, preserves_flags, pure)
            )
        };
        tp
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        let tp: usize;
        // SAFETY: reads the thread pointer register; nothing else is touched.
        unsafe {
            std::arch::asm!(
                "mrs {}, tpidr_el0",
                out(reg) tp,
                options(nomem, nostack, preserves_flags, pure)
            )
        };
        tp
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        // SAFETY: pthread_self has no preconditions and cannot fail.
        unsafe { libc::pthread_self() as usize }
    }
}

#[cold]
fn wrong_thread() -> Failure {
    Failure::new(
        MATCHY_ERR_WRONG_THREAD,
        "this result holds matches looked up on another thread: read, clear and free it on that thread",
    )
}

impl matchy_result_t {
    /// Drop the matches (and strings) held, on the owning thread only.
    fn release(&mut self) -> Outcome<()> {
        self.release_on(current_thread())
    }

    /// `release` for a caller that already knows it runs on thread `me`. Inlined into every
    /// lookup: an empty result costs one compare.
    #[inline(always)]
    fn release_on(&mut self, me: usize) -> Outcome<()> {
        if self.held == Held::Empty {
            return Ok(());
        }
        if self.owner != me {
            return Err(wrong_thread());
        }
        self.drop_held();
        Ok(())
    }

    /// Drop the matches held where they lie (a slot is never moved: moving a `Matches` out
    /// copied 80 bytes per lookup) and mark the result empty first, so that a drop that unwinds
    /// (the panic is caught at the boundary) leaves nothing to drop twice.
    #[inline(always)]
    fn drop_held(&mut self) {
        let held = std::mem::replace(&mut self.held, Held::Empty);
        // SAFETY: `held` says which slot is initialised; it is dropped once (`held` is `Empty`
        // from now on).
        match held {
            Held::Empty => {}
            Held::Text => match unsafe { self.text.assume_init_mut() } {
                Ok(m) => unsafe { std::ptr::drop_in_place(m) },
                // SAFETY: `Text` holds `Ok` (see the field): no check of the other variants.
                Err(_) => unsafe { std::hint::unreachable_unchecked() },
            },
            Held::Ip => unsafe { self.ip.assume_init_drop() },
        }
        // Strings are copied only from matches, so only a result that held some has any.
        self.strings.get_mut().reset();
    }

    #[inline(always)]
    fn check_thread(&self) -> Outcome<()> {
        if self.held != Held::Empty && self.owner != current_thread() {
            return Err(wrong_thread());
        }
        Ok(())
    }

    #[inline(always)]
    fn get(&self, index: usize) -> Outcome<&Match> {
        self.check_thread()?;
        match self.match_at(index) {
            Some(m) => Ok(m),
            None => Err(self.out_of_range(index)),
        }
    }

    #[cold]
    fn out_of_range(&self, index: usize) -> Failure {
        Failure::invalid(format!(
            "match index {index} is out of range: the result holds {} matches",
            self.len()
        ))
    }
}

/// Fixed-size chunks for the NUL-terminated copies handed to C. Chunks never move or shrink
/// while the result holds matches, so earlier pointers stay valid as more strings are added;
/// `Cell` makes writing into a chunk through a shared reference sound while C holds pointers
/// into other parts of it.
#[derive(Default)]
struct Arena {
    chunks: Vec<Box<[Cell<u8>]>>,
    /// Bytes used in the last chunk.
    used: usize,
    /// A chunk was added since the last reset (which then regroups): one flag to test at every
    /// lookup instead of the chunks' count and size.
    grew: bool,
}

const ARENA_CHUNK: usize = 1024;
/// Largest arena kept across lookups (a result that once held huge strings gives memory back).
const ARENA_KEEP: usize = 64 * 1024;

impl Arena {
    fn push(&mut self, text: &[u8]) -> *const c_char {
        let need = text.len() + 1;
        let room = self.chunks.last().map_or(0, |c| c.len() - self.used);
        if room < need {
            let size = need.max(ARENA_CHUNK);
            self.chunks
                .push(vec![Cell::new(0u8); size].into_boxed_slice());
            self.used = 0;
            self.grew = true;
        }
        let chunk = self
            .chunks
            .last()
            .expect("a chunk with room was just ensured");
        let dst = &chunk[self.used..self.used + need];
        // SAFETY: `dst` is `need` = len + 1 bytes of `Cell<u8>` (same layout as `u8`), which
        // may be written through a shared reference; `text` is a distinct allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), dst.as_ptr() as *mut u8, text.len())
        };
        dst[text.len()].set(0);
        self.used += need;
        dst.as_ptr().cast::<c_char>()
    }

    /// Forget the strings, keeping one chunk. Runs at every lookup that replaces matches.
    #[inline(always)]
    fn reset(&mut self) {
        if self.grew {
            self.regroup();
        }
        self.used = 0;
    }

    #[cold]
    fn regroup(&mut self) {
        self.grew = false;
        if self.chunks.len() == 1 && self.chunks[0].len() <= ARENA_KEEP {
            return;
        }
        let total: usize = self.chunks.iter().map(|c| c.len()).sum();
        self.chunks.clear();
        if total <= ARENA_KEEP {
            // One chunk as large as all of them: the next lookup like this one fits in it.
            self.chunks
                .push(vec![Cell::new(0u8); total].into_boxed_slice());
        }
    }
}

/// A new, empty result. Never NULL (matchy aborts the process if memory runs out, like
/// everything written in Rust). Release with `matchy_result_free`.
#[no_mangle]
pub extern "C" fn matchy_result_new() -> *mut matchy_result_t {
    crate::error::guard_ptr(|| {
        Ok(Box::into_raw(Box::new(matchy_result_t {
            held: Held::Empty,
            owner: 0,
            text: MaybeUninit::uninit(),
            ip: MaybeUninit::uninit(),
            strings: RefCell::new(Arena::default()),
        })))
    })
}

/// Release a result and the matches it holds. NULL is ignored. Call it on the thread that did
/// the last lookup into it (from another thread the matches cannot be released safely: they
/// are leaked, the error is recorded in `matchy_last_error()`, and the handle itself is freed).
///
/// # Safety
/// `result` is NULL or a result from `matchy_result_new` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_free(result: *mut matchy_result_t) {
    guard_value((), || {
        if result.is_null() {
            return Ok(());
        }
        // SAFETY: allocated by `matchy_result_new`, released once, per the contract.
        let mut r = unsafe { Box::from_raw(result) };
        if let Err(e) = r.release() {
            // Leaked: the slots are `MaybeUninit`, never dropped with the handle.
            r.held = Held::Empty;
            return Err(e);
        }
        Ok(())
    })
}

/// Release the matches a result holds now (and the file version they keep mapped), keeping the
/// handle for reuse. `MATCHY_OK`; `MATCHY_ERR_NULL_ARG`; `MATCHY_ERR_WRONG_THREAD` if it holds
/// matches of another thread (nothing is changed).
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_clear(result: *mut matchy_result_t) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let r = unsafe { result.as_mut() }.ok_or_else(|| Failure::null("result"))?;
        r.release()?;
        Ok(MATCHY_OK)
    })
}

/// The result to fill, emptied, and the calling thread's identity (for `store`).
///
/// # Safety
/// `result` is NULL or a live result not used by another thread during the call.
#[inline(always)]
unsafe fn fresh<'a>(result: *mut matchy_result_t) -> Outcome<(&'a mut matchy_result_t, usize)> {
    // SAFETY: per the contract.
    let r = unsafe { result.as_mut() }.ok_or_else(|| Failure::null("result"))?;
    let me = current_thread();
    r.release_on(me)?;
    Ok((r, me))
}

/// Every entry matching the NUL-terminated UTF-8 `query`, in a fixed order: the IP network
/// (when `query` is an IPv4/IPv6 address), the exact literal, then each matching glob in
/// insertion order. `MATCHY_OK` (`result` holds >= 1 match), `MATCHY_NOT_FOUND` (it holds
/// none), or an error code (it holds none; see `matchy_last_error()`).
///
/// # Safety
/// `db` is NULL or a live handle; `query` is NULL or NUL-terminated; `result` is NULL or a live
/// result that no other thread uses during the call.
#[no_mangle]
pub unsafe extern "C" fn matchy_lookup(
    db: *const matchy_t,
    query: *const c_char,
    result: *mut matchy_result_t,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract (all three).
        let (r, me) = unsafe { fresh(result) }?;
        let h = unsafe { handle(db) }?;
        let q = unsafe { c_str(query, "query") }?;
        lookup_text(h, r, me, q)
    })
}

/// `matchy_lookup` for a query of `len` bytes that need not be NUL-terminated (e.g. a field
/// inside a log line). The bytes must be UTF-8 without NUL bytes (`MATCHY_ERR_INVALID_UTF8`,
/// `MATCHY_ERR_INVALID_ARG`).
///
/// # Safety
/// `db` is NULL or a live handle; `query` is NULL or points to `len` readable bytes; `result` as
/// for `matchy_lookup`.
#[no_mangle]
pub unsafe extern "C" fn matchy_lookup_n(
    db: *const matchy_t,
    query: *const c_char,
    len: usize,
    result: *mut matchy_result_t,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let (r, me) = unsafe { fresh(result) }?;
        let h = unsafe { handle(db) }?;
        if query.is_null() {
            return Err(Failure::null("query"));
        }
        // SAFETY: non-NULL with `len` readable bytes per the contract.
        let bytes = unsafe { std::slice::from_raw_parts(query.cast::<u8>(), len) };
        let q = if is_ascii_without_nul(bytes) {
            // SAFETY: ASCII is UTF-8.
            unsafe { std::str::from_utf8_unchecked(bytes) }
        } else {
            counted_text(bytes)?
        };
        lookup_text(h, r, me, q)
    })
}

/// A query given with its length that is not plain ASCII: UTF-8 without NUL bytes, or why not.
#[inline(never)]
fn counted_text(bytes: &[u8]) -> Outcome<&str> {
    if bytes.contains(&0) {
        return Err(Failure::invalid("query contains a NUL byte"));
    }
    std::str::from_utf8(bytes)
        .map_err(|_| Failure::new(MATCHY_ERR_INVALID_UTF8, "query is not valid UTF-8"))
}

/// Look `q` up into `r`'s text slot (emptied by `release_on`): `MATCHY_OK` when it holds
/// matches now, `MATCHY_NOT_FOUND` when there are none. The engine's answer is judged where the
/// call leaves it, on the stack, and moved into the slot (80 bytes) only when it holds matches.
/// Written as `r.text.write(lookup())`, it was copied over every time anyway: the compiler
/// cannot let a call that may unwind write into memory its caller still sees (callgrind: 10
/// instructions more per miss; the copy also reloads 8-byte stores as 16-byte loads, which
/// stalls store forwarding).
#[inline(always)]
fn lookup_text(h: &matchy_t, r: &mut matchy_result_t, me: usize, q: &str) -> Outcome {
    debug_assert!(r.held == Held::Empty);
    match h.db.lookup(q) {
        Ok(m) if !m.is_empty() => {
            r.text.write(Ok(m));
            r.held = Held::Text;
            r.owner = me;
            Ok(MATCHY_OK)
        }
        Ok(none) => {
            // No matches means no pin and no allocation to release: skip the drop, an
            // out-of-line call of ~16 instructions per miss.
            debug_assert!(none.is_empty());
            std::mem::forget(none);
            Ok(MATCHY_NOT_FOUND)
        }
        Err(e) => Err(Failure::engine(&e)),
    }
}

/// `lookup_text` for IP lookups, into the IP slot. Inlined into each exported function with the
/// engine's IPv4 fast path (`lookup_ip_inlined`): one frame less saved ~20 instructions a
/// lookup. Only a found match is moved into the slot: the whole answer (an
/// `engine::Result<Option<Match>>`, whose variants overlay one another) was copied field by
/// field, ~33 instructions. Returns the status itself (a failure is recorded out of line): an
/// `Outcome` would cross back through memory.
#[inline(always)]
fn lookup_ip(h: &matchy_t, r: &mut matchy_result_t, me: usize, ip: IpAddr) -> c_int {
    debug_assert!(r.held == Held::Empty);
    match h.db.lookup_ip_inlined(ip) {
        Ok(Some(m)) => {
            r.ip.write(m);
            r.held = Held::Ip;
            r.owner = me;
            MATCHY_OK
        }
        Ok(None) => MATCHY_NOT_FOUND,
        Err(e) => fail(Failure::engine(&e)),
    }
}

/// The IP network (longest prefix) holding an address given as raw bytes in network order:
/// `len` 4 (IPv4) or 16 (IPv6). Only IP entries are searched. Result codes as for
/// `matchy_lookup`; an IPv6 address against an IPv4-only database is `MATCHY_ERR_INVALID_QUERY`.
///
/// # Safety
/// `db` is NULL or a live handle; `addr` is NULL or points to `len` readable bytes; `result`
/// as for `matchy_lookup`.
#[no_mangle]
pub unsafe extern "C" fn matchy_lookup_ip_bytes(
    db: *const matchy_t,
    addr: *const u8,
    len: usize,
    result: *mut matchy_result_t,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let (r, me) = unsafe { fresh(result) }?;
        let h = unsafe { handle(db) }?;
        if addr.is_null() {
            return Err(Failure::null("addr"));
        }
        let ip = match len {
            // SAFETY: non-NULL with `len` (4) readable bytes per the contract.
            4 => IpAddr::V4(Ipv4Addr::from(unsafe {
                addr.cast::<[u8; 4]>().read_unaligned()
            })),
            // SAFETY: as above (16 bytes).
            16 => IpAddr::V6(Ipv6Addr::from(unsafe {
                addr.cast::<[u8; 16]>().read_unaligned()
            })),
            n => {
                return Err(Failure::invalid(format!(
                    "address length is {n}: expected 4 (IPv4) or 16 (IPv6)"
                )))
            }
        };
        Ok(lookup_ip(h, r, me, ip))
    })
}

/// The IP network holding the address of a `struct sockaddr_in` (`AF_INET`) or
/// `struct sockaddr_in6` (`AF_INET6`), e.g. from `accept()` or `getaddrinfo()`. IPv4-mapped
/// IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports for IPv4 peers) are looked
/// up as IPv4. Another family is `MATCHY_ERR_INVALID_ARG`. Otherwise as `matchy_lookup_ip_bytes`.
///
/// # Safety
/// `db` is NULL or a live handle; `addr` is NULL or points to a complete `sockaddr_in` or
/// `sockaddr_in6` as its family says; `result` as for `matchy_lookup`.
#[no_mangle]
pub unsafe extern "C" fn matchy_lookup_sockaddr(
    db: *const matchy_t,
    addr: *const libc::sockaddr,
    result: *mut matchy_result_t,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let (r, me) = unsafe { fresh(result) }?;
        let h = unsafe { handle(db) }?;
        if addr.is_null() {
            return Err(Failure::null("addr"));
        }
        // SAFETY: non-NULL, a sockaddr per the contract (read unaligned: callers cast buffers).
        let family = unsafe { std::ptr::addr_of!((*addr).sa_family).read_unaligned() };
        let ip = match c_int::from(family) {
            libc::AF_INET => {
                // SAFETY: the family says the caller's struct is a sockaddr_in.
                let sin = unsafe { addr.cast::<libc::sockaddr_in>().read_unaligned() };
                // `s_addr` holds the address bytes in network order.
                IpAddr::V4(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the caller's struct is a sockaddr_in6.
                let sin6 = unsafe { addr.cast::<libc::sockaddr_in6>().read_unaligned() };
                let v6 = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                }
            }
            other => {
                return Err(Failure::invalid(format!(
                    "address family {other} is neither AF_INET nor AF_INET6"
                )))
            }
        };
        Ok(lookup_ip(h, r, me, ip))
    })
}

/// How many matches the result holds (0 for NULL or an empty result).
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_count(result: *const matchy_result_t) -> usize {
    guard_value(0, || {
        // SAFETY: per the contract.
        Ok(unsafe { result.as_ref() }.map_or(0, |r| r.len()))
    })
}

/// What kind of entry produced a match.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum matchy_kind_t {
    /// Not a match: returned for a NULL result, a bad index or the wrong thread.
    MATCHY_KIND_NONE = 0,
    /// An IP network (CIDR) holding the queried address.
    MATCHY_KIND_IP = 1,
    /// An exact string equal to the query.
    MATCHY_KIND_LITERAL = 2,
    /// A glob pattern matching the query.
    MATCHY_KIND_GLOB = 3,
}

/// Match `index`'s kind (`MATCHY_KIND_NONE`, with `matchy_last_error()` set, if `result` is
/// NULL, `index` is out of range or the result belongs to another thread).
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_kind(
    result: *const matchy_result_t,
    index: usize,
) -> matchy_kind_t {
    guard_value(matchy_kind_t::MATCHY_KIND_NONE, || {
        // SAFETY: per the contract.
        let m = unsafe { non_null(result, "result") }?.get(index)?;
        Ok(match m.kind() {
            EntryKind::Ip => matchy_kind_t::MATCHY_KIND_IP,
            EntryKind::Literal => matchy_kind_t::MATCHY_KIND_LITERAL,
            EntryKind::Glob => matchy_kind_t::MATCHY_KIND_GLOB,
        })
    })
}

/// Match `index`'s entry as inserted: the network in CIDR form (`10.0.0.0/8`), the literal, or
/// the glob pattern. `*entry` is NUL-terminated, owned by the result (valid until it is reused,
/// cleared or freed); it is written only on `MATCHY_OK`.
///
/// # Safety
/// `result` is NULL or a live result; `entry` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_entry(
    result: *const matchy_result_t,
    index: usize,
    entry: *mut *const c_char,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let r = unsafe { non_null(result, "result") }?;
        let m = r.get(index)?;
        if entry.is_null() {
            return Err(Failure::null("entry"));
        }
        let text = m.entry();
        let p = r.strings.borrow_mut().push(text.as_bytes());
        // SAFETY: non-NULL and writable per the contract.
        unsafe { entry.write(p) };
        Ok(MATCHY_OK)
    })
}

/// An IP network.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct matchy_network_t {
    /// 4 or 6.
    pub family: u8,
    /// Prefix length in bits (0-32 for IPv4, 0-128 for IPv6).
    pub prefix_len: u8,
    /// The network address (host bits cleared) in network order: the first 4 bytes for IPv4,
    /// all 16 for IPv6; the rest is zero.
    pub addr: [u8; 16],
}

/// The network of an IP match. `MATCHY_OK` and `*out` filled; `MATCHY_NOT_FOUND` if match
/// `index` is a literal or glob (`*out` untouched); or an error code.
///
/// # Safety
/// `result` is NULL or a live result; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_network(
    result: *const matchy_result_t,
    index: usize,
    out: *mut matchy_network_t,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { non_null(result, "result") }?.get(index)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let Some((ip, prefix_len)) = m.network() else {
            return Ok(MATCHY_NOT_FOUND);
        };
        let mut net = matchy_network_t {
            prefix_len,
            ..Default::default()
        };
        match ip {
            IpAddr::V4(a) => {
                net.family = 4;
                net.addr[..4].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                net.family = 6;
                net.addr = a.octets();
            }
        }
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(net) };
        Ok(MATCHY_OK)
    })
}

/// The MaxMind DB type of a value.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum matchy_type_t {
    /// `size` = number of entries; read entries with a longer path.
    MATCHY_TYPE_MAP = 1,
    /// `size` = number of elements; read elements with a path element `"0"`, `"1"`, ...
    MATCHY_TYPE_ARRAY = 2,
    /// `data.string`, `size` bytes (UTF-8) plus a terminating NUL.
    MATCHY_TYPE_STRING = 3,
    /// `data.float64`.
    MATCHY_TYPE_DOUBLE = 4,
    /// `data.bytes`, `size` bytes (not NUL-terminated).
    MATCHY_TYPE_BYTES = 5,
    /// `data.uint64`.
    MATCHY_TYPE_UINT16 = 6,
    /// `data.uint64`.
    MATCHY_TYPE_UINT32 = 7,
    /// `data.int64`.
    MATCHY_TYPE_INT32 = 8,
    /// `data.uint64`.
    MATCHY_TYPE_UINT64 = 9,
    /// `data.uint128` (high and low 64 bits).
    MATCHY_TYPE_UINT128 = 10,
    /// `data.boolean`.
    MATCHY_TYPE_BOOL = 11,
    /// `data.float64` (widened from a 32-bit float).
    MATCHY_TYPE_FLOAT = 12,
}

/// A 128-bit unsigned integer as two halves.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct matchy_uint128_t {
    pub high: u64,
    pub low: u64,
}

/// The payload of a value; which member is valid depends on the type (see `matchy_type_t`).
#[repr(C)]
#[derive(Clone, Copy)]
pub union matchy_value_data_t {
    pub string: *const c_char,
    pub bytes: *const u8,
    pub uint64: u64,
    pub int64: i64,
    pub float64: f64,
    pub boolean: bool,
    pub uint128: matchy_uint128_t,
}

/// A typed value read from a match's data. Caller-allocated; filled by `matchy_result_get_value`.
/// Pointers in it are owned by the result: valid until the result is reused, cleared or freed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct matchy_value_t {
    pub r#type: matchy_type_t,
    /// Bytes of a string (without the NUL) or bytes value; entries of a map; elements of an
    /// array; 0 otherwise.
    pub size: usize,
    pub data: matchy_value_data_t,
}

const MAX_PATH: usize = 256;
/// Path elements handed to `Value::get` at once: a path of up to this many elements is walked by
/// one call (one call per element cost ~20 instructions more per element).
const PATH_CHUNK: usize = 8;

/// Walk a NULL-terminated array of NUL-terminated UTF-8 strings from `value`, `PATH_CHUNK`
/// elements at a time (no heap buffer: a path read allocates nothing). `None` when a step leads
/// nowhere.
///
/// # Safety
/// `path` is NULL or a NULL-terminated array of NUL-terminated strings.
unsafe fn walk<'v>(value: Value<'v>, path: *const *const c_char) -> Outcome<Option<Value<'v>>> {
    let mut v = value;
    if path.is_null() {
        return Ok(Some(v));
    }
    let mut steps = [""; PATH_CHUNK];
    let mut i = 0;
    loop {
        let mut n = 0;
        let mut end = false;
        while n < PATH_CHUNK {
            // SAFETY: the array is NULL-terminated and we have not passed the NULL yet.
            let p = unsafe { path.add(i).read() };
            if p.is_null() {
                end = true;
                break;
            }
            if i == MAX_PATH {
                return Err(Failure::invalid(format!(
                    "path has more than {MAX_PATH} elements (is it NULL-terminated?)"
                )));
            }
            // SAFETY: each element is NUL-terminated per the contract.
            steps[n] = unsafe { c_str(p, "path element") }?;
            n += 1;
            i += 1;
        }
        match v.get(&steps[..n])? {
            Some(next) => v = next,
            None => return Ok(None),
        }
        if end {
            return Ok(Some(v));
        }
    }
}

/// The value at `path` in match `index`'s data: `path` is a NULL-terminated array of map keys
/// (and array indexes in decimal), e.g. `{"country", "iso_code", NULL}`; NULL or `{NULL}` means
/// the data itself. `MATCHY_OK` and `*out` filled; `MATCHY_NOT_FOUND` if a key or index is
/// missing or the path goes through a scalar (`*out` untouched); or an error code
/// (`MATCHY_ERR_CORRUPT` for damaged data).
///
/// A string value is copied to make it NUL-terminated (`data.string`, owned by the result).
/// To read strings without that copy use `matchy_result_get_string`.
///
/// # Safety
/// `result` is NULL or a live result; `path` is NULL or a NULL-terminated array of
/// NUL-terminated strings; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_get_value(
    result: *const matchy_result_t,
    index: usize,
    path: *const *const c_char,
    out: *mut matchy_value_t,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let r = unsafe { non_null(result, "result") }?;
        let m = r.get(index)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: per the contract.
        let found = unsafe { walk(m.value(), path) }?;
        let Some(v) = found else {
            return Ok(MATCHY_NOT_FOUND);
        };
        let value = c_value(v, &r.strings)?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(value) };
        Ok(MATCHY_OK)
    })
}

/// The string at `path` (as for `matchy_result_get_value`) in match `index`'s data, without a
/// copy: on `MATCHY_OK`, `*str` points to the string's `*len` UTF-8 bytes inside the database
/// file, **not NUL-terminated** (print it with `"%.*s", (int)len, str`; never NULL, also for
/// ""). The bytes belong to the result like every pointer read from it: valid until it is
/// reused for another lookup, cleared or freed. `MATCHY_NOT_FOUND` if the path leads nowhere;
/// `MATCHY_ERR_TYPE` if the value there is not a string; otherwise as for
/// `matchy_result_get_value`. `*str` and `*len` are written only on `MATCHY_OK`.
///
/// The cheapest way to read a string: one decode, no copy, nothing allocated.
///
/// # Safety
/// `result` is NULL or a live result; `path` as for `matchy_result_get_value`; `str` and `len`
/// are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_get_string(
    result: *const matchy_result_t,
    index: usize,
    path: *const *const c_char,
    str: *mut *const c_char,
    len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { non_null(result, "result") }?.get(index)?;
        if str.is_null() {
            return Err(Failure::null("str"));
        }
        if len.is_null() {
            return Err(Failure::null("len"));
        }
        // SAFETY: per the contract.
        let found = unsafe { walk(m.value(), path) }?;
        let Some(v) = found else {
            return Ok(MATCHY_NOT_FOUND);
        };
        let s = v.as_str()?;
        // SAFETY: both non-NULL and writable per the contract.
        unsafe {
            str.write(s.as_ptr().cast());
            len.write(s.len());
        }
        Ok(MATCHY_OK)
    })
}

/// A path into match data, checked once and reusable: the map keys (and array indexes in
/// decimal) of `matchy_result_get_value`'s `path`, copied and validated (UTF-8, at most 256
/// elements) by `matchy_path_new`. Reading a value through a prepared path skips the per-call
/// scan of each C string (length and UTF-8 check), the cheapest way to read the same path from
/// many results. Opaque; immutable once made, so any number of threads may use one at once.
/// Release with `matchy_path_free`.
pub struct matchy_path_t {
    /// The elements as the engine takes them; they point into `text` (declared first: dropped
    /// before it).
    steps: Box<[&'static str]>,
    /// The elements' bytes, back to back; never moved or changed while `steps` exists.
    #[allow(dead_code)]
    text: Box<str>,
}

impl matchy_path_t {
    #[inline(always)]
    fn steps(&self) -> &[&str] {
        &self.steps
    }
}

/// A prepared path of `n` elements (map keys, or array indexes in decimal), e.g.
/// `{"country", "iso_code"}` and 2; `n` = 0 (with `elements` NULL or not) means the data
/// itself. The strings are copied: the array and its strings may be released after the call.
/// NULL on failure (`elements` NULL while `n` > 0, an element NULL: `MATCHY_ERR_NULL_ARG`; an
/// element not UTF-8: `MATCHY_ERR_INVALID_UTF8`; more than 256 elements:
/// `MATCHY_ERR_INVALID_ARG`; see `matchy_last_error()`). Release with `matchy_path_free`.
///
/// # Safety
/// `elements` is NULL or points to `n` pointers, each NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn matchy_path_new(
    elements: *const *const c_char,
    n: usize,
) -> *mut matchy_path_t {
    crate::error::guard_ptr(|| {
        if n > MAX_PATH {
            return Err(Failure::invalid(format!(
                "path has {n} elements: at most {MAX_PATH}"
            )));
        }
        if n == 0 {
            let path = matchy_path_t {
                steps: Box::new([]),
                text: Box::from(""),
            };
            return Ok(Box::into_raw(Box::new(path)));
        }
        if elements.is_null() {
            return Err(Failure::null("elements"));
        }
        let mut parts: Vec<&str> = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: `n` readable pointers per the contract.
            let p = unsafe { elements.add(i).read() };
            // SAFETY: NULL or NUL-terminated per the contract.
            parts.push(unsafe { c_str(p, "path element") }?);
        }
        let text: Box<str> = parts.concat().into_boxed_str();
        let mut steps: Vec<&'static str> = Vec::with_capacity(n);
        let mut at = 0;
        for part in &parts {
            let s = &text[at..at + part.len()];
            // SAFETY: `s` points into `text`'s heap buffer, which lives (unmoved, unchanged) as
            // long as the path; `steps` is only lent out for `&self` and dropped first.
            steps.push(unsafe { std::mem::transmute::<&str, &'static str>(s) });
            at += part.len();
        }
        let path = matchy_path_t {
            steps: steps.into_boxed_slice(),
            text,
        };
        Ok(Box::into_raw(Box::new(path)))
    })
}

/// Release a path made by `matchy_path_new`. NULL is ignored.
///
/// # Safety
/// `path` is NULL or a path from `matchy_path_new` not released yet, which no other thread uses
/// during the call.
#[no_mangle]
pub unsafe extern "C" fn matchy_path_free(path: *mut matchy_path_t) {
    guard_value((), || {
        if !path.is_null() {
            // SAFETY: allocated by `matchy_path_new`, released once, per the contract.
            drop(unsafe { Box::from_raw(path) });
        }
        Ok(())
    })
}

/// `matchy_result_get_string` with a prepared path: on `MATCHY_OK`, `*str` and `*len` are the
/// string at `path` in match `index`'s data, inside the database file, **not NUL-terminated**,
/// owned by the result. `MATCHY_NOT_FOUND` if the path leads nowhere; `MATCHY_ERR_TYPE` if the
/// value there is not a string; `MATCHY_ERR_NULL_ARG` if any pointer is NULL; outputs written
/// only on `MATCHY_OK`. The fastest way to read a string.
///
/// # Safety
/// `result` is NULL or a live result; `path` is NULL or a live path; `str` and `len` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_get_string_at(
    result: *const matchy_result_t,
    index: usize,
    path: *const matchy_path_t,
    str: *mut *const c_char,
    len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { non_null(result, "result") }?.get(index)?;
        // SAFETY: per the contract.
        let path = unsafe { non_null(path, "path") }?;
        if str.is_null() {
            return Err(Failure::null("str"));
        }
        if len.is_null() {
            return Err(Failure::null("len"));
        }
        let Some(v) = m.value().get(path.steps())? else {
            return Ok(MATCHY_NOT_FOUND);
        };
        let s = v.as_str()?;
        // SAFETY: both non-NULL and writable per the contract.
        unsafe {
            str.write(s.as_ptr().cast());
            len.write(s.len());
        }
        Ok(MATCHY_OK)
    })
}

/// `matchy_result_get_value` with a prepared path: the typed value at `path` in match `index`'s
/// data (strings copied and NUL-terminated, owned by the result). Result codes and outputs as
/// for `matchy_result_get_value`; `MATCHY_ERR_NULL_ARG` if `path` is NULL.
///
/// # Safety
/// `result` is NULL or a live result; `path` is NULL or a live path; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_get_value_at(
    result: *const matchy_result_t,
    index: usize,
    path: *const matchy_path_t,
    out: *mut matchy_value_t,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let r = unsafe { non_null(result, "result") }?;
        let m = r.get(index)?;
        // SAFETY: per the contract.
        let path = unsafe { non_null(path, "path") }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let Some(v) = m.value().get(path.steps())? else {
            return Ok(MATCHY_NOT_FOUND);
        };
        let value = c_value(v, &r.strings)?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(value) };
        Ok(MATCHY_OK)
    })
}

/// A value as one decode of its header gives it: the engine's serde `Deserializer` reads the
/// header once and hands over the scalar, the borrowed string or the container's size (asking
/// `kind()` and then `as_str()` would decode the header twice). Bytes and arrays both arrive as
/// sequences.
enum Decoded<'a> {
    Scalar(matchy_type_t, matchy_value_data_t),
    Str(&'a str),
    Map(usize),
    Seq,
}

impl<'de> serde::Deserialize<'de> for Decoded<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DecodedVisitor)
    }
}

struct DecodedVisitor;

impl<'de> serde::de::Visitor<'de> for DecodedVisitor {
    type Value = Decoded<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a MaxMind DB value")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Decoded<'de>, E> {
        Ok(Decoded::Str(s))
    }

    fn visit_u16<E>(self, x: u16) -> Result<Decoded<'de>, E> {
        let data = matchy_value_data_t { uint64: x.into() };
        Ok(Decoded::Scalar(matchy_type_t::MATCHY_TYPE_UINT16, data))
    }

    fn visit_u32<E>(self, x: u32) -> Result<Decoded<'de>, E> {
        let data = matchy_value_data_t { uint64: x.into() };
        Ok(Decoded::Scalar(matchy_type_t::MATCHY_TYPE_UINT32, data))
    }

    fn visit_u64<E>(self, x: u64) -> Result<Decoded<'de>, E> {
        let data = matchy_value_data_t { uint64: x };
        Ok(Decoded::Scalar(matchy_type_t::MATCHY_TYPE_UINT64, data))
    }

    fn visit_u128<E>(self, x: u128) -> Result<Decoded<'de>, E> {
        let uint128 = matchy_uint128_t {
            high: (x >> 64) as u64,
            low: x as u64,
        };
        let data = matchy_value_data_t { uint128 };
        Ok(Decoded::Scalar(matchy_type_t::MATCHY_TYPE_UINT128, data))
    }

    fn visit_i32<E>(self, x: i32) -> Result<Decoded<'de>, E> {
        let data = matchy_value_data_t { int64: x.into() };
        Ok(Decoded::Scalar(matchy_type_t::MATCHY_TYPE_INT32, data))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Decoded<'de>, E> {
        let data = matchy_value_data_t { float64: x };
        Ok(Decoded::Scalar(matchy_type_t::MATCHY_TYPE_DOUBLE, data))
    }

    fn visit_f32<E>(self, x: f32) -> Result<Decoded<'de>, E> {
        let data = matchy_value_data_t { float64: x.into() };
        Ok(Decoded::Scalar(matchy_type_t::MATCHY_TYPE_FLOAT, data))
    }

    fn visit_bool<E>(self, x: bool) -> Result<Decoded<'de>, E> {
        let data = matchy_value_data_t { boolean: x };
        Ok(Decoded::Scalar(matchy_type_t::MATCHY_TYPE_BOOL, data))
    }

    // The access knows the container's length from its header without decoding it.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Decoded<'de>, A::Error> {
        Ok(Decoded::Map(map.size_hint().unwrap_or(0)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Decoded<'de>, A::Error> {
        Ok(Decoded::Seq)
    }
}

static EMPTY_BYTES: [u8; 1] = [0];

fn c_value(v: Value<'_>, strings: &RefCell<Arena>) -> engine::Result<matchy_value_t> {
    use matchy_type_t as T;
    type D = matchy_value_data_t;
    let (kind, size, data) = match v.deserialize::<Decoded>()? {
        Decoded::Scalar(kind, data) => (kind, 0, data),
        Decoded::Str(s) => {
            let p = strings.borrow_mut().push(s.as_bytes());
            (T::MATCHY_TYPE_STRING, s.len(), D { string: p })
        }
        Decoded::Map(n) => (T::MATCHY_TYPE_MAP, n, D { uint64: 0 }),
        // Rare enough to afford decoding the header again to tell the two apart.
        Decoded::Seq => match v.kind()? {
            ValueKind::Bytes => {
                let b = v.as_bytes()?;
                let p = if b.is_empty() {
                    EMPTY_BYTES.as_ptr()
                } else {
                    b.as_ptr()
                };
                (T::MATCHY_TYPE_BYTES, b.len(), D { bytes: p })
            }
            _ => {
                let n = v.array_iter()?.size_hint().1.unwrap_or(0);
                (T::MATCHY_TYPE_ARRAY, n, D { uint64: 0 })
            }
        },
    };
    Ok(matchy_value_t {
        r#type: kind,
        size,
        data,
    })
}

/// Match `index`'s whole data as compact JSON (maps in file order, integers exact, bytes as
/// arrays of numbers). On `MATCHY_OK`, `*json` is a new NUL-terminated string that the caller
/// releases with `matchy_free_string` (not `free`); otherwise `*json` is untouched.
///
/// # Safety
/// `result` is NULL or a live result; `json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_data_json(
    result: *const matchy_result_t,
    index: usize,
    json: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract; a NULL path is the data itself.
    unsafe { matchy_result_value_json(result, index, std::ptr::null(), json) }
}

/// The value at `path` (as for `matchy_result_get_value`) as compact JSON; `MATCHY_NOT_FOUND`
/// if the path leads nowhere. Ownership as for `matchy_result_data_json`.
///
/// # Safety
/// `result` is NULL or a live result; `path` as for `matchy_result_get_value`; `json` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn matchy_result_value_json(
    result: *const matchy_result_t,
    index: usize,
    path: *const *const c_char,
    json: *mut *mut c_char,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let m = unsafe { non_null(result, "result") }?.get(index)?;
        if json.is_null() {
            return Err(Failure::null("json"));
        }
        // SAFETY: per the contract.
        let found = unsafe { walk(m.value(), path) }?;
        let Some(v) = found else {
            return Ok(MATCHY_NOT_FOUND);
        };
        let text = v.to_json()?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { json.write(to_c_string(text).into_raw()) };
        Ok(MATCHY_OK)
    })
}

/// Release a string returned by matchy (`matchy_result_data_json`, `matchy_result_value_json`).
/// NULL is ignored. Only for strings documented as "release with matchy_free_string".
///
/// # Safety
/// `s` is NULL or such a string not released yet.
#[no_mangle]
pub unsafe extern "C" fn matchy_free_string(s: *mut c_char) {
    guard_value((), || {
        if !s.is_null() {
            // SAFETY: made by `CString::into_raw` in this library, released once.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    })
}

const _: () = assert!(size_of::<matchy_network_t>() == 18);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_pointers_survive_growth_and_reset_keeps_one_chunk() {
        let mut a = Arena::default();
        let first = a.push(b"hello");
        let mut ptrs = vec![(first, b"hello".to_vec())];
        for i in 0..500 {
            let s = format!("string number {i}").into_bytes();
            ptrs.push((a.push(&s), s));
        }
        let big = vec![b'x'; 5000];
        ptrs.push((a.push(&big), big));
        for (p, s) in &ptrs {
            // SAFETY: arena pointers are valid until reset; each is NUL-terminated.
            let got = unsafe { std::ffi::CStr::from_ptr(*p) };
            assert_eq!(got.to_bytes(), &s[..]);
        }
        assert!(a.chunks.len() > 1);
        a.reset();
        assert_eq!(a.chunks.len(), 1);
        let cap = a.chunks[0].len();
        for i in 0..500 {
            a.push(format!("string number {i}").as_bytes());
        }
        assert_eq!(
            a.chunks.len(),
            1,
            "a repeat of the same strings fits in the kept chunk"
        );
        assert_eq!(a.chunks[0].len(), cap);
    }

    #[test]
    fn arena_gives_back_huge_chunks() {
        let mut a = Arena::default();
        a.push(&vec![b'y'; ARENA_KEEP + 1]);
        a.reset();
        assert!(a.chunks.is_empty());
    }
}
