//! The SIGBUS guard for mapped database files.
//!
//! Reading a mapped page that lies past the end of a file truncated after it was mapped raises
//! SIGBUS, which kills the process. Databases must be replaced by rename, but an in-place
//! `cp`/`truncate` is a common mistake, and a reader must survive it. So every mapping is
//! registered here with its snapshot's poison flag; a process-wide handler catches SIGBUS at an
//! address inside a registered mapping, maps a page of zeros over the faulting page (the read
//! then completes with zeros), and sets the poison flag, which makes the lookup that read it,
//! and every later lookup on that snapshot, return an error instead of an answer. Faults at any
//! other address go to the handler that was installed before ours (or the default action).

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

const SLOTS: usize = 1024;

struct Region {
    start: AtomicUsize,
    end: AtomicUsize,
    poison: AtomicPtr<AtomicBool>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Region = Region {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    poison: AtomicPtr::new(std::ptr::null_mut()),
};

static REGIONS: [Region; SLOTS] = [EMPTY; SLOTS];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
/// The disposition before ours, `None` when installing failed (then mappings are unguarded).
static PREVIOUS: OnceLock<Option<libc::sigaction>> = OnceLock::new();

/// A registered mapping; unregisters on drop (before the mapping itself goes).
pub(crate) struct Guard {
    slot: Option<usize>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // Clearing `start` first takes the slot out of the handler's view.
            REGIONS[i].start.store(0, Ordering::Release);
            REGIONS[i]
                .poison
                .store(std::ptr::null_mut(), Ordering::Release);
            // Free for reuse. No fault can be in flight here: a read of the mapping holds the
            // snapshot, so the mapping cannot be dropped under it.
            REGIONS[i].end.store(0, Ordering::Release);
        }
    }
}

/// Guard `len` bytes at `start` (a mapping); a SIGBUS there sets `*poison`. `poison` must stay
/// at its address until the returned guard is dropped (the caller boxes it).
pub(crate) fn register(start: *const u8, len: usize, poison: &AtomicBool) -> Guard {
    if len == 0 || !install() {
        return Guard { slot: None };
    }
    let start = start as usize;
    for (i, r) in REGIONS.iter().enumerate() {
        // Claim a free slot by taking its `end` from 0; publish `start` last.
        if r.end
            .compare_exchange(0, start + len, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            r.poison.store(
                poison as *const AtomicBool as *mut AtomicBool,
                Ordering::Release,
            );
            r.start.store(start, Ordering::Release);
            return Guard { slot: Some(i) };
        }
    }
    Guard { slot: None } // more than SLOTS live mappings: the extra ones go unguarded
}

fn install() -> bool {
    let previous = PREVIOUS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE_SIZE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is a valid value to fill in; sigemptyset and sigaction get
        // valid pointers to it and to `old`, which sigaction fills on success.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut old) == 0 {
                Some(old)
            } else {
                None
            }
        }
    });
    previous.is_some()
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for r in REGIONS.iter() {
        let start = r.start.load(Ordering::Acquire);
        if start == 0 || addr < start || addr >= r.end.load(Ordering::Acquire) {
            continue;
        }
        let page = addr & !(PAGE_SIZE.load(Ordering::Relaxed) - 1);
        // SAFETY: the page lies inside a mapping we own (registered, not yet unregistered: the
        // faulting read holds the snapshot alive). Replacing it with zeros changes only what
        // this mapping reads; mmap is async-signal-safe.
        let mapped = unsafe { map_zeros(page as *const u8, PAGE_SIZE.load(Ordering::Relaxed)) };
        if mapped {
            let poison = r.poison.load(Ordering::Acquire);
            if !poison.is_null() {
                // SAFETY: the flag outlives the registration (see `register`).
                unsafe { (*poison).store(true, Ordering::Release) };
            }
            return; // the read is retried and now sees zeros
        }
    }
    chain(sig, info, ctx);
}

/// Replaces `len` bytes of mapping at `start` (page-aligned) by anonymous read-only zero pages,
/// in place: the addresses stay valid, the file is no longer mapped there. False if mmap failed.
///
/// # Safety
/// `[start, start + len)` must be (part of) a mapping owned by the caller, and nothing may rely
/// on reading its old contents any more.
pub(crate) unsafe fn map_zeros(start: *const u8, len: usize) -> bool {
    // SAFETY: the caller owns the range; MAP_FIXED replaces exactly it.
    let mapped = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    mapped != libc::MAP_FAILED
}

/// Hand a fault that is not ours to the previous handler, or to the default action.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let previous = PREVIOUS.get().copied().flatten();
    match previous {
        Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
            if old.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed as an SA_SIGINFO handler.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(old.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: the previous handler was installed as a plain handler.
                let f: extern "C" fn(libc::c_int) =
                    unsafe { std::mem::transmute(old.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // SAFETY: restoring the default action; returning re-executes the faulting read,
            // which now terminates the process as it would have without us.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut dfl.sa_mask);
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}
