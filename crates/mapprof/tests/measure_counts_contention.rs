//! Contended `mapprof::sync::Mutex` acquisitions inside a measurement are counted, with the
//! time waited, and `assert_no_contention` fails on them naming the waiters' and the holders'
//! functions. Waits of threads outside the measurement are not counted.
//!
//! The wait is checked against what the waiters themselves measured around their `lock()`
//! calls, not against a nominal sleep: on a busy machine a waiter can reach `lock()` late, or
//! a holder sleep long, and both clocks see the same wait.

use mapprof::sync::Mutex;
use mapprof::testing::{measure, measure_threads, try_measure, Measurement};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::system();

const HOLD: Duration = Duration::from_millis(100);

/// Whether the measured wait is within 10% of the waiters' own measure.
fn within_a_tenth(measured: Duration, own: Duration) -> bool {
    (measured.as_secs_f64() - own.as_secs_f64()).abs() <= 0.1 * own.as_secs_f64()
}

fn no_contention_message(m: &Measurement) -> String {
    *std::panic::catch_unwind(|| m.assert_no_contention())
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("the assertion fails")
}

#[test]
fn a_contended_lock_is_counted_with_its_wait() {
    let mutex = Arc::new(Mutex::new(0u64));
    let held = Arc::new(Barrier::new(2));
    let holder = {
        let (mutex, held) = (mutex.clone(), held.clone());
        std::thread::spawn(move || {
            let mut guard = mutex.lock().unwrap();
            held.wait();
            std::thread::sleep(HOLD);
            *guard += 1;
        })
    };
    held.wait();
    let (own, m) = try_measure(|| {
        let start = Instant::now();
        let mut guard = mutex.lock().unwrap();
        let own = start.elapsed();
        *guard += 1;
        own
    })
    .unwrap();
    holder.join().unwrap();
    assert_eq!(*mutex.lock().unwrap(), 2);
    assert_eq!(m.contentions, 1, "{m:#?}");
    assert!(
        within_a_tenth(m.wait, own),
        "measured {:?} waited, the waiter's own clock {own:?}",
        m.wait
    );
    let message = no_contention_message(&m);
    assert!(
        message.contains("expected no lock contention, measured 1 contended acquisitions"),
        "{message}"
    );
    // The holder ran outside the measurement: its stack is not the measurement's.
    assert!(
        message.contains("a_contended_lock_is_counted_with_its_wait"),
        "{message}"
    );
    assert!(
        message.contains("holders: outside the measurement"),
        "{message}"
    );
    measure(|| *mutex.lock().unwrap() += 1).assert_no_contention();
}

/// Threads of the measurement that contend.
const THREADS: usize = 4;
/// How long each holds the lock once it has it.
const EACH_HOLD: Duration = Duration::from_millis(30);

/// Takes the lock, adding the time `lock()` took, by the waiter's own clock, to `waited`.
#[inline(never)]
fn wait_for_the_lock<'a>(
    mutex: &'a Mutex<u64>,
    waited: &AtomicU64,
) -> mapprof::sync::MutexGuard<'a, u64> {
    let start = Instant::now();
    let guard = mutex.lock().unwrap();
    waited.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    guard
}

#[inline(never)]
fn hold_the_lock(mut guard: mapprof::sync::MutexGuard<'_, u64>) {
    std::thread::sleep(EACH_HOLD);
    *guard += 1;
    drop(guard);
}

#[test]
fn threads_that_contend_are_named_as_waiters_and_holders() {
    let mutex = Mutex::new(0u64);
    let start = Barrier::new(THREADS);
    let waited = AtomicU64::new(0);
    let m = measure_threads(|threads| {
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    threads.run(|| {
                        start.wait();
                        // Each holds the lock a while, so that the others, once at
                        // `lock()`, wait for it.
                        hold_the_lock(wait_for_the_lock(&mutex, &waited));
                    })
                });
            }
        });
    });
    assert_eq!(*mutex.lock().unwrap(), THREADS as u64);
    // A waiter that reaches `lock()` after the others are done does not wait; each holds
    // the lock for a while, so that takes a delay of (THREADS - 1) holds.
    assert!(m.contentions >= THREADS as u64 - 1, "{m:#?}");
    let own = Duration::from_nanos(waited.into_inner());
    assert!(
        within_a_tenth(m.wait, own),
        "measured {:?} waited, the waiters' own clocks {own:?}",
        m.wait
    );
    let waits: u64 = m
        .lock_sites
        .iter()
        .filter(|s| !s.holder)
        .map(|s| s.count)
        .sum();
    assert_eq!(waits, m.contentions, "{m:#?}");
    let message = no_contention_message(&m);
    assert!(
        message.contains(&format!(
            "expected no lock contention, measured {} contended acquisitions",
            m.contentions
        )),
        "{message}"
    );
    let (waiters, holders) = message
        .split_once("holders (charged at unlock with their waiters' time):")
        .expect("holders listed");
    assert!(
        waiters.contains("waits") && waiters.contains("wait_for_the_lock"),
        "{message}"
    );
    assert!(!waiters.contains("hold_the_lock"), "{message}");
    assert!(
        holders.contains("unlocks") && holders.contains("hold_the_lock"),
        "{message}"
    );
    assert!(!holders.contains("wait_for_the_lock"), "{message}");

    // The same stacks as block (waiters) and mutex (holders) profiles for CI.
    let dir = tempfile::tempdir().unwrap();
    let written = m.write_artifacts(dir.path(), "contention").unwrap();
    for (kind, function, count) in [
        ("block", "wait_for_the_lock", m.contentions),
        ("mutex", "hold_the_lock", holder_unlocks(&m)),
    ] {
        let path = dir.path().join(format!("contention.{kind}.pb.gz"));
        assert!(written.contains(&path), "{written:?}");
        let profile = mapprof_profile::codec::read_file(&path).unwrap();
        let view = mapprof_profile::view::ProfileView::unpruned(&profile).unwrap();
        assert_eq!(view.kind_name(), kind);
        assert_eq!(view.total(0) as u64, count);
        assert!(view
            .samples()
            .all(|s| s.frames().any(|f| f.function.ends_with(function))));
    }
}

fn holder_unlocks(m: &Measurement) -> u64 {
    m.lock_sites
        .iter()
        .filter(|s| s.holder)
        .map(|s| s.count)
        .sum()
}
