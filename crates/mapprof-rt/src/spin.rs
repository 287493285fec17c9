//! The bounded spin lock that the stack table and the label table take to insert: never
//! blocks, never allocates, gives up after a fixed number of tries (the caller then counts its
//! sample as lost or overflowed).

use std::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Relaxed, Release},
};

/// Tries before [`SpinLock::try_lock`] gives up.
const SPINS: u32 = 1 << 12;

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
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.store(false, Release);
    }
}
