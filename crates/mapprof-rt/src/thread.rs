//! Per-thread state of the hot path, and the reentrancy guard.

use std::cell::Cell;
use std::sync::atomic::AtomicU32;

/// Everything the hot path keeps per thread. Const-initialised and without a destructor, so
/// access never allocates, never registers a destructor and still works during thread exit.
#[derive(Debug)]
pub(crate) struct ThreadState {
    /// Bytes left until the next heap sample; an allocation larger than this is sampled.
    pub(crate) countdown: Cell<u64>,
    /// Whether this thread's heap countdown has started (its first look at the rate).
    pub(crate) counting: Cell<bool>,
    /// xorshift64* state; 0 until first used (heap or lock sampling).
    pub(crate) rng: Cell<u64>,
    /// Set while this thread is inside the profiler.
    pub(crate) busy: Cell<bool>,
    /// The thread's stack range `[lo, hi)`, bounding frame-pointer walks; `hi == 0` until known.
    pub(crate) stack_lo: Cell<usize>,
    pub(crate) stack_hi: Cell<usize>,
    /// The id of the thread's current labels in `crate::labels`' table, cached there by the
    /// first sample after they changed (0 = none; `u32::MAX` = not looked up yet). Atomic
    /// because a signal handler on this thread reads it (`labels::signal_id`).
    pub(crate) labels: AtomicU32,
}

thread_local! {
    pub(crate) static STATE: ThreadState = const {
        ThreadState {
            countdown: Cell::new(0),
            counting: Cell::new(false),
            rng: Cell::new(0),
            busy: Cell::new(false),
            stack_lo: Cell::new(0),
            stack_hi: Cell::new(0),
            labels: AtomicU32::new(0),
        }
    };
}

/// Runs `f` without profiling the current thread: its allocations pass straight through to the
/// inner allocator. Used by the profiler's own reporting code (snapshots, symbolization,
/// encoding) so that it does not profile itself; usable by hosts for the same purpose, e.g. a
/// load generator sharing the process with the service it loads.
///
/// The countdown is parked at `u64::MAX` meanwhile, so `f`'s allocations stay on the fast path,
/// and restored afterwards: the thread's sampling resumes where it stopped.
pub fn ignore<R>(f: impl FnOnce() -> R) -> R {
    let saved = STATE
        .try_with(|s| {
            // A thread that only ever allocates in here still gets walkable CPU samples.
            crate::stack::stack_bounds(s);
            (s.busy.replace(true), s.countdown.replace(u64::MAX))
        })
        .ok();
    struct Restore(Option<(bool, u64)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some((busy, countdown)) = self.0 {
                let _ = STATE.try_with(|s| {
                    s.busy.set(busy);
                    s.countdown.set(countdown);
                });
            }
        }
    }
    let _restore = Restore(saved);
    f()
}
