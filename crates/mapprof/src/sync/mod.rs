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
//!
//! # Rules (read before changing anything here)
//!
//! These locks replace std's in the host's hottest code, so:
//!
//! 1. **Uncontended: std's cost and nothing else.** Lock is one compare-and-swap (`RwLock`:
//!    std's `try_read`/`try_write`) and, for thread dumps, one relaxed store of the holder's
//!    tid (`Mutex`, `RwLock` writers; rule 7); unlock one swap (`Mutex`) or one load of the book's waiter
//!    count and std's unlock (`RwLock`). No clock read, no stack, no call into `mapprof_rt`,
//!    nothing recorded. `tests/uncontended_locks_record_and_allocate_nothing.rs` holds this.
//! 2. **No allocation on any path.** The lock word, the `wait_book` ledger (a std `Mutex`,
//!    futex-based) and the captured stack (a fixed array) live in the lock or on the stack.
//! 3. **No blocking beyond the lock itself.** A contended lock spins a bounded number of times
//!    (`Mutex`: std's 100; `RwLock`: `SPIN_TRIES`) and then sleeps on the futex (or std's
//!    lock); the only other lock taken is the book's ledger, held for a few instructions of
//!    arithmetic and a clock read, never across a call out (the DWARF unwinder, where used, may
//!    take the loader's lock for a moment, as in the heap hooks). The waiter's stack is captured
//!    before it sleeps and the holder's after it unlocks, so no capture happens under the lock.
//! 4. **What the contended paths call in `mapprof_rt`:** `contention::now_ns` (the clock),
//!    `WaiterStack::capture` and `record_wait` (a waiter), `record_holder_delay` (a holder
//!    charged at an unlock that wakes someone), and `scope::on_contention` and
//!    `on_holder_delay` (the same events for `mapprof::testing`; they capture a stack only in
//!    a thread that measures, the waiter's under the lock just taken). They obey `mapprof_rt`'s hot-path rules: no
//!    allocation, lock-free lookups, bounded spins, samples lost rather than waited for.
//! 5. **No reentrancy.** A thread inside the profiler or `mapprof::ignore` still locks and
//!    waits as usual, but records nothing (`mapprof_rt`'s thread flag): the profiler's own
//!    locking never shows in the profiles and never recurses into them. Not async-signal-safe,
//!    as std's; mapprof's SIGPROF handler never takes them.
//! 6. **Fork: as std's for the lock, safe for the books.** A lock held when the process forks
//!    stays held in the child, as with std's. A book's ledger held by another thread at the
//!    fork is not: its lock word holds the process id, so the child takes it, and the
//!    ledger's counts, its parent's waiters, are reset there (`wait_book`).
//! 7. **Holders named for thread dumps, at one relaxed store.** A lock notes its holder's tid
//!    (cached per thread) after the acquiring compare-and-swap (`owner`); a thread about to
//!    sleep sets its `mapprof_rt::threads::Waiting` record (a few thread-local stores, on the
//!    contended path only), which a dump's signal handler reads.

mod condvar;
mod futex;
mod mutex;
pub(crate) mod owner;
mod rwlock;
pub(crate) mod wait_book;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
