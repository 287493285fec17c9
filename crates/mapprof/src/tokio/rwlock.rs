//! `RwLock`: `tokio::sync::RwLock` with its contention recorded. Readers waiting on a writer
//! and a writer waiting on readers are both waiters; any release that finds waiters charges.

use super::{block_for, owned, wait_for, Guard, Owned, TryLockError};
use crate::sync::wait_book::{record_charge, WaitBook};
use std::fmt;
use std::sync::Arc;

/// An async reader-writer lock, as `tokio::sync::RwLock`, whose contention is profiled.
pub struct RwLock<T: ?Sized> {
    book: WaitBook,
    inner: tokio::sync::RwLock<T>,
}

/// Shared access to a locked [`RwLock`], as `tokio::sync::RwLockReadGuard`.
pub type RwLockReadGuard<'a, T> = Guard<'a, tokio::sync::RwLockReadGuard<'a, T>>;
/// Exclusive access to a locked [`RwLock`], as `tokio::sync::RwLockWriteGuard`.
pub type RwLockWriteGuard<'a, T> = Guard<'a, tokio::sync::RwLockWriteGuard<'a, T>>;
/// Exclusive access to part of a locked [`RwLock`] (`RwLockWriteGuard::map`), as
/// `tokio::sync::RwLockMappedWriteGuard`.
pub type RwLockMappedWriteGuard<'a, T> = Guard<'a, tokio::sync::RwLockMappedWriteGuard<'a, T>>;
/// Shared access through the lock's `Arc` ([`RwLock::read_owned`]), as
/// `tokio::sync::OwnedRwLockReadGuard`.
pub type OwnedRwLockReadGuard<T> = Owned<RwLock<T>, tokio::sync::RwLockReadGuard<'static, T>>;
/// Exclusive access through the lock's `Arc` ([`RwLock::write_owned`]), as
/// `tokio::sync::OwnedRwLockWriteGuard`.
pub type OwnedRwLockWriteGuard<T> = Owned<RwLock<T>, tokio::sync::RwLockWriteGuard<'static, T>>;

impl<T> RwLock<T> {
    /// Creates a new, unlocked lock.
    pub fn new(value: T) -> Self {
        RwLock::const_new(value)
    }

    /// Creates a new, unlocked lock in a `const` context (a `static`).
    pub const fn const_new(value: T) -> Self {
        RwLock {
            book: WaitBook::new(),
            inner: tokio::sync::RwLock::const_new(value),
        }
    }

    /// Creates a new, unlocked lock that lets at most `max_reads` readers in at a time.
    pub fn with_max_readers(value: T, max_reads: u32) -> Self {
        RwLock::const_with_max_readers(value, max_reads)
    }

    /// [`RwLock::with_max_readers`] in a `const` context.
    pub const fn const_with_max_readers(value: T, max_reads: u32) -> Self {
        RwLock {
            book: WaitBook::new(),
            inner: tokio::sync::RwLock::const_with_max_readers(value, max_reads),
        }
    }

    /// Consumes the lock, returning the underlying data.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for shared reading, waiting (as a task) while a writer holds or waits for it.
    pub async fn read(&self) -> RwLockReadGuard<'_, T> {
        let inner = match self.inner.try_read() {
            Ok(inner) => inner,
            Err(_) => wait_for(&self.book, self.inner.read()).await,
        };
        Guard::new(&self.book, inner)
    }

    /// Locks for exclusive writing, waiting (as a task) while anyone holds it.
    pub async fn write(&self) -> RwLockWriteGuard<'_, T> {
        let inner = match self.inner.try_write() {
            Ok(inner) => inner,
            Err(_) => wait_for(&self.book, self.inner.write()).await,
        };
        Guard::new(&self.book, inner)
    }

    /// Locks for reading, blocking the thread (not in an async context; tokio's rule).
    pub fn blocking_read(&self) -> RwLockReadGuard<'_, T> {
        let inner = match self.inner.try_read() {
            Ok(inner) => inner,
            Err(_) => block_for(&self.book, || self.inner.blocking_read()),
        };
        Guard::new(&self.book, inner)
    }

    /// Locks for writing, blocking the thread (not in an async context; tokio's rule).
    pub fn blocking_write(&self) -> RwLockWriteGuard<'_, T> {
        let inner = match self.inner.try_write() {
            Ok(inner) => inner,
            Err(_) => block_for(&self.book, || self.inner.blocking_write()),
        };
        Guard::new(&self.book, inner)
    }

    /// Locks for reading if that is possible at once.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_read()?;
        Ok(Guard::new(&self.book, inner))
    }

    /// Locks for writing if the lock is free at once.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_write()?;
        Ok(Guard::new(&self.book, inner))
    }

    /// A mutable reference to the underlying data: the `&mut` proves nobody holds the lock.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

impl<T: ?Sized + 'static> RwLock<T> {
    /// [`RwLock::read`] through the lock's `Arc`, which the guard keeps alive.
    pub async fn read_owned(self: Arc<Self>) -> OwnedRwLockReadGuard<T> {
        owned!(self, self.read().await)
    }

    /// [`RwLock::write`] through the lock's `Arc`, which the guard keeps alive.
    pub async fn write_owned(self: Arc<Self>) -> OwnedRwLockWriteGuard<T> {
        owned!(self, self.write().await)
    }

    /// [`RwLock::try_read`] through the lock's `Arc`.
    pub fn try_read_owned(self: Arc<Self>) -> Result<OwnedRwLockReadGuard<T>, TryLockError> {
        Ok(owned!(self, self.try_read()?))
    }

    /// [`RwLock::try_write`] through the lock's `Arc`.
    pub fn try_write_owned(self: Arc<Self>) -> Result<OwnedRwLockWriteGuard<T>, TryLockError> {
        Ok(owned!(self, self.try_write()?))
    }
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// A guard of the part of the data `f` picks, holding the same read lock.
    pub fn map<U: ?Sized>(this: Self, f: impl FnOnce(&T) -> &U) -> RwLockReadGuard<'a, U> {
        Guard::map_inner(this, |inner| tokio::sync::RwLockReadGuard::map(inner, f))
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// A guard of the part of the data `f` picks, holding the same write lock.
    pub fn map<U: ?Sized>(
        this: Self,
        f: impl FnOnce(&mut T) -> &mut U,
    ) -> RwLockMappedWriteGuard<'a, U> {
        Guard::map_inner(this, |inner| tokio::sync::RwLockWriteGuard::map(inner, f))
    }

    /// Turns the write lock into a read lock without letting a writer in between. It ends
    /// the exclusive hold, so waiting readers get in: the holder is charged as at a release.
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        let (book, inner) = Guard::into_parts(self);
        let delay = book.charge();
        let read = inner.downgrade();
        record_charge(delay);
        Guard::new(book, read)
    }
}

impl<T: ?Sized + 'static> OwnedRwLockReadGuard<T> {
    /// The lock this guard holds.
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.lock
    }
}

impl<T: ?Sized + 'static> OwnedRwLockWriteGuard<T> {
    /// The lock this guard holds.
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.lock
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    /// As tokio's: `RwLock { data: .. }`, `<locked>` when a writer holds it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
