//! The bounded spin lock that the stack table and the label table take to insert: never
//! blocks, never allocates, gives up after a fixed number of tries (the caller then counts its
//! sample as lost or overflowed).
//!
//! Outside signal handlers it also yields the CPU between rounds of tries
//! ([`SpinLock::lock_yielding`]): on a busy machine the holder is most often a thread that was
//! preempted inside its short insert, and spinning alone would give up before it runs again
//! (a CI run lost 1 of 5,000 labelled samples that way). A signal handler must not wait: it
//! may have interrupted the holder itself.

use std::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Relaxed, Release},
};

/// Tries before [`SpinLock::try_lock`] gives up.
const SPINS: u32 = 1 << 12;
/// Rounds of [`SPINS`] tries, with the CPU yielded in between, before
/// [`SpinLock::lock_yielding`] gives up.
const ROUNDS: u32 = 16;

/// Who takes a lock: whether it may wait by yielding the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Ordinary code: [`SpinLock::lock_yielding`].
    Thread,
    /// A signal handler, which may have interrupted the holder itself: [`SpinLock::try_lock`].
    SignalHandler,
}

/// A lock word taken with a bounded spin.
#[derive(Debug)]
pub(crate) struct SpinLock(AtomicBool);

/// Holds a [`SpinLock`]; releases it on drop.
pub(crate) struct SpinGuard<'a>(&'a SpinLock);

impl SpinLock {
    pub(crate) const fn new() -> SpinLock {
        SpinLock(AtomicBool::new(false))
    }

    /// The lock, or `None` after [`SPINS`] failed tries.
    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_>> {
        for _ in 0..SPINS {
            if self
                .0
                .compare_exchange_weak(false, true, Acquire, Relaxed)
                .is_ok()
            {
                return Some(SpinGuard(self));
            }
            std::hint::spin_loop();
        }
        None
    }

    /// As [`Self::try_lock`], in up to [`ROUNDS`] rounds with `sched_yield` in between, so
    /// that a preempted holder can finish. Bounded, no allocation; not for signal handlers.
    pub(crate) fn lock_yielding(&self) -> Option<SpinGuard<'_>> {
        for _ in 1..ROUNDS {
            if let Some(guard) = self.try_lock() {
                return Some(guard);
            }
            std::thread::yield_now();
        }
        self.try_lock()
    }

    /// The lock as `caller` may take it: yielding for a thread, only spinning for a handler.
    pub(crate) fn lock_as(&self, caller: Caller) -> Option<SpinGuard<'_>> {
        match caller {
            Caller::Thread => self.lock_yielding(),
            Caller::SignalHandler => self.try_lock(),
        }
    }
}

impl SpinLock {
    /// Releases the lock whoever holds it: only in a child just forked, where the holder was
    /// another thread of the parent and does not exist (see `crate::fork`).
    pub(crate) fn release_in_child(&self) {
        self.0.store(false, Release);
    }
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.store(false, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_while_held_and_locks_once_released() {
        let lock = SpinLock::new();
        let held = lock.try_lock().expect("a free lock is taken at once");
        assert!(lock.try_lock().is_none());
        assert!(lock.lock_yielding().is_none(), "bounded: it gives up");
        drop(held);
        let again = lock.lock_yielding();
        assert!(again.is_some());
        drop(again);
        assert!(lock.try_lock().is_some(), "the guard released it");
    }
}
