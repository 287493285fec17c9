//! `Mutex`: `tokio::sync::Mutex` with its contention recorded.

use super::{block_for, owned, wait_for, Guard, Owned, TryLockError};
use crate::sync::wait_book::WaitBook;
use std::fmt;
use std::sync::Arc;

/// An async mutual exclusion lock, as `tokio::sync::Mutex`, whose contention is profiled.
pub struct Mutex<T: ?Sized> {
    book: WaitBook,
    inner: tokio::sync::Mutex<T>,
}

/// The guard of a locked [`Mutex`], as `tokio::sync::MutexGuard`.
pub type MutexGuard<'a, T> = Guard<'a, tokio::sync::MutexGuard<'a, T>>;
/// A guard of part of a locked [`Mutex`] (`MutexGuard::map`), as `tokio::sync::MappedMutexGuard`.
pub type MappedMutexGuard<'a, T> = Guard<'a, tokio::sync::MappedMutexGuard<'a, T>>;
/// The guard of a [`Mutex`] locked through its `Arc` ([`Mutex::lock_owned`]), as
/// `tokio::sync::OwnedMutexGuard`.
pub type OwnedMutexGuard<T> = Owned<Mutex<T>, tokio::sync::MutexGuard<'static, T>>;

impl<T> Mutex<T> {
    /// Creates a new, unlocked mutex.
    pub fn new(value: T) -> Self {
        Mutex::const_new(value)
    }

    /// Creates a new, unlocked mutex in a `const` context (a `static`).
    pub const fn const_new(value: T) -> Self {
        Mutex {
            book: WaitBook::new(),
            inner: tokio::sync::Mutex::const_new(value),
        }
    }

    /// Consumes the mutex, returning the underlying data.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting (as a task) until it is available.
    pub async fn lock(&self) -> MutexGuard<'_, T> {
        let inner = match self.inner.try_lock() {
            Ok(inner) => inner,
            Err(_) => wait_for(&self.book, self.inner.lock()).await,
        };
        Guard::new(&self.book, inner)
    }

    /// Locks the mutex, blocking the thread until it is available (not in an async context;
    /// tokio's rule).
    pub fn blocking_lock(&self) -> MutexGuard<'_, T> {
        let inner = match self.inner.try_lock() {
            Ok(inner) => inner,
            Err(_) => block_for(&self.book, || self.inner.blocking_lock()),
        };
        Guard::new(&self.book, inner)
    }

    /// Locks the mutex if it is free at once.
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_lock()?;
        Ok(Guard::new(&self.book, inner))
    }

    /// A mutable reference to the underlying data: the `&mut` proves nobody holds the lock.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

impl<T: ?Sized + 'static> Mutex<T> {
    /// Locks the mutex through its `Arc`, waiting until it is available; the guard keeps the
    /// mutex alive.
    pub async fn lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        owned!(self, self.lock().await)
    }

    /// Locks the mutex through its `Arc`, blocking the thread until it is available.
    pub fn blocking_lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        owned!(self, self.blocking_lock())
    }

    /// Locks the mutex through its `Arc` if it is free at once.
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        Ok(owned!(self, self.try_lock()?))
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// A guard of the part of the data `f` picks, holding the same lock.
    pub fn map<U: ?Sized>(this: Self, f: impl FnOnce(&mut T) -> &mut U) -> MappedMutexGuard<'a, U> {
        Guard::map_inner(this, |inner| tokio::sync::MutexGuard::map(inner, f))
    }
}

impl<T: ?Sized + 'static> OwnedMutexGuard<T> {
    /// The mutex this guard holds.
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.lock
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    /// As tokio's: `Mutex { data: .. }`, `<locked>` when it is held.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
