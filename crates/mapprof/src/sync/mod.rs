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
//! Method names, signatures, poisoning and `Send`/`Sync` are std's. `Mutex` and `Condvar` are
//! futex-based (Linux) on std's own lock-word algorithm; `RwLock` wraps std's. The uncontended
//! path is one compare-and-swap to lock and one swap to unlock, as in std: no clock read,
//! nothing recorded. A thread that has to sleep reads the clock, captures its stack (before
//! blocking) and registers as a waiter; an unlock that must wake a sleeper charges the waiters'
//! time to the holder and records the holder's stack after the lock is released.
//! See `mapprof_rt::contention` for how events are sampled.

mod condvar;
mod futex;
mod mutex;
mod rwlock;
mod wait_book;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
