//! `Condvar`: `std::sync::Condvar` working with the shim's `MutexGuard`.
//!
//! Waiting releases the mutex; if others were waiting for it, the holder is charged for their
//! wait then, as at an unlock. Re-acquiring the mutex after a wake-up happens inside std and is
//! not seen by the block profile.

use super::mutex::{map_lock, MutexGuard};
use super::wait_book::record_charge;
use std::fmt;
use std::sync::{LockResult, WaitTimeoutResult};
use std::time::Duration;

/// A condition variable, as `std::sync::Condvar`, for [`super::Mutex`].
#[derive(Default)]
pub struct Condvar {
    inner: std::sync::Condvar,
}

impl Condvar {
    /// Creates a new condition variable.
    pub const fn new() -> Condvar {
        Condvar {
            inner: std::sync::Condvar::new(),
        }
    }

    /// Blocks until notified, releasing the mutex meanwhile, as std.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let (book, inner) = guard.into_parts();
        record_charge(book.charge());
        map_lock(self.inner.wait(inner), |g| MutexGuard::from_parts(book, g))
    }

    /// Blocks while `condition` returns true, as std.
    pub fn wait_while<'a, T, F>(
        &self,
        guard: MutexGuard<'a, T>,
        condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        let (book, inner) = guard.into_parts();
        record_charge(book.charge());
        map_lock(self.inner.wait_while(inner, condition), |g| {
            MutexGuard::from_parts(book, g)
        })
    }

    /// Blocks until notified or `timeout` has passed, as std.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let (book, inner) = guard.into_parts();
        record_charge(book.charge());
        map_lock(self.inner.wait_timeout(inner, timeout), |(g, t)| {
            (MutexGuard::from_parts(book, g), t)
        })
    }

    /// Blocks while `condition` returns true, at most `timeout`, as std.
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let (book, inner) = guard.into_parts();
        record_charge(book.charge());
        map_lock(
            self.inner.wait_timeout_while(inner, timeout, condition),
            |(g, t)| (MutexGuard::from_parts(book, g), t),
        )
    }

    /// Wakes up one blocked thread.
    pub fn notify_one(&self) {
        self.inner.notify_one()
    }

    /// Wakes up all blocked threads.
    pub fn notify_all(&self) {
        self.inner.notify_all()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
