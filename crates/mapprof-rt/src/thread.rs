//! Per-thread state of the hot path, and the reentrancy guard.

use std::cell::Cell;
use std::sync::atomic::AtomicU32;

/// Everything the hot path keeps per thread. Const-initialised and without a destructor, so
/// access never allocates, never registers a destructor and still works during thread exit.
#[derive(Debug)]
pub(crate) struct ThreadState {
    /// Bytes left of the current piece of the heap countdown; an allocation larger than this
    /// takes the cold path (`crate::heap`), which samples it or carries on with `pending`.
    pub(crate) countdown: Cell<u64>,
    /// Bytes of the current step beyond `countdown`: steps are counted down in pieces of at
    /// most `sampler::MAX_COUNTDOWN`, so that the cold path looks at the generation often.
    pub(crate) pending: Cell<u64>,
    /// The `sampler::generation` the current step was drawn in; 0 before the thread's first
    /// look at the rate.
    pub(crate) generation: Cell<u64>,
    /// The rate the current step was drawn at: what its sample is unbiased with.
    pub(crate) step_rate: Cell<u64>,
    /// xorshift64* state; 0 until first used (heap or lock sampling).
    pub(crate) rng: Cell<u64>,
    /// The `sampler::generation` at which `rng` was seeded (`sampler::thread_rng`).
    pub(crate) seeded: Cell<u64>,
    /// The thread's ordinal + 1 among the threads that drew (0 = none yet): which of the
    /// seed's streams is the thread's.
    pub(crate) ordinal: Cell<u32>,
    /// Set while this thread is inside the profiler (sampling, [`ignore`], [`as_profiler`]).
    pub(crate) busy: Cell<bool>,
    /// Set while this thread does the profiler's own work ([`as_profiler`]): its allocations
    /// are the profiler's, and `mapprof::Alloc` puts them in a heap of the profiler's own.
    pub(crate) profiler: Cell<bool>,
    /// Set while the profiler's work allocates what it keeps from one profile to the next (its
    /// symbol cache: [`keeping`]): the kept heap + 1, 0 when not keeping. `mapprof::Alloc`
    /// puts those allocations in heaps apart from the work's temporaries, so that those, freed
    /// when the work ends, leave no page pinned by a cache entry beside them.
    pub(crate) keeping: Cell<u8>,
    /// The thread's stack range `[lo, hi)`, bounding frame-pointer walks; `hi == 0` until known.
    pub(crate) stack_lo: Cell<usize>,
    pub(crate) stack_hi: Cell<usize>,
    /// Set while a signal handler of mapprof's unwinds this thread's interrupted stack
    /// (`cpu::unwind_interrupted`): a second handler nested in it (a thread dump's signal
    /// landing in a SIGPROF handler, or the reverse) walks frame pointers only, never
    /// entering libgcc's unwinder while the first is inside it.
    pub(crate) unwinding: Cell<bool>,
    /// The id of the thread's current labels in `crate::labels`' table, cached there by the
    /// first sample after they changed (0 = none; `u32::MAX` = not looked up yet). Atomic
    /// because a signal handler on this thread reads it (`labels::signal_id`).
    pub(crate) labels: AtomicU32,
    /// The exact-counting scope the thread is in (`crate::scope`), null when none.
    pub(crate) scope: Cell<*const crate::scope::Scope>,
}

thread_local! {
    pub(crate) static STATE: ThreadState = const {
        ThreadState {
            countdown: Cell::new(0),
            pending: Cell::new(0),
            generation: Cell::new(0),
            step_rate: Cell::new(0),
            rng: Cell::new(0),
            seeded: Cell::new(0),
            ordinal: Cell::new(0),
            busy: Cell::new(false),
            profiler: Cell::new(false),
            keeping: Cell::new(0),
            stack_lo: Cell::new(0),
            stack_hi: Cell::new(0),
            unwinding: Cell::new(false),
            labels: AtomicU32::new(0),
            scope: Cell::new(std::ptr::null()),
        }
    };
}

/// The calling thread's kernel id. A system call, async-signal-safe; callers on hot paths
/// cache it.
pub fn gettid() -> u32 {
    // SAFETY: `gettid` takes no argument and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// Runs `f` without profiling the current thread: its allocations pass straight through to the
/// inner allocator, and stay the host's (same heap, same arenas). For hosts, e.g. a load
/// generator sharing the process with the service it loads; the profiler's own work runs under
/// [`as_profiler`] instead.
///
/// The countdown is parked at `u64::MAX` meanwhile, so `f`'s allocations stay on the fast path,
/// and restored afterwards: the thread's sampling resumes where it stopped. Inside
/// [`as_profiler`] it stays parked at 0: the work is still the profiler's.
pub fn ignore<R>(f: impl FnOnce() -> R) -> R {
    let saved = STATE
        .try_with(|s| {
            // A thread that only ever allocates in here still gets walkable CPU samples.
            crate::stack::stack_bounds(s);
            let park = if s.profiler.get() { 0 } else { u64::MAX };
            (
                s.busy.replace(true),
                s.profiler.get(),
                s.countdown.replace(park),
            )
        })
        .ok();
    let _restore = Restore(saved);
    f()
}

/// Runs `f` as the profiler's own work (building, encoding, serving profiles): unsampled like
/// [`ignore`], and its allocations are the profiler's, so that `mapprof::Alloc` can keep them
/// apart from the host's and give their memory back to the system afterwards (with jemalloc: an
/// arena of mapprof's own). Nests, inside itself and [`ignore`] alike; the state before is
/// restored when `f` returns or unwinds.
///
/// The countdown is parked at 0 meanwhile, so that every allocation of `f` fails the
/// countdown's test and takes the wrapper's cold path, which routes it: the fast paths of
/// everyone else stay as they are. (The wrapped-around countdown is parked at 0 again by
/// [`crate::heap::for_the_profiler`] on each of them.)
pub fn as_profiler<R>(f: impl FnOnce() -> R) -> R {
    let saved = STATE
        .try_with(|s| {
            (
                s.busy.replace(true),
                s.profiler.replace(true),
                s.countdown.replace(0),
            )
        })
        .ok();
    let _restore = Restore(saved);
    f()
}

/// Kept heaps: two, so that the symbol cache's generations alternate between them and dropping
/// the older one empties its heap whole (see `mapprof_profile::symbolize::Keeper`).
pub const KEPT_HEAPS: usize = 2;

/// Runs `f`, part of the profiler's work, allocating what the profiler keeps across profiles
/// in kept heap `heap` (below [`KEPT_HEAPS`]; see `ThreadState::keeping`). Outside
/// [`as_profiler`] it changes nothing.
pub fn keeping<R>(heap: usize, f: impl FnOnce() -> R) -> R {
    let heap = (heap % KEPT_HEAPS) as u8 + 1;
    let saved = STATE.try_with(|s| s.keeping.replace(heap)).ok();
    struct Restore(Option<u8>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(keeping) = self.0 {
                let _ = STATE.try_with(|s| s.keeping.set(keeping));
            }
        }
    }
    let _restore = Restore(saved);
    f()
}

/// The kept heap the current thread's profiler work allocates in ([`keeping`]), if any.
pub fn kept_heap() -> Option<usize> {
    let heap = STATE.try_with(|s| s.keeping.get()).unwrap_or(0);
    (heap as usize).checked_sub(1)
}

/// Whether the current thread is doing the profiler's own work ([`as_profiler`]).
pub fn is_profiler_work() -> bool {
    STATE.try_with(|s| s.profiler.get()).unwrap_or(false)
}

/// Puts back the state [`ignore`] and [`as_profiler`] changed: (busy, profiler, countdown).
struct Restore(Option<(bool, bool, u64)>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some((busy, profiler, countdown)) = self.0 {
            let _ = STATE.try_with(|s| {
                s.busy.set(busy);
                s.profiler.set(profiler);
                s.countdown.set(countdown);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn countdown() -> u64 {
        STATE.with(|s| s.countdown.get())
    }

    #[test]
    fn profiler_work_nests_and_ignore_inside_it_stays_the_profilers() {
        assert!(!is_profiler_work());
        as_profiler(|| {
            // Parked at 0: every allocation takes the cold path, which routes it.
            assert!(is_profiler_work());
            assert_eq!(countdown(), 0);
            ignore(|| {
                assert!(is_profiler_work());
                assert_eq!(countdown(), 0);
            });
            as_profiler(|| assert!(is_profiler_work()));
            assert!(is_profiler_work());
            assert_eq!(kept_heap(), None);
            keeping(1, || {
                assert_eq!(kept_heap(), Some(1));
                keeping(2, || {
                    assert_eq!(kept_heap(), Some(0), "two heaps, by parity")
                });
                assert_eq!(kept_heap(), Some(1), "restored");
                assert!(is_profiler_work());
            });
            assert_eq!(kept_heap(), None);
        });
        assert!(!is_profiler_work());
        ignore(|| {
            // The host's unsampled work stays on the fast path, and the host's.
            assert!(!is_profiler_work());
            assert_eq!(countdown(), u64::MAX);
            as_profiler(|| assert!(is_profiler_work()));
            assert!(!is_profiler_work());
            assert_eq!(countdown(), u64::MAX);
        });
        assert!(!is_profiler_work());
    }
}
