//! Drop-in replacements for `tokio::sync::{Mutex, RwLock}` that record contention for the
//! mutex and block profiles (cargo feature `tokio`). Switch with one `use` line behind a cargo
//! feature, as with [`crate::sync`]:
//!
//! ```
//! use mapprof::tokio::Mutex; // instead of tokio::sync::Mutex
//!
//! # async fn f() {
//! let counter = Mutex::new(0);
//! *counter.lock().await += 1;
//! assert_eq!(counter.into_inner(), 1);
//! # }
//! ```
//!
//! Each lock is tokio's own with a wait book (`sync`'s `WaitBook`) beside it; methods,
//! signatures, fairness and `Send`/`Sync` are tokio's. A task whose first poll of `lock()`
//! (`read()`, `write()`) finds the lock taken notes the time and registers as a waiter; when it
//! gets the lock, its wait goes to the block profile, with the stack it resumed on if the wait
//! is sampled. A guard dropped while tasks wait charges their wait since the last charge to its
//! holder (Go 1.22's rule), with the stack of the thread that drops it, in the mutex profile.
//! `mutex_fraction` and `block_rate` sample these events exactly as for `mapprof::sync`
//! (`mapprof_rt::contention`).
//!
//! # Rules (read before changing anything here)
//!
//! These locks replace tokio's in the host's hottest async code, so:
//!
//! 1. **Uncontended: tokio's cost and nothing else.** Acquiring is the inner lock's
//!    `try_lock` (`try_read`, `try_write`); releasing is one load of the book's waiter count
//!    and tokio's release. No clock read, no stack, nothing recorded. One difference: tokio's
//!    `lock().await` also spends a unit of the task's cooperative budget, an uncontended one
//!    here does not (the budget is `rt`'s, which this feature does not take).
//! 2. **No allocation on any path.** The book lives in the lock; the waiter's ticket (two
//!    numbers) in the `lock()` future; a sampled wait's stack (a fixed array) on the thread's
//!    stack while it is recorded.
//! 3. **No blocking beyond the lock itself.** Waiting is tokio's; the only other lock taken is
//!    the book's ledger, held for a few instructions of arithmetic and a clock read. The
//!    holder's stack is captured after the release. A waiter's stack is captured when it has
//!    the lock, for sampled waits only (at the default `block_rate` of 10 µs, a 1 µs wait one
//!    time in ten): that capture, unlike `mapprof::sync`'s, runs under the lock, the price of
//!    not capturing at every contention (which cost more than tokio's contended path).
//! 4. **What the contended paths call in `mapprof_rt`:** `contention::now_ns`,
//!    `record_wait_here` (a waiter that got the lock), `record_holder_delay` (through
//!    `record_charge`), and for `mapprof::testing` `scope::on_contention` and
//!    `on_holder_delay` (a stack captured only on a thread that measures).
//! 5. **Cancellation.** A `lock()` future dropped while it waits (`select!`, a timeout, an
//!    aborted task) unregisters from the book and records nothing: no block sample, and its
//!    wait not yet charged is not charged (`WaitBook::cancel`). The lock stays tokio's, so
//!    it is as usable after as tokio's is.
//! 6. **Guards are `Send`, as tokio's.** The holder is whoever drops the guard: its thread's
//!    stack and labels are charged, whichever thread locked.
//! 7. **Owned guards** keep the lock's `Arc` and a guard borrowed from it, dropped first; so
//!    their `T` must be `'static` (tokio's need not).

mod mutex;
mod rwlock;

pub use mutex::{MappedMutexGuard, Mutex, MutexGuard, OwnedMutexGuard};
pub use rwlock::{
    OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, RwLockMappedWriteGuard, RwLockReadGuard,
    RwLockWriteGuard,
};
pub use tokio::sync::TryLockError;

use crate::sync::wait_book::{record_charge, Ticket, WaitBook};
use mapprof_rt::contention::record_wait_here;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A tokio guard (`G`) of a profiled lock: dropping it charges the holder for the tasks that
/// wait on the lock. Named through the aliases ([`MutexGuard`], [`RwLockReadGuard`], ...).
#[must_use = "if unused the lock will immediately unlock"]
pub struct Guard<'a, G> {
    book: &'a WaitBook,
    inner: ManuallyDrop<G>,
}

impl<'a, G> Guard<'a, G> {
    fn new(book: &'a WaitBook, inner: G) -> Self {
        Guard {
            book,
            inner: ManuallyDrop::new(inner),
        }
    }

    /// The book and the tokio guard, which then releases without charging (`map` and
    /// `downgrade` keep holding the lock through another guard).
    fn into_parts(this: Self) -> (&'a WaitBook, G) {
        let mut this = ManuallyDrop::new(this);
        // SAFETY: `this` is never dropped or used again, so `inner` is taken exactly once.
        (this.book, unsafe { ManuallyDrop::take(&mut this.inner) })
    }

    /// The same hold through the tokio guard `f` makes of this one.
    fn map_inner<H>(this: Self, f: impl FnOnce(G) -> H) -> Guard<'a, H> {
        let (book, inner) = Guard::into_parts(this);
        Guard::new(book, f(inner))
    }
}

impl<G> Drop for Guard<'_, G> {
    fn drop(&mut self) {
        let delay = self.book.charge();
        // SAFETY: `drop` runs once and `inner` is not used after it.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
        record_charge(delay);
    }
}

impl<G: Deref> Deref for Guard<'_, G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.inner
    }
}

impl<G: DerefMut> DerefMut for Guard<'_, G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.inner
    }
}

impl<G: fmt::Debug> fmt::Debug for Guard<'_, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.inner, f)
    }
}

impl<G: fmt::Display> fmt::Display for Guard<'_, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.inner, f)
    }
}

/// A guard that keeps its lock (`L`, in an `Arc`) alive: the owned guards' type, named
/// through the aliases ([`OwnedMutexGuard`], ...).
#[must_use = "if unused the lock will immediately unlock"]
pub struct Owned<L: ?Sized, G> {
    // Declared first, so dropped first: it borrows from `lock`.
    guard: Guard<'static, G>,
    lock: Arc<L>,
}

impl<L: ?Sized, G: Deref> Deref for Owned<L, G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<L: ?Sized, G: DerefMut> DerefMut for Owned<L, G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

impl<L: ?Sized, G: fmt::Debug> fmt::Debug for Owned<L, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.guard, f)
    }
}

impl<L: ?Sized, G: fmt::Display> fmt::Display for Owned<L, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.guard, f)
    }
}

/// The owned guard of `$guard`, a guard of `*$lock` (`$lock`: an `Arc` of the lock), kept
/// with `$lock`. Both are named at each use, where the guard is seen to be the lock's.
macro_rules! owned {
    ($lock:expr, $guard:expr) => {{
        let guard = $guard;
        // SAFETY: only the lifetime changes, to `'static`: the guard borrows from `*$lock`,
        // which the `Arc` stored next to it keeps alive and in place, and which is dropped
        // after it (`Owned`'s field order); the guard's borrow is never handed out longer
        // than `&self` of the `Owned`.
        let guard = unsafe { std::mem::transmute::<Guard<'_, _>, Guard<'static, _>>(guard) };
        $crate::tokio::Owned { guard, lock: $lock }
    }};
}
use owned;

/// A waiter's registration in a book, for as long as it waits; dropped without
/// [`Waiting::acquired`] (its future cancelled), it unregisters and records nothing.
struct Waiting<'a> {
    book: &'a WaitBook,
    ticket: Ticket,
    left: bool,
}

impl<'a> Waiting<'a> {
    /// Notes the time and registers with `book`.
    fn enter(book: &'a WaitBook) -> Self {
        Waiting {
            book,
            ticket: book.enter(),
            left: false,
        }
    }

    /// The waiter holds the lock: its wait goes to the book and, if sampled, to the block
    /// profile with the stack it resumed on, the `.lock().await`'s (captured only then: most
    /// waits are not sampled, and a task's stack is the same at every poll of one `.await`).
    fn acquired(mut self) {
        let wait = self.book.leave(&self.ticket);
        self.left = true;
        // A task polled by a thread that measures (`mapprof::testing`) counts there.
        mapprof_rt::scope::on_contention(wait);
        record_wait_here(wait);
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.left {
            self.book.cancel(&self.ticket);
        }
    }
}

/// Awaits `acquire` (the inner lock's `lock()`, after its `try_lock` failed) as a waiter of
/// `book`, registered from its first poll.
async fn wait_for<F: Future>(book: &WaitBook, acquire: F) -> F::Output {
    let waiting = Waiting::enter(book);
    let inner = acquire.await;
    waiting.acquired();
    inner
}

/// Runs `acquire` (the inner lock's `blocking_lock()`, after its `try_lock` failed) as a
/// waiter of `book`. The blocked thread says so to thread dumps (its holder is a task, which
/// they cannot name).
fn block_for<G>(book: &WaitBook, acquire: impl FnOnce() -> G) -> G {
    let waiting = Waiting::enter(book);
    let dumps = mapprof_rt::threads::Waiting::new(
        mapprof_rt::threads::WaitKind::TokioLock,
        book as *const WaitBook as usize,
        None,
        waiting.ticket.start(),
    );
    let inner = acquire();
    drop(dumps);
    waiting.acquired();
    inner
}
