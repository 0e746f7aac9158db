//! Who still reads a snapshot, so that a replaced file's mapping is released as soon as no
//! thread uses it, even while idle threads keep their (thread-local, non-atomic) pins of it.
//!
//! Each pin of a snapshot has a [`ReaderState`]: the number of lookups in progress plus results
//! alive on that thread. Only the owning thread writes it, with plain stores (no atomic
//! read-modify-write on the lookup path). The reload watcher, after publishing a new generation,
//! issues a process-wide memory barrier (Linux `membarrier`): every thread has then either made
//! its "in use" store visible, or will read the new generation and move to the new snapshot.
//! If every reader of a retired snapshot is at zero and nothing else holds it, its mapping is
//! replaced by zero pages ([`ReaderRegistry::release`]): the file is no longer mapped, its page
//! cache can go, and the small snapshot struct the idle threads still point at is freed when they
//! next look up (or exit). Where `membarrier` is unavailable nothing is released early: idle
//! pins then hold their snapshot until the thread looks up again, as without this module.

use std::sync::atomic::{compiler_fence, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::reload::lock;

/// One thread's use of one snapshot (see the module documentation).
#[derive(Debug)]
pub(crate) struct ReaderState {
    busy: AtomicU32,
}

impl ReaderState {
    /// A lookup starts or a result is made. Owning thread only.
    #[inline]
    pub fn enter(&self) {
        self.busy
            .store(self.busy.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // The store must not move after the generation check that follows; the hardware side of
        // this fence is the watcher's `membarrier`.
        compiler_fence(Ordering::SeqCst);
    }

    /// A lookup ended or a result was dropped. Owning thread only. Release: the reads of the
    /// snapshot made meanwhile complete before the watcher can see zero.
    #[inline]
    pub fn leave(&self) {
        self.busy
            .store(self.busy.load(Ordering::Relaxed) - 1, Ordering::Release);
    }
}

/// The readers of one snapshot, and whether its mapping was released.
#[derive(Debug, Default)]
pub(crate) struct ReaderRegistry {
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    readers: Vec<Weak<ReaderState>>,
    released: bool,
}

impl ReaderRegistry {
    /// A new reader, already counting one use. `None` once the mapping was released (the
    /// snapshot is no longer served: load the current one again).
    pub fn add(&self) -> Option<Arc<ReaderState>> {
        let mut r = lock(&self.inner);
        if r.released {
            return None;
        }
        r.readers.retain(|w| w.strong_count() > 0);
        let reader = Arc::new(ReaderState {
            busy: AtomicU32::new(1),
        });
        r.readers.push(Arc::downgrade(&reader));
        Some(reader)
    }

    /// Calls `release` (which unmaps the snapshot) if no reader uses the snapshot and nothing but
    /// the `pins` readers' own references and the caller's hold it (`holders`: its strong count).
    /// Call only for a snapshot that is no longer current, after [`process_barrier`] returned
    /// true. Returns true when the snapshot needs no further attempts.
    pub fn release_if_unused(&self, holders: usize, release: impl FnOnce()) -> bool {
        let mut r = lock(&self.inner);
        if r.released {
            return true;
        }
        let live: Vec<Arc<ReaderState>> = r.readers.iter().filter_map(Weak::upgrade).collect();
        // Each pin holds one reference; the caller holds one more. Any other holder (a
        // `validate` in progress, say) may be reading the mapping.
        if holders != live.len() + 1 || live.iter().any(|s| s.busy.load(Ordering::Acquire) != 0) {
            return false;
        }
        r.released = true;
        release();
        true
    }
}

/// A memory barrier on every thread of the process (Linux `membarrier`, private expedited).
/// False where the kernel does not offer it.
pub(crate) fn process_barrier() -> bool {
    #[cfg(target_os = "linux")]
    {
        const QUERY: libc::c_int = 0;
        const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
        static REGISTERED: OnceLock<bool> = OnceLock::new();
        let ready = *REGISTERED.get_or_init(|| {
            // SAFETY: membarrier takes no pointers; unknown commands fail with an error code.
            let supported = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0, 0) };
            supported > 0
                && supported & i64::from(PRIVATE_EXPEDITED) != 0
                // SAFETY: as above.
                && unsafe {
                    libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0)
                } == 0
        });
        // SAFETY: as above.
        ready && unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) } == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
