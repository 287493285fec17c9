//! Drop-in replacements for `std::sync::{Mutex, RwLock, Condvar}` that record contention for
//! the mutex and block profiles. Switch with one `use` line behind a cargo feature:
//!
//! ```
//! use mapprof::sync::Mutex; // instead of std::sync::Mutex
//!
//! let counter = Mutex::new(0);
//! *counter.lock().unwrap() += 1;
//! assert_eq!(counter.into_inner().unwrap(), 1);
//! ```
//!
//! Each type wraps its std counterpart; method names, signatures, poisoning and
//! `Send`/`Sync` are std's. The uncontended path is one `try_lock` (no clock read, nothing
//! recorded) and, at unlock, one load that finds nobody waiting. Only a failed `try_lock` reads
//! the clock, captures the waiter's stack (before blocking), waits, and records; an unlock that
//! finds waiters charges their wait to the holder's stack after the lock is released.
//! See `mapprof_rt::lock` for how events are sampled.

mod condvar;
mod mutex;
mod rwlock;
mod wait_book;

pub use condvar::Condvar;
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult, WaitTimeoutResult};
