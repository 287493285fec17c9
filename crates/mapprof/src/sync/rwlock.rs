//! `RwLock`: `std::sync::RwLock` with contention recorded. Readers waiting on a writer and a
//! writer waiting on readers are both waiters; any unlock that finds waiters is charged.

use super::mutex::map_lock;
use super::owner::current_tid;
use super::wait_book::{record_charge, WaitBook};
use mapprof_rt::contention::WaiterStack;
use mapprof_rt::threads::{WaitKind, Waiting};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// A reader-writer lock, as `std::sync::RwLock`, whose contention is profiled.
#[derive(Default)]
pub struct RwLock<T: ?Sized> {
    book: Book,
    inner: std::sync::RwLock<T>,
}

/// The lock's waiters and its writer, side by side so that a guard reaches both through one
/// reference.
#[derive(Default)]
struct Book {
    waits: WaitBook,
    /// The tid of the writer holding it, 0 when none does (`super::owner`): for thread dumps.
    writer: AtomicU32,
}

/// Shared access to a locked [`RwLock`], as `std::sync::RwLockReadGuard`.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    book: &'a Book,
    inner: ManuallyDrop<std::sync::RwLockReadGuard<'a, T>>,
}

/// Exclusive access to a locked [`RwLock`], as `std::sync::RwLockWriteGuard`.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    book: &'a Book,
    inner: ManuallyDrop<std::sync::RwLockWriteGuard<'a, T>>,
}

impl<T> RwLock<T> {
    /// Creates a new, unlocked lock.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            book: Book {
                waits: WaitBook::new(),
                writer: AtomicU32::new(0),
            },
            inner: std::sync::RwLock::new(value),
        }
    }

    /// Consumes the lock, returning the underlying data (an error if it is poisoned).
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

/// Bounded spinning before a thread counts as a waiter: short waits resolve here, as they do
/// in std's own lock (and in Go, which profiles only waits that sleep), and are not profiled.
const SPIN_TRIES: u32 = 40;

/// Tries first; on `WouldBlock` goes to the cold `$contended` function.
macro_rules! acquire {
    ($self:ident, $try:ident, $contended:ident, $guard:ident) => {
        match $self.inner.$try() {
            Ok(inner) => Ok($guard($self, inner)),
            Err(TryLockError::Poisoned(e)) => Err(PoisonError::new($guard($self, e.into_inner()))),
            Err(TryLockError::WouldBlock) => $self.$contended(),
        }
    };
}

/// The contended path: spins on `$try` a little, then registers as a waiter around `$block`.
macro_rules! contended {
    ($self:ident, $try:ident, $block:ident, $guard:ident, $kind:expr) => {{
        for _ in 0..SPIN_TRIES {
            std::hint::spin_loop();
            match $self.inner.$try() {
                Ok(inner) => return Ok($guard($self, inner)),
                Err(TryLockError::Poisoned(e)) => {
                    return Err(PoisonError::new($guard($self, e.into_inner())))
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let stack = WaiterStack::capture();
        let ticket = $self.book.waits.enter();
        let waiting = Waiting::new(
            $kind,
            $self as *const Self as *const () as usize,
            Some(&$self.book.writer),
            ticket.start(),
        );
        let result = $self.inner.$block();
        drop(waiting);
        let wait = $self.book.waits.leave(&ticket);
        mapprof_rt::scope::on_contention(wait);
        if let Some(stack) = stack {
            stack.record_wait(wait);
        }
        map_lock(result, |inner| $guard($self, inner))
    }};
}

/// Maps a std `TryLockResult` to one with a shim guard.
macro_rules! try_acquire {
    ($self:ident, $try:ident, $guard:ident) => {
        match $self.inner.$try() {
            Ok(inner) => Ok($guard($self, inner)),
            Err(TryLockError::Poisoned(e)) => Err(TryLockError::Poisoned(PoisonError::new(
                $guard($self, e.into_inner()),
            ))),
            Err(TryLockError::WouldBlock) => Err(TryLockError::WouldBlock),
        }
    };
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for shared reading, blocking while a writer holds the lock.
    #[inline]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        acquire!(self, try_read, read_contended, read_guard)
    }

    /// Locks for exclusive writing, blocking while anyone holds the lock.
    ///
    /// Both paths yield std's guard, and the shim's guard is made once after them: merging
    /// two shim guards (`LockResult`s of three words, the contended one returned through
    /// memory) made the compiler store the fast path's guard word by word and reload it whole,
    /// a failed store-to-load forward that cost the uncontended write lock about 20 ns. The
    /// poison flag read after the lock is taken is the one at acquisition: only a writer
    /// poisons, and this thread is the writer now.
    #[inline]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let inner = match self.inner.try_write() {
            Ok(inner) => inner,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => self.write_contended(),
        };
        let guard = write_guard(self, inner);
        if self.inner.is_poisoned() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    #[cold]
    #[inline(never)]
    fn read_contended(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        contended!(self, try_read, read, read_guard, WaitKind::RwLockRead)
    }

    /// The contended write: spins on `try_write` a little, then registers as a waiter around
    /// std's blocking `write`. Returns std's guard, poisoned or not (see [`RwLock::write`]).
    #[cold]
    #[inline(never)]
    fn write_contended(&self) -> std::sync::RwLockWriteGuard<'_, T> {
        for _ in 0..SPIN_TRIES {
            std::hint::spin_loop();
            match self.inner.try_write() {
                Ok(inner) => return inner,
                Err(TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let stack = WaiterStack::capture();
        let ticket = self.book.waits.enter();
        let waiting = Waiting::new(
            WaitKind::RwLockWrite,
            self as *const Self as *const () as usize,
            Some(&self.book.writer),
            ticket.start(),
        );
        let result = self.inner.write();
        drop(waiting);
        let wait = self.book.waits.leave(&ticket);
        if let Some(stack) = stack {
            stack.record_wait(wait);
        }
        result.unwrap_or_else(PoisonError::into_inner)
    }

    /// Attempts to lock for reading without blocking.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        try_acquire!(self, try_read, read_guard)
    }

    /// Attempts to lock for writing without blocking.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        try_acquire!(self, try_write, write_guard)
    }

    /// Whether the lock is poisoned.
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
}

#[inline]
fn read_guard<'a, T: ?Sized>(
    lock: &'a RwLock<T>,
    inner: std::sync::RwLockReadGuard<'a, T>,
) -> RwLockReadGuard<'a, T> {
    RwLockReadGuard {
        book: &lock.book,
        inner: ManuallyDrop::new(inner),
    }
}

/// The guard of a write lock just taken: notes this thread as the writer (one relaxed store).
#[inline]
fn write_guard<'a, T: ?Sized>(
    lock: &'a RwLock<T>,
    inner: std::sync::RwLockWriteGuard<'a, T>,
) -> RwLockWriteGuard<'a, T> {
    lock.book.writer.store(current_tid(), Relaxed);
    RwLockWriteGuard {
        book: &lock.book,
        inner: ManuallyDrop::new(inner),
    }
}

/// Unlocks through the std guard in `inner`, charging the holder if others wait.
#[inline]
fn unlock_charged<G>(book: &WaitBook, inner: &mut ManuallyDrop<G>) {
    let delay = book.charge();
    // SAFETY: called once, from the shim guard's `drop`, which never uses `inner` again.
    unsafe { ManuallyDrop::drop(inner) };
    record_charge(delay);
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        unlock_charged(&self.book.waits, &mut self.inner);
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Before the unlock: readers that get in next are not named as this writer.
        self.book.writer.store(0, Relaxed);
        unlock_charged(&self.book.waits, &mut self.inner);
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
