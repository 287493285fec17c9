//! The uncontended path records nothing and allocates nothing.

mod common;
mod counting;
use common::*;
use counting::calls_in;
use mapprof::sync::{Mutex, RwLock};
use mapprof::ProfileKind;
#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

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
        // The counter counts: one allocation is one call.
        let one = calls_in(|| drop(std::hint::black_box(Box::new(0u64))));
        assert_eq!(one, 1, "the counting allocator does not count");
        let calls = calls_in(|| lock_alone_many_times(&m, &rw));
        assert_eq!(*m.lock().unwrap(), 10_000);
        calls
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
