//! The uncontended path records nothing and allocates nothing; the same locks contended, under
//! the same settings, do record (the control: the profiles would show contention if any).

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

/// Holds `m` while another thread waits for it, `rounds` times.
#[inline(never)]
fn lock_contended(m: &Mutex<u64>, rounds: u64) {
    let (held, done) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..rounds {
                held.wait();
                *m.lock().unwrap() += 1;
                done.wait();
            }
        });
        for _ in 0..rounds {
            let mut guard = m.lock().unwrap();
            held.wait();
            // The waiter is on its way to the lock: hold it long enough that it blocks.
            std::thread::sleep(std::time::Duration::from_millis(2));
            *guard += 1;
            drop(guard);
            done.wait();
        }
    });
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
    on_new_thread(|| lock_contended(&Mutex::new(0), 20));
    for kind in [ProfileKind::Mutex, ProfileKind::Block] {
        let profile = decoded(kind);
        assert_eq!(
            total_through(&profile, "contentions", "lock_alone_many_times"),
            0,
            "{kind:?}"
        );
        assert!(
            total_through(&profile, "contentions", "lock_contended") > 0,
            "{kind:?}: the contended locks were not recorded"
        );
    }
}
