//! The uncontended path records nothing and allocates nothing.

mod common;
use common::*;
use mapprof::sync::{Mutex, RwLock};
use mapprof::ProfileKind;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations made on threads that turned counting on.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            CALLS.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[inline(never)]
fn lock_alone_many_times(m: &Mutex<u64>, rw: &RwLock<u64>) {
    for _ in 0..10_000 {
        *m.lock().unwrap() += 1;
        *rw.write().unwrap() += 1;
        std::hint::black_box(*rw.read().unwrap());
    }
}

#[test]
fn uncontended_locking_records_nothing_and_allocates_nothing() {
    let _p = mapprof::Profiler::builder()
        .mutex_fraction(1)
        .block_rate(1)
        .start()
        .unwrap();
    let calls = on_new_thread(|| {
        let (m, rw) = (Mutex::new(0), RwLock::new(0));
        COUNTING.with(|c| c.set(true));
        lock_alone_many_times(&m, &rw);
        COUNTING.with(|c| c.set(false));
        assert_eq!(*m.lock().unwrap(), 10_000);
        CALLS.with(Cell::get)
    });
    assert_eq!(calls, 0, "the uncontended lock path allocated");
    for kind in [ProfileKind::Mutex, ProfileKind::Block] {
        let profile = decoded(kind);
        assert_eq!(
            total_through(&profile, "contentions", "lock_alone_many_times"),
            0,
            "{kind:?}"
        );
    }
}
