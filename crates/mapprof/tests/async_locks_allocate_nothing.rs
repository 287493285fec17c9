//! `mapprof::tokio` locks allocate nothing on any path, and record nothing uncontended: their
//! futures polled by hand (a no-op waker, no runtime) on one thread whose allocations are
//! counted, every event recorded (mutex_fraction 1, block_rate 1). Uncontended, the profiles
//! have nothing through `lock_alone_many_times`; contended (a wait that gets the lock, one
//! that gives up), they have the waits and charges, and still nothing was allocated.

mod common;
mod counting;
use common::*;
use counting::calls_in;
use mapprof::tokio::{Mutex, RwLock};
use mapprof::ProfileKind;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// Polls `future` once; `None` if it is pending.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[inline(never)]
fn lock_alone_many_times(m: &Mutex<u64>, rw: &RwLock<u64>) {
    for _ in 0..10_000 {
        *poll_once(pin!(m.lock())).unwrap() += 1;
        *poll_once(pin!(rw.write())).unwrap() += 1;
        std::hint::black_box(*poll_once(pin!(rw.read())).unwrap());
    }
}

/// Per round: a `lock()` that finds the mutex held and waits, one that gives up (dropped
/// while pending), the release, the wait's acquisition; the same for a reader on a writer.
#[inline(never)]
fn lock_contended(m: &Mutex<u64>, rw: &RwLock<u64>) {
    for _ in 0..100 {
        let held = m.try_lock().unwrap();
        let mut waits = pin!(m.lock());
        assert!(poll_once(waits.as_mut()).is_none(), "the mutex is held");
        {
            let gives_up = pin!(m.lock());
            assert!(poll_once(gives_up).is_none());
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
        drop(held);
        *poll_once(waits).expect("released, the lock is the waiter's") += 1;

        let writing = rw.try_write().unwrap();
        let mut reads = pin!(rw.read());
        assert!(poll_once(reads.as_mut()).is_none(), "the writer holds it");
        std::thread::sleep(std::time::Duration::from_micros(100));
        drop(writing);
        std::hint::black_box(*poll_once(reads).unwrap());
    }
}

#[test]
fn async_locks_allocate_nothing_and_record_nothing_uncontended() {
    let _p = mapprof::Profiler::builder()
        .mutex_fraction(1)
        .block_rate(1)
        .start()
        .unwrap();
    let (uncontended, contended) = on_new_thread(|| {
        let (m, rw) = (Mutex::new(0), RwLock::new(0));
        let one = calls_in(|| drop(std::hint::black_box(Box::new(0u64))));
        assert_eq!(one, 1, "the counting allocator does not count");
        let uncontended = calls_in(|| lock_alone_many_times(&m, &rw));
        let contended = calls_in(|| lock_contended(&m, &rw));
        assert_eq!(*m.try_lock().unwrap(), 10_000 + 100);
        (uncontended, contended)
    });
    assert_eq!(uncontended, 0, "the uncontended paths allocated");
    assert_eq!(contended, 0, "the contended paths allocated");
    for kind in [ProfileKind::Mutex, ProfileKind::Block] {
        let profile = decoded(kind);
        assert_eq!(
            total_through(&profile, "contentions", "lock_alone_many_times"),
            0,
            "{kind:?}: an uncontended lock recorded"
        );
        assert!(
            total_through(&profile, "contentions", "lock_contended") > 0,
            "{kind:?}: the contended locks were not recorded"
        );
    }
}
