//! Who holds a lock, for thread dumps: the holder's tid, stored with one relaxed store after
//! the acquiring compare-and-swap (measured against std in `bench/locks`: BENCHMARKS.md).
//!
//! A `Mutex` keeps the tid of the thread that locked it last and never clears it: it is read
//! only by a thread dump's handler on a thread waiting for the lock, which is held then (for
//! the few instructions between a new holder's compare-and-swap and its store, it still names
//! the previous holder). A `RwLock` keeps its writer's tid while a writer holds it and 0
//! otherwise (readers are not named: counting them would cost every read lock a shared write).

use std::cell::Cell;

thread_local! {
    /// This thread's id, cached (`gettid` is a system call); 0 until first asked.
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// The calling thread's id (`gettid`), cached per thread; 0 while its thread-local storage is
/// gone (thread exit).
#[inline]
pub(crate) fn current_tid() -> u32 {
    TID.try_with(|t| match t.get() {
        0 => look_up(t),
        tid => tid,
    })
    .unwrap_or(0)
}

#[cold]
#[inline(never)]
fn look_up(cell: &Cell<u32>) -> u32 {
    // A forked child's thread has a tid of its own: the fork handlers forget the cached one.
    crate::fork::register();
    let tid = mapprof_rt::thread::gettid();
    cell.set(tid);
    tid
}

/// In a child just forked (on its one thread, the one that forked): its tid is not the
/// parent's thread's.
pub(crate) fn after_fork_in_child() {
    let _ = TID.try_with(|t| t.set(0));
}
