//! `Mutex`: `std::sync::Mutex` with contention recorded.

use super::wait_book::{record_charge, WaitBook, SPIN_TRIES};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// A mutual exclusion primitive, as `std::sync::Mutex`, whose contention is profiled.
#[derive(Default)]
pub struct Mutex<T: ?Sized> {
    book: WaitBook,
    inner: std::sync::Mutex<T>,
}

/// The guard of a locked [`Mutex`], as `std::sync::MutexGuard`.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    book: &'a WaitBook,
    inner: ManuallyDrop<std::sync::MutexGuard<'a, T>>,
}

impl<T> Mutex<T> {
    /// Creates a new mutex in an unlocked state.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            book: WaitBook::new(),
            inner: std::sync::Mutex::new(value),
        }
    }

    /// Consumes the mutex, returning the underlying data (an error if it is poisoned).
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the mutex, blocking until it is available. An error if it is poisoned, with
    /// the guard inside, as std.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        match self.inner.try_lock() {
            Ok(inner) => Ok(self.guard(inner)),
            Err(TryLockError::Poisoned(e)) => Err(PoisonError::new(self.guard(e.into_inner()))),
            Err(TryLockError::WouldBlock) => self.lock_contended(),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) -> LockResult<MutexGuard<'_, T>> {
        for _ in 0..SPIN_TRIES {
            std::hint::spin_loop();
            match self.inner.try_lock() {
                Ok(inner) => return Ok(self.guard(inner)),
                Err(TryLockError::Poisoned(e)) => {
                    return Err(PoisonError::new(self.guard(e.into_inner())))
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let ticket = self.book.enter();
        let result = self.inner.lock();
        self.book.leave(ticket);
        map_lock(result, |inner| self.guard(inner))
    }

    /// Attempts to acquire the mutex without blocking, as std.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        match self.inner.try_lock() {
            Ok(inner) => Ok(self.guard(inner)),
            Err(TryLockError::Poisoned(e)) => Err(TryLockError::Poisoned(PoisonError::new(
                self.guard(e.into_inner()),
            ))),
            Err(TryLockError::WouldBlock) => Err(TryLockError::WouldBlock),
        }
    }

    /// Whether the mutex is poisoned.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.inner.clear_poison()
    }

    /// A mutable reference to the underlying data (an error if it is poisoned).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }

    fn guard<'a>(&'a self, inner: std::sync::MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        MutexGuard {
            book: &self.book,
            inner: ManuallyDrop::new(inner),
        }
    }
}

/// Maps the guard inside a `LockResult`, poisoned or not.
pub(crate) fn map_lock<G, H>(result: LockResult<G>, f: impl FnOnce(G) -> H) -> LockResult<H> {
    match result {
        Ok(g) => Ok(f(g)),
        Err(e) => Err(PoisonError::new(f(e.into_inner()))),
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Takes the std guard out without unlocking, for `Condvar`; the caller charges the holder.
    pub(crate) fn into_parts(self) -> (&'a WaitBook, std::sync::MutexGuard<'a, T>) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so `inner` is taken exactly once and not used again.
        let inner = unsafe { ManuallyDrop::take(&mut this.inner) };
        (this.book, inner)
    }

    pub(crate) fn from_parts(book: &'a WaitBook, inner: std::sync::MutexGuard<'a, T>) -> Self {
        MutexGuard {
            book,
            inner: ManuallyDrop::new(inner),
        }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        let delay = self.book.charge();
        // SAFETY: `inner` is dropped exactly once, here, and not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
        // The lock is free again: capture the holder's stack outside the critical section.
        record_charge(delay);
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
