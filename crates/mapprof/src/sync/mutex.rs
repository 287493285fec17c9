//! `Mutex`: a futex mutex with std's API and poisoning, whose contention is recorded.
//!
//! The lock word is std's own algorithm (0 unlocked, 1 locked, 2 locked with sleepers;
//! Drepper's "Futexes Are Tricky"), so the uncontended lock and unlock cost what std's do. Owning
//! the word is what lets the profiler be cheap under contention: a thread counts as a waiter
//! only once it goes to sleep, and only an unlock that must wake a sleeper pays for the
//! accounting, next to the futex wake-up it pays anyway.

use super::futex;
use super::owner::current_tid;
use super::wait_book::{record_charge, WaitBook};
use mapprof_rt::contention::WaiterStack;
use mapprof_rt::threads::{WaitKind, Waiting};
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{
    AtomicBool, AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const SLEEPERS: u32 = 2;

/// The lock word and its operations.
#[derive(Debug, Default)]
pub(crate) struct RawMutex {
    state: AtomicU32,
    /// The tid of the thread that locked it last, for thread dumps (`super::owner`).
    owner: AtomicU32,
}

impl RawMutex {
    const fn new() -> RawMutex {
        RawMutex {
            state: AtomicU32::new(UNLOCKED),
            owner: AtomicU32::new(0),
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        let locked = self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            .is_ok();
        if locked {
            self.note_owner();
        }
        locked
    }

    /// Notes this thread as the holder: one relaxed store (`super::owner`).
    #[inline]
    fn note_owner(&self) {
        self.owner.store(current_tid(), Relaxed);
    }

    #[inline]
    pub(crate) fn lock(&self, book: &WaitBook) {
        if !self.try_lock() {
            self.lock_contended(book);
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self, book: &WaitBook) {
        let mut state = self.spin();
        if state == UNLOCKED {
            match self
                .state
                .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            {
                Ok(_) => return self.note_owner(),
                Err(s) => state = s,
            }
        }
        // From here on this thread sleeps until the lock is free: it is a waiter, its stack
        // taken before it sleeps, and says so to thread dumps.
        let stack = WaiterStack::capture();
        let ticket = book.enter();
        let waiting = Waiting::new(
            WaitKind::Mutex,
            self as *const RawMutex as usize,
            Some(&self.owner),
            ticket.start(),
        );
        loop {
            // Mark the lock as having sleepers; if it was free, it is ours (still marked, so
            // our unlock wakes the next sleeper, as in std).
            if state != SLEEPERS && self.state.swap(SLEEPERS, Acquire) == UNLOCKED {
                break;
            }
            futex::wait(&self.state, SLEEPERS, None);
            state = self.spin();
        }
        self.note_owner();
        drop(waiting);
        let wait = book.leave(&ticket);
        mapprof_rt::scope::on_contention(wait);
        if let Some(stack) = stack {
            stack.record_wait(wait);
        }
    }

    /// Spins a little while the lock is held without sleepers (std's count: 100).
    fn spin(&self) -> u32 {
        let mut spins = 100;
        loop {
            let state = self.state.load(Relaxed);
            if state != LOCKED || spins == 0 {
                return state;
            }
            std::hint::spin_loop();
            spins -= 1;
        }
    }

    /// Whether some thread sleeps waiting for this lock.
    #[inline]
    fn has_sleepers(&self) -> bool {
        self.state.load(Relaxed) == SLEEPERS
    }

    #[inline]
    pub(crate) fn unlock(&self) {
        if self.state.swap(UNLOCKED, Release) == SLEEPERS {
            futex::wake(&self.state, 1);
        }
    }

    /// Unlocks, first charging the holder for its sleeping waiters, and records the charge
    /// once the lock is free.
    #[inline]
    pub(crate) fn unlock_charged(&self, book: &WaitBook) {
        let delay = if self.has_sleepers() {
            book.charge()
        } else {
            0
        };
        self.unlock();
        record_charge(delay);
    }
}

/// A mutual exclusion primitive, as `std::sync::Mutex`, whose contention is profiled.
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    poisoned: AtomicBool,
    book: WaitBook,
    data: UnsafeCell<T>,
}

// SAFETY: as std's `Mutex`: the lock hands out access to `T` to one thread at a time, so the
// mutex can be shared and sent whenever `T` can be sent.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

// As std: poisoning is how a panic's broken invariants are reported.
impl<T: ?Sized> std::panic::UnwindSafe for Mutex<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for Mutex<T> {}

/// The guard of a locked [`Mutex`], as `std::sync::MutexGuard`.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    lock: &'a Mutex<T>,
    /// Whether the thread was already panicking when it locked (std's poisoning rule).
    panicking: bool,
    /// Not `Send`, as std's guard: the lock must be released by the thread that took it.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a guard shares `&T` only, as with std's guard.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// Creates a new mutex in an unlocked state.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            raw: RawMutex::new(),
            poisoned: AtomicBool::new(false),
            book: WaitBook::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex, returning the underlying data (an error if it is poisoned).
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.is_poisoned();
        let data = self.data.into_inner();
        if poisoned {
            Err(PoisonError::new(data))
        } else {
            Ok(data)
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the mutex, blocking until it is available. An error if it is poisoned, with
    /// the guard inside, as std.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw.lock(&self.book);
        self.guard()
    }

    /// Attempts to acquire the mutex without blocking, as std.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if self.raw.try_lock() {
            Ok(self.guard()?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Whether the mutex is poisoned.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Relaxed)
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.poisoned.store(false, Relaxed)
    }

    /// A mutable reference to the underlying data (an error if it is poisoned).
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.is_poisoned();
        let data = self.data.get_mut();
        if poisoned {
            Err(PoisonError::new(data))
        } else {
            Ok(data)
        }
    }

    /// The guard for a lock this thread has just taken.
    fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        let guard = MutexGuard {
            lock: self,
            panicking: std::thread::panicking(),
            _not_send: PhantomData,
        };
        if self.is_poisoned() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The lock word and book, for `Condvar`.
    pub(crate) fn raw(&self) -> (&'a RawMutex, &'a WaitBook) {
        (&self.lock.raw, &self.lock.book)
    }

    /// The guard's result after a `Condvar` wait: poisoned if the mutex is.
    pub(crate) fn into_result(self) -> LockResult<Self> {
        if self.lock.is_poisoned() {
            Err(PoisonError::new(self))
        } else {
            Ok(self)
        }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if !self.panicking && std::thread::panicking() {
            self.lock.poisoned.store(true, Relaxed);
        }
        self.lock.raw.unlock_charged(&self.lock.book);
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock, and `&mut self`
        // makes this the only reference through it.
        unsafe { &mut *self.lock.data.get() }
    }
}

/// Maps the guard inside a `LockResult`, poisoned or not.
pub(crate) fn map_lock<G, H>(result: LockResult<G>, f: impl FnOnce(G) -> H) -> LockResult<H> {
    match result {
        Ok(g) => Ok(f(g)),
        Err(e) => Err(PoisonError::new(f(e.into_inner()))),
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
    /// As std: `Mutex { data: .., poisoned: .., .. }`, `<locked>` when it is held.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned());
        d.finish_non_exhaustive()
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
